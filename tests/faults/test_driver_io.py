"""The driver's own I/O errors (a full disk, a lost permission, a read-only remount) are not worker losses: the run
stops at the first failed write with one line naming it, Ray retries nothing, no hidden temporary file stays behind,
and the same command resumes once the disk has room again, every trial recorded exactly once.

Two disks: one faked in this process (any machine), and a real tmpfs mounted for the test where this user may mount
one (root in a container), filled or remounted read-only while the study runs."""

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest

import analysis.store
import studies.__main__ as cli
from analysis.schema import read_metrics, read_trials
from studies import _synthetic
from studies._plan import plan

pytestmark = pytest.mark.slow  # real runs on a failing disk, then resumed: the second tier


def _study(**kw):
    return _synthetic.get_study(seeds=3, steps=3, **kw)


def _hidden(root: Path) -> list[str]:
    return [str(p) for p in root.rglob(".*") if p.is_file() and p.name != ".lock"]


def _exactly_once(study, study_dir: Path) -> None:
    trials = read_trials(study_dir)
    assert sorted(trials["trial_id"]) == sorted(p.trial_id for p in plan(study)) and trials["trial_id"].is_unique
    assert (trials["status"] == "ok").all()
    metrics = read_metrics(study_dir)
    assert not metrics.duplicated(["trial_id", "step", "series", "metric"]).any()


class FullDisk:
    """The local filesystem, except that once `room` more metrics files (or any files, `count_all`) have been written
    under `root`, every write there fails as a full disk does (`OSError` ENOSPC, raised by the stream's `write` like
    pyarrow's own)."""

    def __init__(self, root: Path, room: int, count_all: bool = False):
        self.root, self.room, self.count_all, self.fs = str(root), room, count_all, pafs.LocalFileSystem()
        self.type_name = self.fs.type_name

    def __getattr__(self, name):
        return getattr(self.fs, name)

    def open_output_stream(self, path, *args, **kw):
        stream = self.fs.open_output_stream(path, *args, **kw)
        counted = self.count_all or "/metrics/" in path
        if not path.startswith(self.root) or (self.room > 0 and not counted):
            return stream
        if self.room > 0:
            self.room -= 1
            return stream
        disk = self

        class Full:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                stream.close()

            def write(self, data):
                raise OSError(errno.ENOSPC, f"[errno 28] No space left on device ({disk.root})")

        return Full()


def test_a_disk_that_fills_mid_run_stops_it_in_one_line_with_no_retry_and_no_temp_file(
    tmp_path, ray_session, monkeypatch, capsys
):
    results, study_dir = tmp_path / "results", tmp_path / "results" / "synthetic"
    study = _study()
    monkeypatch.setattr(cli, "discover", lambda: {"synthetic": _synthetic})
    monkeypatch.setattr(cli, "load", lambda name, budget: _study())
    disk = FullDisk(results, room=3)  # two trials fit; the third's metrics file fills the disk, and its row fails
    real = analysis.store.resolve
    monkeypatch.setattr(analysis.store, "resolve", lambda where: (disk, real(where)[1]))
    capsys.readouterr()
    assert cli.main(["run", "synthetic", "--results", str(results)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("studies: ")]
    assert len(err) == 1 and err[0].startswith(f"studies: error: cannot write results to {study_dir}: "), err
    assert "No space left on device" in err[0] and "stopped at the first failed write" in err[0]
    assert "run the same command again" in err[0]
    recorded = read_trials(study_dir)
    assert len(recorded) == 2 and (recorded["status"] == "ok").all()  # the two before it, and nothing half-written
    assert _hidden(tmp_path) == []  # no `.metrics….tmp` keeps the disk full

    monkeypatch.setattr(analysis.store, "resolve", real)  # room again: the same command resumes
    assert cli.main(["run", "synthetic", "--results", str(results)]) == 0
    assert "skipped 2 finished" in capsys.readouterr().out
    _exactly_once(study, study_dir)


def test_a_disk_without_room_at_start_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    monkeypatch.setattr(cli, "discover", lambda: {"synthetic": _synthetic})
    monkeypatch.setattr(cli, "load", lambda name, budget: _study())
    disk = FullDisk(tmp_path, room=0, count_all=True)
    real = analysis.store.resolve
    monkeypatch.setattr(analysis.store, "resolve", lambda where: (disk, real(where)[1]))
    assert cli.main(["run", "synthetic", "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write results to" in err[0] and "No space left on device" in err[0], err
    assert not results.exists() and _hidden(tmp_path) == []


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    disk = tmp_path / "disk"
    if os.geteuid() != 0 or not _mount_tmpfs(disk, "4m"):
        pytest.skip("this user cannot mount a tmpfs; the faked disk above covers the same path")
    yield disk
    subprocess.run(["umount", "-R", "-l", str(disk)], check=False)


def _run(results: Path, *extra: str) -> subprocess.CompletedProcess:
    # A study of 12 quick trials, each sleeping long enough for the disk to fail while trials are still running.
    code = (
        "import sys, studies.__main__ as cli; from studies import _synthetic; "
        "cli.discover = lambda: {'synthetic': _synthetic}; "
        "cli.load = lambda name, budget: _synthetic.get_study(seeds=6, steps=3, sleep=0.3); "
        f"sys.exit(cli.main(['run', 'synthetic', '--results', {str(results)!r}]))"
    )
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


def _recorded(study_dir: Path) -> bool:
    """A trial's row is on disk: in the compacted table or in a part appended since (`append_trials`)."""
    parts = study_dir / "trials"
    return (study_dir / "trials.parquet").exists() or (parts.is_dir() and any(parts.glob("*.parquet")))


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_real_disk_that_fills_or_turns_read_only_mid_run(tmpfs, fault):
    results, study_dir = tmpfs / "results", tmpfs / "results" / "synthetic"
    failed = threading.Event()

    def spoil():  # once the first trial is recorded, fill the disk (or remount it read-only) under the running study
        deadline = time.monotonic() + 120
        while not _recorded(study_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        if fault == "full":
            with open(tmpfs / "filler", "wb") as f, pytest.raises(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        else:  # the metrics folder turns read-only (a remount of the whole disk is refused while the lock is open)
            metrics = study_dir / "metrics"
            subprocess.run(["mount", "--bind", str(metrics), str(metrics)], check=True)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(metrics)], check=True)
        failed.set()

    spoiler = threading.Thread(target=spoil, daemon=True)
    spoiler.start()
    done = _run(results)
    spoiler.join(timeout=10)
    assert failed.is_set()
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("studies: ")]
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-3000:]
    why = "No space left on device" if fault == "full" else "Read-only file system"
    assert lines[0].startswith(f"studies: error: cannot write results to {study_dir}") and why in lines[0], lines
    assert "Ray retries it" not in done.stderr and "Traceback" not in done.stderr.split("studies: error")[-1]
    before = read_trials(study_dir)
    assert 1 <= len(before) < 12 and before["trial_id"].is_unique and (before["status"] == "ok").all()
    assert _hidden(study_dir) == []  # no half-written temporary file holds the space
    if fault == "full":
        (tmpfs / "filler").unlink()
    else:
        subprocess.run(["umount", str(study_dir / "metrics")], check=True)
    again = _run(results)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"skipped {len(before)} finished" in again.stdout
    _exactly_once(_synthetic.get_study(seeds=6, steps=3, sleep=0.3), study_dir)
