"""Ctrl-C and SIGTERM stop a run at any phase: exit 130 / 143 within seconds, one line saying what is saved and how
to resume, `run all` stops too, and the same command then finishes with every planned trial exactly once."""

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.schema import read_trials
from studies import _synthetic
from studies._plan import plan

pytestmark = pytest.mark.slow  # real drivers, signalled and resumed: the second tier

ROOT = Path(__file__).resolve().parents[2]


def _ctrl_c_as_in_a_terminal() -> None:
    """A shell's background jobs (CI's, for one) start with SIGINT ignored, and Python keeps it ignored; a terminal's
    foreground command has it at its default, which Python turns into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


DRIVER = """
import dataclasses, sys
import studies.__main__ as cli
from studies import _synthetic

def load(name, budget):
    return dataclasses.replace(_synthetic.get_study(seeds=4, steps=4, sleep=0.5), name=name)

cli.discover = lambda: {"first": None, "second": None}
cli.load = load
sys.exit(cli.main(["run", "all", "--results", sys.argv[1]]))
"""
"""`python -m studies run all` over two synthetic studies of 8 trials (~2 s each, 2 at a time)."""


def _driver(results: Path) -> subprocess.Popen:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(results)], cwd=ROOT, env=env, start_new_session=True,
                            preexec_fn=_ctrl_c_as_in_a_terminal,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


@pytest.mark.parametrize(("how", "code"), [("ctrl-c", 130), ("sigterm", 143)])
def test_an_interrupt_during_the_trials_stops_the_run_and_run_all_then_resumes(tmp_path, how, code):
    planned = {
        name: {p.trial_id for p in plan(dataclasses.replace(_synthetic.get_study(seeds=4, steps=4, sleep=0.5), name=name))}
        for name in ("first", "second")
    }
    first = tmp_path / "first"
    proc = _driver(tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(read_trials(first)) < 2:
        time.sleep(0.05)
    assert len(read_trials(first)) >= 2, "the trials never started"
    if how == "ctrl-c":  # a terminal's Ctrl-C reaches the whole foreground group: the driver and Ray's processes
        os.killpg(proc.pid, signal.SIGINT)
    else:  # `kill PID`: the driver alone
        proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        subprocess.run(["pkill", "-KILL", "-g", str(proc.pid)], check=False)  # nothing of that run may outlive the test
    stopped_in = time.monotonic() - t0
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("studies:")]
    assert proc.returncode == code, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith(f"studies: interrupted ({'SIGINT' if code == 130 else 'SIGTERM'})")
    assert f"saved in {tmp_path}" in lines[0] and f"resume with: python -m studies run all --results {tmp_path}" in lines[0]
    assert stopped_in < 20, f"took {stopped_in:.1f} s to stop"
    before = read_trials(first)
    assert 2 <= len(before) < len(planned["first"]) and before["trial_id"].is_unique
    assert not (tmp_path / "second").exists(), "run all went on to the next study"
    again = _driver(tmp_path)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    for name in ("first", "second"):
        after = read_trials(tmp_path / name).set_index("trial_id")
        assert sorted(after.index) == sorted(planned[name]) and (after["status"] == "ok").all()  # each exactly once
    after = read_trials(first).set_index("trial_id")
    kept = after.loc[before["trial_id"], "finished_at"].to_numpy() == before["finished_at"].to_numpy()
    assert kept.all(), "a trial finished before the interrupt was run again"
