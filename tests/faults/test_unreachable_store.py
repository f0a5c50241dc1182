"""A remote store that does not answer is named in one line within the time limit, and Ctrl-C works meanwhile."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # commands that wait on a silent store: the second tier

ROOT = Path(__file__).resolve().parents[2]


def _ctrl_c_as_in_a_terminal() -> None:
    """A shell's background jobs (CI's, for one) start with SIGINT ignored, and Python keeps it ignored; a terminal's
    foreground command has it at its default, which Python turns into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


LIMIT = 3  # CLAIMBENCH_STORE_TIMEOUT for these tests; the default is 30 s


@pytest.fixture
def silent_store():
    """An S3 URI whose endpoint, on 127.0.0.1, accepts connections and never answers (a store that hangs)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections complete in the kernel's backlog; nothing ever reads or replies
    port = sock.getsockname()[1]
    yield f"s3://claimbench/runs?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    sock.close()


def _cli(*args: str, limit: float = LIMIT) -> subprocess.Popen:
    env = {**os.environ, "CLAIMBENCH_STORE_TIMEOUT": str(limit), "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_ctrl_c_as_in_a_terminal)  # fmt: skip


@pytest.mark.parametrize(
    "command",
    [("studies", "run", "flooding", "--results"), ("studies", "status", "flooding", "--results"), ("analysis", "--results")],
)
def test_a_store_that_does_not_answer_is_named_in_one_line_within_the_limit(silent_store, command):
    t0 = time.monotonic()
    proc = _cli(*command, silent_store)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        subprocess.run(["pkill", "-KILL", "-g", str(proc.pid)], check=False)
    took = time.monotonic() - t0
    lines = err.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, err[-2000:]
    assert silent_store.split("?")[0] in lines[0] and silent_store.split("?")[1] in lines[0]  # the location, named
    assert f"no answer within {LIMIT} s" in lines[0]
    assert took < LIMIT + 15, f"took {took:.1f} s"  # the limit, plus the interpreter's and the imports' start-up


@pytest.mark.parametrize("command", [("studies", "run", "flooding", "--results"), ("analysis", "--results")])
def test_ctrl_c_while_waiting_for_a_store_stops_at_once(silent_store, command):
    proc = _cli(*command, silent_store, limit=60)
    time.sleep(8)  # start-up and imports; then the command is waiting on the store
    assert proc.poll() is None, "the command ended before the store could answer"
    os.killpg(proc.pid, signal.SIGINT)
    t0 = time.monotonic()
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        subprocess.run(["pkill", "-KILL", "-g", str(proc.pid)], check=False)
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert proc.returncode == 130 and len(lines) == 1 and "interrupted" in lines[0], err[-2000:]
    assert time.monotonic() - t0 < 5
