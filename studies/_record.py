"""Recording a run: each finished trial's metrics and row, written off Ray Tune's callback by one writer thread;
the run's metadata; the study's lock.

`Recorder` is fed by the Ray Tune callback (`studies._ray`) in the driver and hands each finished trial to a
`TrialWriter`: a bounded queue drained by one thread that writes the trial's metrics file, then appends the rows of
every trial it has in hand as one part of the trial table (`analysis.schema.append_trials`). So recording a trial
costs the same at the 10,000th trial as at the first, and the callback thread never waits on a disk or a bucket
unless the queue is full. A trial whose row was not written is not finished: the next run re-runs it. The queue is
drained when the run ends, normally or by Ctrl-C / SIGTERM; a SIGKILL loses at most the trials in it.
"""

import fcntl
import hashlib
import json
import math
import platform
import queue
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from analysis.schema import append_trials, write_metrics
from analysis.store import OBJECT_STORES, first_line, resolve
from studies import Study, StudyError
from studies._plan import Planned

VERSIONED = ("torch", "ray", "optuna", "numpy", "pandas", "pyarrow", "scipy", "scikit-learn", "claimbench")


def git_commit() -> str:
    """The repository's HEAD commit (with `-dirty` if the tree has changes), or `unknown` outside git."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True
        ).stdout
        return sha + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> dict[str, str]:
    """Installed versions of the packages that shape results, plus Python's."""
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def data_sources(study: Study) -> list[str]:
    """The study's data files with their sha256, or why they could not be read here (e.g. full data on workers only)."""
    if study.sources is None:
        return []
    try:
        return study.sources()
    except (OSError, ValueError) as exc:
        return [f"unavailable on the driver: {exc}"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def lock_path(study_dir: Path | str) -> Path:
    """The local file `exclusive` locks: `results/<study>/.lock`, or for an object store a file on this machine.

    S3 and GCS offer no create-if-absent that pyarrow exposes, so a lock object in the bucket would race (two
    drivers can both see it missing and both write it) and a killed driver would leave it behind. A study in a
    bucket is therefore locked on the machine running the driver (the cluster's head, where every `ray job submit`
    runs): `<tmp>/claimbench-locks/<sha256 of the study's URI>.lock`. Two drivers on different machines writing
    the same prefix are not stopped; don't do that (the trial table would keep the last writer's rows).
    """
    filesystem, path = resolve(study_dir)
    if filesystem.type_name not in OBJECT_STORES:
        return Path(path) / ".lock"
    key = hashlib.sha256(f"{filesystem.type_name}://{path}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "claimbench-locks" / f"{key}.lock"


@contextmanager
def exclusive(study_dir: Path | str):
    """Hold the study's lock (`lock_path`) so two runs never write the same tables at once."""
    path = lock_path(study_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyError(f"another run is writing {study_dir} (lock held)") from None
        yield


@contextmanager
def writing(study_dir: Path | str):
    """The driver's own writes of the results: a failed one (ENOSPC, EACCES, EROFS…) is one line, `StudyError`."""
    try:
        yield
    except OSError as exc:
        raise StudyError(
            f"cannot write results to {study_dir}: {first_line(exc)}; make room (or restore write access) and run the "
            f"same command again to resume"
        ) from exc


DIVERGED = "train/diverged"
"""A trainable that stops a run by its own instability rule reports this metric as 1; the run is then `diverged`."""


ERROR = "claimbench/error"
"""Reported by the trial wrapper when the trainable raises: `Type: message`. The trial then ends normally, so Ray
never retries it; the recorder marks it `failed` (a re-run of the command tries it again)."""


BUNDLE_PROGRESS_S = 30.0
"""Seconds between progress lines of a running bundle."""


MEMBERS = "claimbench/members"
"""A bundle's report: trial id -> that member's metrics of this step."""


class Recorder:
    """Collects each trial's reports in the driver and hands the trial's row and metrics to the writer when it ends.

    Fed by the Ray Tune callback (`studies._ray`); also prints live progress. Close it (or use it as a context
    manager) so that every finished trial is written.
    """

    def __init__(self, study: Study, study_dir: Path | str, total: int, common: dict, label: str = ""):
        self.study, self.dir, self.common, self.total, self.label = study, study_dir, common, total, label
        self.by_id: dict[str, Planned] = {}
        self.metrics: dict[str, list[tuple[int, int, str, float]]] = {}
        self.last: dict[str, dict[str, float]] = {}
        self.started: dict[str, float] = {}
        self.started_at: dict[str, str] = {}
        self.running: set[str] = set()
        self.bundle: dict[str, tuple[str | None, int]] = {}
        self.bundle_printed: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.counts = {"ok": 0, "diverged": 0, "failed": 0}
        self.retried = 0
        self.writer: TrialWriter | None = None  # started at the first finished trial
        self.finish_s: list[float] = []
        """Seconds each `finish` took on the callback thread (for `bench/orchestration.py --scale`)."""
        self.tty = sys.stderr.isatty()  # asked once: 0.35 ms a call, twice a trial
        self.t0 = time.monotonic()

    def start(self, p: Planned, bundle: str | None = None, size: int = 1) -> None:
        trial_id = p.trial_id
        self.by_id[trial_id] = p
        self.bundle[trial_id] = (bundle, size)
        self.started[trial_id], self.started_at[trial_id] = time.monotonic(), now()
        self.metrics[trial_id], self.last[trial_id] = [], {}
        self.running.add(trial_id)
        if self.tty:
            self.progress()

    def result(self, trial_id: str, result: dict) -> None:
        if ERROR in result:
            self.errors[trial_id] = str(result[ERROR])
            return
        step = int(result.get("step", result.get("training_iteration", 0)))
        for key, value in result.items():
            if "/" not in key or isinstance(value, bool):
                continue
            if isinstance(value, (list, tuple)):  # a series: element i at (step, series i), one report for all
                self.metrics[trial_id].extend((step, i, key, float(x)) for i, x in enumerate(value))
            elif isinstance(value, (int, float)):
                self.metrics[trial_id].append((step, 0, key, float(value)))
                self.last[trial_id][key] = float(value)

    def bundle_progress(self, bundle: str, size: int, members: dict[str, dict]) -> None:
        """A line for a running bundle at most every `BUNDLE_PROGRESS_S` seconds: its members finish only together."""
        t = time.monotonic()
        if t - self.bundle_printed.get(bundle, self.t0) < BUNDLE_PROGRESS_S:
            return
        self.bundle_printed[bundle] = t
        steps = [int(m["step"]) for m in members.values() if "step" in m]
        at = f"step {max(steps)}" if steps else "running"
        print(f"[{self.study.name}/{self.study.budget}{self.label}] {bundle} ({size} runs): {at}, {len(members)} reporting, "
              f"{t - self.t0:.0f}s elapsed", file=sys.stderr, flush=True)  # fmt: skip

    def retry(self, trial_id: str, error: str) -> None:
        """Ray restarts the trial after an infrastructure failure; its partial reports are dropped (`start` again)."""
        self.retried += 1
        self.running.discard(trial_id)
        print(f"  trial {trial_id}: worker lost ({error}); Ray retries it", file=sys.stderr, flush=True)

    def finish(self, trial_id: str, error: str | None = None) -> None:
        """The trial ended: its row and metrics go to the writer (`TrialWriter`), off this (Ray Tune's) thread."""
        self.running.discard(trial_id)
        if self.write_error is not None:  # the run is stopping: a trial Ray stops on the way out has not finished
            return
        t0 = time.perf_counter()
        p = self.by_id[trial_id]
        error = error or self.errors.pop(trial_id, None)
        last = self.last.pop(trial_id, {})
        diverged = any(k.endswith("loss") and not math.isfinite(v) for k, v in last.items()) or last.get(DIVERGED, 0) > 0
        status = "failed" if error is not None else ("diverged" if diverged else "ok")
        bundle, size = self.bundle.pop(trial_id, (None, 1))
        row = {
            **self.common,
            "phase": p.phase,
            "arm": p.arm,
            "trial_id": trial_id,
            "config_hash": p.config_hash,
            "seed": p.seed,
            "status": status,
            "error": error,
            "wall_s": time.monotonic() - self.started.pop(trial_id, time.monotonic()),  # a bundle member: the bundle's
            "started_at": self.started_at.pop(trial_id, None),
            "finished_at": now(),
            "hparams": json.dumps(p.config, sort_keys=True, default=repr),
            "bundle": bundle,
            "bundle_size": size,
            **{f"config/{k}": v for k, v in p.config.items()},
            **last,
        }
        if self.writer is None:
            self.writer = TrialWriter(self.dir)
        self.writer.put(trial_id, self.metrics.pop(trial_id, []), row)
        self.counts[status] += 1
        self.finish_s.append(time.perf_counter() - t0)
        self.progress(final=trial_id if status != "ok" else None, error=error)

    @property
    def write_error(self) -> str | None:
        """The first write of the results that failed (a full disk, a lost permission): the run stops, records nothing
        more, and says so in one line."""
        return None if self.writer is None else self.writer.error

    @property
    def written(self) -> int:
        """Trials whose metrics and row are written."""
        return 0 if self.writer is None else self.writer.written

    def close(self) -> None:
        """Write every trial handed over so far, and stop the writer (on a normal end, Ctrl-C and SIGTERM alike)."""
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def progress(self, final: str | None = None, error: str | None = None) -> None:
        """One status line: rewritten in place on a terminal, a plain line per finished trial otherwise (CI logs)."""
        done = sum(self.counts.values())
        elapsed = time.monotonic() - self.t0
        eta = f"{elapsed / done * (self.total - done):.0f}s" if done else "?"
        line = (
            f"[{self.study.name}/{self.study.budget}{self.label}] {done}/{self.total} done, {len(self.running)} running, "
            f"{self.counts['failed']} failed, {self.counts['diverged']} diverged, {elapsed:.0f}s elapsed, ETA {eta}"
        )
        tty = self.tty
        if final is not None:
            note = f"  trial {final}: {'failed: ' + error if error else 'diverged'}"
            print(("\r\033[K" if tty else "") + note, file=sys.stderr, flush=True)
        if tty:
            print("\r\033[K" + line, end="\n" if done == self.total else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


class TrialWriter:
    """One thread that writes finished trials: each trial's metrics file, then the rows of every trial in hand as one
    part of the trial table (`append_trials`), so a row is only ever written after its metrics.

    `put` blocks while `QUEUE` trials wait (the callback thread then waits on the disk, not on memory). The first
    failed write sets `error`; nothing is written after it.
    """

    QUEUE = 256

    def __init__(self, study_dir: Path | str):
        self.dir = study_dir
        self.queue: queue.Queue = queue.Queue(self.QUEUE)
        self.error: str | None = None
        self.written = 0
        self.write_s: list[float] = []
        """Seconds of writing per trial (a batch's time shared by its trials), for `bench/orchestration.py --scale`."""
        self.write_cpu_s: list[float] = []
        """The same in this thread's CPU time: what writing costs, without the waits for the GIL held by Ray Tune's loop."""
        self.thread = threading.Thread(target=self._drain, name="claimbench-writer", daemon=True)
        self.thread.start()

    def __getstate__(self) -> dict:
        # Ray Tune pickles its stop rule and callbacks into its experiment checkpoint; the queue and the thread stay in
        # this process (a copy read back from a checkpoint writes nothing).
        return {"dir": self.dir, "error": self.error, "written": self.written, "write_s": []}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, queue=None, thread=None)

    def put(self, trial_id: str, rows: list[tuple[int, int, str, float]], row: dict) -> None:
        if self.error is None:
            self.queue.put((trial_id, rows, row))

    def close(self) -> None:
        """Write what is queued, then end the thread."""
        self.queue.put(None)
        self.thread.join()

    def _drain(self) -> None:
        while True:
            batch = [self.queue.get()]
            while batch[-1] is not None:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            trials = [b for b in batch if b is not None]
            if trials and self.error is None:
                self._write(trials)
            if batch[-1] is None:
                return

    def _write(self, trials: list[tuple[str, list, dict]]) -> None:
        t0, c0 = time.perf_counter(), time.thread_time()
        trial_id = trials[0][0]
        try:
            for trial_id, rows, _ in trials:
                write_metrics(self.dir, trial_id, rows)
            # what was written: a later run checks the metrics are all there (`metric_rows`)
            append_trials(self.dir, [row | {"metric_rows": len(rows)} for _, rows, row in trials])
        except Exception as exc:  # noqa: BLE001 - a full disk, a lost permission, a store gone: `fit` stops the run
            self.error = f"{first_line(exc)} (writing trial {trial_id})"
            return
        self.written += len(trials)
        self.write_s += [(time.perf_counter() - t0) / len(trials)] * len(trials)
        self.write_cpu_s += [(time.thread_time() - c0) / len(trials)] * len(trials)
