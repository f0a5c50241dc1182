"""Run a study: expand its grid, skip finished trials, fan the rest out over Ray Tune, record as they finish.

Ray starts inside this process unless an address is given (`auto` joins a running cluster). The embedded
Ray listens on 127.0.0.1 only. A driver-side callback writes each trial's row and metrics to Parquet the moment
the trial ends, so a killed run loses at most the trials in flight and the same command resumes it. Results go to
a local folder or a URI (`s3://bucket/prefix`, see `analysis.store`); only the driver writes them.
"""

import fcntl
import hashlib
import itertools
import json
import logging
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from analysis.schema import (
    FINISHED,
    incomplete_trials,
    read_trials,
    set_aside_trials,
    upsert_trials,
    write_json_atomic,
    write_metrics,
)
from analysis.store import OBJECT_STORES, check_reachable, check_writable, first_line, join, resolve
from studies import Study, StudyError, config_hash, validate

VERSIONED = ("torch", "ray", "optuna", "numpy", "pandas", "pyarrow", "scipy", "scikit-learn", "claimbench")


@dataclass(frozen=True)
class Planned:
    """One grid point to run."""

    trial_id: str
    config_hash: str
    seed: int
    arm: str
    config: dict
    phase: str = "main"


def arm_of(study: Study, config: dict) -> str:
    """The arm label: the scientific values, e.g. `label_noise=0.2,flood_level=0.3`."""
    return ",".join(f"{k}={config[k]}" for k in study.scientific)


def planned(study: Study, config: dict, phase: str = "main") -> Planned:
    """A trial of `config` with its id `<config hash>-s<seed>` (prefixed `tune-` in the tuning phase)."""
    h = config_hash(study.name, study.budget, config, study.seed_key)
    seed = int(config[study.seed_key])
    prefix = "tune-" if phase == "tune" else ""
    return Planned(f"{prefix}{h}-s{seed}", h, seed, arm_of(study, config), config, phase)


def plan(study: Study, best: dict[str, dict] | None = None) -> list[Planned]:
    """Every main trial of the study: the grid, with each arm's tuned nuisance values merged in.

    Args:
        study (Study):
            The study.
        best (dict[str, dict] | None):
            Arm label -> best nuisance values, for a study with tuning; arms missing here are left out.

    Returns:
        list[Planned]: in grid order.
    """
    configs = validate(study)
    if study.tuning is not None:
        best = best or {}
        untuned = [not study.tuning.space(cfg) for cfg in configs]
        configs = [
            {**cfg, **best.get(arm_of(study, cfg), {})}
            for cfg, plain in zip(configs, untuned, strict=True)
            if plain or arm_of(study, cfg) in best
        ]
    out = [planned(study, cfg) for cfg in configs]
    ids = [p.trial_id for p in out]
    if len(set(ids)) != len(ids):
        raise StudyError(f"study {study.name!r} at budget {study.budget!r} repeats grid points")
    return out


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
RETRIES = 3
"""Ray restarts a trial whose worker died (its node was lost or preempted, the process was killed) this many times
(`ray.tune.FailureConfig(max_failures=…)`). Exceptions raised by the trainable are caught in the trial (`ERROR`)
and diverged trials end normally, so neither is ever retried: only infrastructure failures are."""


class Recorder:
    """Collects each trial's reports in the driver and writes the trial's row and metrics when it ends.

    Written as a Ray Tune callback (the hooks below are Ray's names); also prints live progress.
    """

    def __init__(self, study: Study, study_dir: Path | str, total: int, common: dict, label: str = ""):
        self.study, self.dir, self.common, self.total, self.label = study, study_dir, common, total, label
        self.by_id: dict[str, Planned] = {}
        self.metrics: dict[str, list[tuple[int, str, float]]] = {}
        self.last: dict[str, dict[str, float]] = {}
        self.started: dict[str, float] = {}
        self.started_at: dict[str, str] = {}
        self.running: set[str] = set()
        self.bundle: dict[str, tuple[str | None, int]] = {}
        self.bundle_printed: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.counts = {"ok": 0, "diverged": 0, "failed": 0}
        self.retried = 0
        self.write_error: str | None = None
        """The first write of the results that failed (a full disk, a lost permission): the run stops, records nothing
        more (a trial Ray stops on the way out has not finished), and says so in one line."""
        self.t0 = time.monotonic()

    def start(self, p: Planned, bundle: str | None = None, size: int = 1) -> None:
        trial_id = p.trial_id
        self.by_id[trial_id] = p
        self.bundle[trial_id] = (bundle, size)
        self.started[trial_id], self.started_at[trial_id] = time.monotonic(), now()
        self.metrics[trial_id], self.last[trial_id] = [], {}
        self.running.add(trial_id)
        if sys.stderr.isatty():
            self.progress()

    def result(self, trial_id: str, result: dict) -> None:
        if ERROR in result:
            self.errors[trial_id] = str(result[ERROR])
            return
        step = int(result.get("step", result.get("training_iteration", 0)))
        for key, value in result.items():
            if "/" not in key or isinstance(value, bool):
                continue
            if isinstance(value, (list, tuple)):  # a series: element i at step + i, one report instead of many
                self.metrics[trial_id].extend((step + i, key, float(x)) for i, x in enumerate(value))
            elif isinstance(value, (int, float)):
                self.metrics[trial_id].append((step, key, float(value)))
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
        if self.write_error is not None:
            self.running.discard(trial_id)
            return
        p = self.by_id[trial_id]
        error = error or self.errors.pop(trial_id, None)
        last = self.last.get(trial_id, {})
        diverged = any(k.endswith("loss") and not math.isfinite(v) for k, v in last.items()) or last.get(DIVERGED, 0) > 0
        status = "failed" if error is not None else ("diverged" if diverged else "ok")
        row = {
            **self.common,
            "phase": p.phase,
            "arm": p.arm,
            "trial_id": trial_id,
            "config_hash": p.config_hash,
            "seed": p.seed,
            "status": status,
            "error": error,
            "wall_s": time.monotonic() - self.started.get(trial_id, time.monotonic()),  # a bundle member: the bundle's
            "started_at": self.started_at.get(trial_id),
            "finished_at": now(),
            "hparams": json.dumps(p.config, sort_keys=True, default=repr),
            "bundle": self.bundle.get(trial_id, (None, 1))[0],
            "bundle_size": self.bundle.get(trial_id, (None, 1))[1],
            **{f"config/{k}": v for k, v in p.config.items()},
            **last,
        }
        rows = self.metrics.get(trial_id, [])
        try:
            write_metrics(self.dir, trial_id, rows)
            upsert_trials(self.dir, [row | {"metric_rows": len(rows)}])  # what was written: a later run checks it
        except OSError as exc:  # the driver's own I/O: not the trial's fault, so no Ray retry; `_fit` stops the run
            self.write_error = f"{first_line(exc)} (writing trial {trial_id})"
            self.running.discard(trial_id)
            return
        self.counts[status] += 1
        self.running.discard(trial_id)
        self.progress(final=trial_id if status != "ok" else None, error=error)

    def progress(self, final: str | None = None, error: str | None = None) -> None:
        """One status line: rewritten in place on a terminal, a plain line per finished trial otherwise (CI logs)."""
        done = sum(self.counts.values())
        elapsed = time.monotonic() - self.t0
        eta = f"{elapsed / done * (self.total - done):.0f}s" if done else "?"
        line = (
            f"[{self.study.name}/{self.study.budget}{self.label}] {done}/{self.total} done, {len(self.running)} running, "
            f"{self.counts['failed']} failed, {self.counts['diverged']} diverged, {elapsed:.0f}s elapsed, ETA {eta}"
        )
        tty = sys.stderr.isatty()
        if final is not None:
            note = f"  trial {final}: {'failed: ' + error if error else 'diverged'}"
            print(("\r\033[K" if tty else "") + note, file=sys.stderr, flush=True)
        if tty:
            print("\r\033[K" + line, end="\n" if done == self.total else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


def _tune_callback(recorder: Recorder, identify):
    """A Ray Tune callback feeding the recorder; `identify(ray_config) -> list[Planned]` names the trials a Ray trial
    runs: one, or the members of a bundle, whose reports arrive together under `MEMBERS`."""
    from ray import tune

    ids: dict[str, list[str]] = {}
    stopped: set[str] = set()

    def begin(trial) -> list[str]:
        ps = identify(trial.config)
        bundle = trial.config["__trial"].get("bundle") if "__trial" in trial.config else None
        ids[trial.trial_id] = [p.trial_id for p in ps]
        for p in ps:
            recorder.start(p, bundle, len(ps))
        return ids[trial.trial_id]

    class _Callback(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            begin(trial)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            members = result.get(MEMBERS)
            for trial_id in ids[trial.trial_id]:
                if members is None:
                    recorder.result(trial_id, result)
                elif trial_id in members and trial_id not in stopped:
                    recorder.result(trial_id, members[trial_id])
                    if _nonfinite_loss(trial_id, members[trial_id]):
                        stopped.add(trial_id)  # the stop rule, per member: later reports of a diverged member are dropped
            if members is not None:
                recorder.bundle_progress(trial.config["__trial"]["bundle"], len(ids[trial.trial_id]), members)

        def on_trial_complete(self, iteration, trials, trial, **info):
            for trial_id in ids[trial.trial_id]:
                recorder.finish(trial_id)

        def on_trial_recover(self, iteration, trials, trial, **info):
            for trial_id in ids[trial.trial_id]:
                recorder.retry(trial_id, _error_line(trial))

        def on_trial_error(self, iteration, trials, trial, **info):
            # one that failed before it started (e.g. no resources) is recorded all the same
            for trial_id in ids[trial.trial_id] if trial.trial_id in ids else begin(trial):
                recorder.finish(trial_id, error=_error_line(trial))

    return _Callback()


def _error_line(trial) -> str:
    """The last line of the trial's traceback (`ValueError: ...`), from the error file Ray writes."""
    try:
        lines = [ln.strip() for ln in Path(trial.error_file).read_text().splitlines() if ln.strip()]
        return lines[-1] if lines else "unknown error"
    except (OSError, TypeError):
        return "unknown error (no error file)"


def _nonfinite_loss(trial_id: str, result: dict) -> bool:
    """Stop rule: any reported `*loss` metric is NaN or inf (the trial is then recorded as diverged)."""
    return any(k.endswith("loss") and isinstance(v, float) and not math.isfinite(v) for k, v in result.items())


def _unwrap(config: dict) -> dict:
    """The study config inside a Ray config: a grid point (`__trial`), or an arm's fixed part plus sampled nuisance."""
    if "__trial" in config:
        return config["__trial"]["configs"][0]
    return {**config["__fixed"], **{k: v for k, v in config.items() if k != "__fixed"}}


def _entry(trainable, threads: int, fused=None, metric: str | None = None):
    """The function Ray runs: pin torch threads to the trial's CPUs, call the study's trainable (or, for a bundle,
    its fused trainable, whose per-member reports go out as one `MEMBERS` report a step), report what it raised.

    An exception of the trainable is reported as `ERROR` and the trial ends normally, so that Ray's retries
    (`RETRIES`) are left for failures of the infrastructure; the traceback goes to the trial's log. In a bundle
    that fails every member is recorded failed. A tuning trial's error report also carries its `metric` as NaN: the
    searcher requires the metric in every report, and takes NaN as a failed evaluation.
    """

    def run_trial(config: dict) -> None:
        import traceback

        import torch
        from ray import tune

        torch.set_num_threads(threads)
        run = config.get("__trial", {})
        try:
            if run.get("bundle"):
                ids = run["ids"]

                def report(out: list[dict | None]) -> None:
                    tune.report({MEMBERS: {i: m for i, m in zip(ids, out, strict=True) if m is not None}})

                fused(run["configs"], report)
            else:
                trainable(_unwrap(config))
        except Exception as exc:  # noqa: BLE001 - the trial is recorded failed, the study goes on
            traceback.print_exc()
            tune.report({ERROR: f"{type(exc).__name__}: {exc}", **({metric: math.nan} if metric else {})})

    run_trial.__name__ = getattr(trainable, "__name__", "trial")
    return run_trial


def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join a cluster (`address`) or start Ray inside this process, bound to 127.0.0.1.

    Args:
        address (str | None):
            `None` for the embedded default, `auto` or `ray://…`/`host:port` for a running cluster.
        num_cpus (int | None):
            CPUs of the embedded Ray (default: all).
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keeps GCS and raylet on 127.0.0.1
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import logging

    import ray

    if ray.is_initialized():
        return
    ours = signal.getsignal(signal.SIGTERM)  # ray.init replaces a SIGTERM handler with its own sys.exit(15)
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    else:
        # "local" always starts a new instance: with None, Ray joins any other Ray already running on the machine.
        ray.init(
            address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False
        )
    if callable(ours) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, ours)  # the command line's: SIGTERM stops a run like Ctrl-C (studies.__main__)


def connect(address: str, timeout: float = 3.0) -> None:
    """Join the Ray cluster at `address` before anything is written, or fail fast with a one-line `StudyError`.

    A `host:port` (or `ray://host:port`) address is first probed with a plain TCP connection, so an unreachable
    head is reported within `timeout` seconds instead of after Ray's own retries.

    Args:
        address (str):
            `auto`, `host:port` or `ray://host:port`.
        timeout (float):
            Seconds to wait for the TCP probe.
    """
    if address != "auto":
        host, _, port = address.removeprefix("ray://").rpartition(":")
        if not host or not port.isdigit():
            raise StudyError(f"--address {address!r} is not 'auto', 'host:port' or 'ray://host:port'")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise StudyError(f"cannot reach Ray at {address} ({reason}); is the cluster up (ray up cluster.yaml)?") from exc
    try:
        init_ray(address)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(f"cannot join Ray at {address}: {first}") from exc


def run_checks(study: Study, study_dir: Path | str, common: dict, force: bool) -> None:
    """Run the study's exact checks in this process and store them as trial `checks-<hash>` (arm `checks`)."""
    if study.checks is None:
        return
    cfg = {"checks": study.checks.__name__}
    h = config_hash(study.name, study.budget, cfg)
    trial_id = f"checks-{h}"
    done = read_trials(study_dir)
    mine = done[(done["trial_id"] == trial_id) & done["status"].isin(FINISHED)]
    if not force and not mine.empty and not incomplete_trials(study_dir, mine):
        return
    t0, error, values = time.monotonic(), None, {}
    try:
        values = study.checks()
    except Exception as exc:  # noqa: BLE001 - recorded as a failed trial, the study goes on
        error = f"{type(exc).__name__}: {exc}"
    rows = [(step, metric, float(v)) for metric, vs in values.items() for step, v in enumerate(vs)]
    row = {
        **common,
        "phase": "checks",
        "arm": "checks",
        "trial_id": trial_id,
        "config_hash": h,
        "seed": 0,
        "status": "failed" if error else "ok",
        "error": error,
        "wall_s": time.monotonic() - t0,
        "started_at": common["started_at"],
        "finished_at": now(),
        "hparams": json.dumps(cfg),
        "metric_rows": len(rows),
    }
    with writing(study_dir):
        write_metrics(study_dir, trial_id, rows)
        upsert_trials(study_dir, [row])
    print(
        f"[{study.name}/{study.budget}] exact checks {'failed: ' + error if error else 'done'} ({row['wall_s']:.1f}s)",
        file=sys.stderr,
    )


def check_results(study_dir: Path | str) -> None:
    """Refuse, in one line, a results location that is unknown or cannot be written, before anything is written."""
    try:
        check_reachable(study_dir)  # a store that does not answer is named within 30 s; Ctrl-C works meanwhile
        check_writable(study_dir)
    except (OSError, ValueError) as exc:  # pyarrow: ArrowInvalid for an unknown scheme, OSError for the rest
        raise StudyError(f"cannot write results to {study_dir}: {first_line(exc)}") from exc


def run(
    study: Study, results: Path | str, address: str | None = None, force: bool = False, command: str = "", fuse: bool = True
) -> dict:
    """Run every unfinished trial of a study (tuning first, if it has any) and record it.

    Args:
        study (Study):
            The validated study.
        results (Path | str):
            Results root, a local path or a URI (`s3://bucket/prefix`); tables go to `results/<study>/`.
        address (str | None):
            Ray address, or `None` for the embedded default.
        force (bool):
            Re-run finished trials too; a damaged or foreign trial table (refused without it, `ResultsError`, before
            anything is written) is moved aside to `trials.parquet.damaged-<time>` and the study starts afresh.
        command (str):
            The command line, for the metadata.
        fuse (bool):
            Train the study's fusable main trials as bundles (`Study.fusion`); `False` runs one per Ray trial.

    Returns:
        dict: counts of planned, skipped and run main trials by status (`tuned`: tuning trials run; `retried`:
        main-trial restarts by Ray after a worker or node was lost; `bundles`: Ray trials that ran several).
    """
    grid = validate(study)
    study_dir = join(results, study.name)
    check_results(study_dir)  # fail fast, before anything is written
    if address:
        connect(address)
    check_resources(study, address)
    if not force:  # a damaged or foreign table: `ResultsError` before anything is written (and the embedded Ray starts)
        read_trials(study_dir)
    with exclusive(study_dir):
        with writing(study_dir):
            aside = force and set_aside_trials(study_dir, now().replace(":", ""))
        if aside:
            print(f"[{study.name}/{study.budget}] the trial table was damaged or foreign; kept it as {aside}", file=sys.stderr)
        common = {
            "study": study.name,
            "budget": study.budget,
            "git_commit": git_commit(),
            "versions": json.dumps(versions(), sort_keys=True),
            "started_at": now(),
        }
        meta = {
            "study": study.name,
            "budget": study.budget,
            "article": study.article,
            "command": command,
            "git_commit": common["git_commit"],
            "versions": versions(),
            "started_at": common["started_at"],
            "grid_points": len(grid),
            "seeds": sorted({int(c[study.seed_key]) for c in grid}),
            "tuning": None if study.tuning is None else {**study.tuning.__dict__, "nuisance": repr(study.tuning.nuisance)},
            "resources": study.resources,
            "host": platform.node(),
            "data": data_sources(study),
            # The main trials a claim reads (`analysis.load.tables_for`): unknown (null) until every arm's tuning
            # has finished, so confirmation rows of an unfinished or superseded tuning are never read.
            "main_trials": None if study.tuning is not None else [p.trial_id for p in plan(study)],
        }
        meta_path = join(study_dir, "metadata", f"{study.budget}.json")
        with writing(study_dir):
            write_json_atomic(meta, meta_path)
        run_checks(study, study_dir, common, force)
        tuned, best = (0, None) if study.tuning is None else tune_arms(study, study_dir, common, address, force)
        todo = plan(study, best)
        if study.tuning is not None:  # every arm tuned in full: the confirmation runs are chosen
            with writing(study_dir):
                write_json_atomic(meta | {"main_trials": [p.trial_id for p in todo]}, meta_path)
        done = read_trials(study_dir)
        finished = set(done.loc[done["status"].isin(FINISHED), "trial_id"])
        lacking = incomplete_trials(study_dir, done[done["trial_id"].isin({p.trial_id for p in todo} & finished)])
        if lacking and not force:
            first, why = next(iter(lacking.items()))
            print(f"[{study.name}/{study.budget}] {len(lacking)} finished trial(s) lack their metrics ({first}: {why}"
                  f"{' and more' if len(lacking) > 1 else ''}): running them again", file=sys.stderr)  # fmt: skip
        finished -= set(lacking)
        pending = [p for p in todo if force or p.trial_id not in finished]
        summary = {"planned": len(todo), "skipped": len(todo) - len(pending), "tuned": tuned}
        if not pending:
            print(f"[{study.name}/{study.budget}] all {len(todo)} trials already finished", file=sys.stderr)
            return summary | {"ok": 0, "diverged": 0, "failed": 0, "retried": 0, "bundles": 0}
        recorder = Recorder(study, study_dir, len(pending), common)
        by_id = {p.trial_id: p for p in pending}
        units = bundles(study, pending, address) if fuse and study.fusion is not None else [[p] for p in pending]
        space = {"__trial": {"grid_search": [_unit(u) for u in units]}}
        _fit(study, space, recorder, lambda c: [by_id[i] for i in c["__trial"]["ids"]], address)
        return summary | recorder.counts | {"retried": recorder.retried, "bundles": sum(len(u) > 1 for u in units)}


def _unit(members: list[Planned]) -> dict:
    """A Ray grid value: one trial, or a bundle named by a hash of its members' ids."""
    ids = [p.trial_id for p in members]
    bundle = None
    if len(members) > 1:
        bundle = f"bundle-{hashlib.sha256(' '.join(ids).encode()).hexdigest()[:12]}"
    return {"ids": ids, "configs": [p.config for p in members], "bundle": bundle}


def slots_and_memory(study: Study, address: str | None) -> tuple[int, float]:
    """Trials the connected Ray can run at once for this study, and the host memory (bytes) each may use.

    Slots: the cluster's CPUs (or GPUs, for GPU trials) over a trial's request, capped by `max_concurrent`.
    Memory: Ray's `memory` resource (what it leaves for tasks, not the object store) shared by the slots, halved
    as a margin for the data and the framework.
    """
    import ray

    init_ray(address)
    have = ray.cluster_resources()
    cpu, gpu = float(study.resources.get("cpu", 1)), float(study.resources.get("gpu", 0))
    slots = int(have.get("GPU", 0) // gpu) if gpu else int(have.get("CPU", 1) // cpu)
    slots = max(1, min(slots, study.max_concurrent or slots))
    return slots, 0.5 * float(have.get("memory", 8 * 2**30)) / slots


def gpu_share_bytes(study: Study) -> float | None:
    """GPU memory (bytes) one trial of the study may use: half its share of its GPU's memory, or `None` if unknown.

    Asked of the GPU itself by a task with the trial's GPU share (the driver may have none, e.g. a cluster's head);
    half, as for host memory, leaves room for the data, the framework and the CUDA context. A logical GPU without
    CUDA behind it (a test cluster) gives `None`.
    """
    import ray

    def total() -> int | None:
        import torch

        return torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else None

    share = float(study.resources["gpu"])
    probe = ray.remote(num_cpus=0, num_gpus=min(share, 1.0))(total).remote()
    ready, _ = ray.wait([probe], timeout=120)
    if not ready:
        ray.cancel(probe, force=True)
        return None  # no GPU came free in time: size bundles as on CPU
    memory = ray.get(probe)
    return None if memory is None else 0.5 * memory * min(share, 1.0)  # a bundle trains on one device


def bundles(study: Study, pending: list[Planned], address: str | None) -> list[list[Planned]]:
    """Group fusable pending trials into bundles; the rest run alone.

    Trials go in one group when their configs agree outside `Fusion.keys`. A group is cut into equal bundles of at
    most what a slot's memory holds (`Fusion.member_bytes`): on CPU host memory and at most `max_members` members, on
    a GPU the trial's share of GPU memory (`gpu_share_bytes`) with no other cap. It is also cut into at least as many
    bundles as there are slots (a multiple of them when it has more), so that every slot works.

    Returns:
        list[list[Planned]]: units in grid order of their first member; a unit of one runs unfused.
    """
    fusion = study.fusion
    slots, memory = slots_and_memory(study, address)
    gpu = float(study.resources.get("gpu", 0)) > 0
    device_memory = gpu_share_bytes(study) if gpu else None
    groups: dict[str, list[Planned]] = {}
    units: list[list[Planned]] = []
    for p in pending:
        if not fusion.can_fuse(p.config, gpu):
            units.append([p])
            continue
        key = json.dumps({k: v for k, v in p.config.items() if k not in fusion.keys}, sort_keys=True, default=repr)
        groups.setdefault(key, []).append(p)
    for members in groups.values():
        each = max(1, fusion.member_bytes(members[0].config))
        if device_memory is not None:
            cap = max(1, int(device_memory // each))
        else:
            cap = max(1, min(fusion.max_members, int(memory // each)))
        count = math.ceil(len(members) / cap)
        count = min(len(members), slots * math.ceil(count / slots))
        cuts = [round(i * len(members) / count) for i in range(count + 1)]  # sizes differ by at most one
        units += [members[a:b] for a, b in itertools.pairwise(cuts)]
    order = {p.trial_id: i for i, p in enumerate(pending)}
    return sorted(units, key=lambda u: order[u[0].trial_id])


def largest_node(address: str | None) -> dict[str, float]:
    """CPUs and GPUs of the largest node the Ray we are connected to has, or can add (`{}`: unknown).

    The embedded Ray is this machine: its live node is all there is. A cluster's live nodes come from `ray.nodes()`;
    node types an autoscaler may still start come from the cluster config it publishes in the GCS, if it does
    (`ray._private.state.state.get_cluster_config`). A cluster-launcher autoscaler that does not publish it, whose GPU
    workers may not have started yet, gives `{}`: it is told apart from a fixed cluster (`ray start` by hand, or
    `ray.cluster_utils.Cluster`) by its node-type names, which Ray's read-only provider sets to `node_<id>`. Both
    are private APIs of the Ray version the project pins.
    """
    import json

    import ray
    from ray._private import ray_constants
    from ray._private.state import state
    from ray.experimental import internal_kv

    shapes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if address:
        config = state.get_cluster_config()
        if config is not None:
            shapes += [dict(g.resources) for g in config.node_group_configs]
        else:
            status = json.loads(internal_kv._internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS) or "{}")
            types = (status.get("autoscaler_report") or {}).get("node_type_mapping") or {}
            if any(not str(t).startswith("node_") for t in types.values()):
                return {}  # an autoscaler with named node types that keeps their shapes to itself
    return {k: max((float(sh.get(k, 0)) for sh in shapes), default=0.0) for k in ("CPU", "GPU")}


def check_resources(study: Study, address: str | None) -> None:
    """Refuse, in one line, a study whose trial asks for more CPUs or GPUs than any node has (Ray would wait forever)."""
    need = {"CPU": float(study.resources.get("cpu", 1)), "GPU": float(study.resources.get("gpu", 0))}
    if not address and need["GPU"] == 0:
        return  # the embedded Ray has this machine's CPUs; nothing to start Ray early for
    init_ray(address)
    have = largest_node(address)
    if not have:
        note = f"the autoscaler's node types are unknown here; trials wait for a node with {need['GPU']:g} GPU"
        print(f"[{study.name}/{study.budget}] {note} (`python -m studies check-cluster` checks them)", file=sys.stderr)
        return
    short = [k for k in ("GPU", "CPU") if need[k] > have[k]]
    if short:
        where = f"Ray at {address}" if address else "the embedded Ray (this machine)"
        k = short[0]
        raise StudyError(
            f"study {study.name!r} at budget {study.budget!r} asks for {need[k]:g} {k} a trial, but no node of {where} "
            f"has more than {have[k]:g}"
        )


def tune_arms(
    study: Study, study_dir: Path | str, common: dict, address: str | None, force: bool
) -> tuple[int, dict[str, dict]]:
    """Optuna TPE per arm with `trials_per_arm` finished trials each; the best nuisance values per arm.

    Trials already recorded for an arm count towards its budget and are handed to the sampler as evaluated
    points, so a killed tuning phase resumes where it stopped. The choice of the best trial is made from the
    Parquet table, so it is the same on every re-run.

    Returns:
        tuple[int, dict[str, dict]]: tuning trials run now, and arm -> best nuisance values (`best_nuisance`).
    """
    from ray.tune.search.optuna import OptunaSearch

    t = study.tuning
    arms: dict[str, dict] = {}
    for cfg in validate(study):
        arms.setdefault(arm_of(study, cfg), {**cfg, study.seed_key: t.seed})
    ran = 0
    for arm, fixed in arms.items():
        if not t.space(fixed):
            continue  # nothing to tune in this arm
        prev = _tuned(read_trials(study_dir), study, arm)  # re-read: earlier arms' tuning has landed since
        if force:
            prev = prev.iloc[0:0]
        remaining = t.trials_per_arm - len(prev)
        if remaining > 0:
            known = prev[prev[t.metric].map(lambda v: isinstance(v, float) and math.isfinite(v))] if len(prev) else prev
            space = t.space(fixed)
            points = [{k: row[f"config/{k}"] for k in space} for _, row in known.iterrows()]
            storage, name = optuna_storage(study_dir), optuna_study_name(study, arm)
            _drop_optuna_study(storage, name)  # the Parquet history is handed over below; the database mirrors it
            # Seeded by the history's size: a resumed phase must not replay the first run's random start-up draws.
            search = OptunaSearch(metric=t.metric, mode=t.mode, seed=t.seed + len(prev), points_to_evaluate=points or None,
                                  evaluated_rewards=[float(v) for v in known[t.metric]] if points else None,
                                  storage=storage, study_name=name)  # fmt: skip
            recorder = Recorder(study, study_dir, remaining, common, label=f" tune {arm}")

            def identify(c: dict) -> list[Planned]:
                return [planned(study, _unwrap(c), phase="tune")]

            _fit(study, {"__fixed": fixed, **space}, recorder, identify, address, search=search, num_samples=remaining)
            ran += sum(recorder.counts.values())
    done = read_trials(study_dir)
    short = {arm: len(_tuned(done, study, arm)) for arm, fixed in arms.items() if t.space(fixed)}
    short = {arm: n for arm, n in short.items() if n < t.trials_per_arm}
    if short:  # all or nothing: an arm tuned on fewer trials than the others would change the comparison
        arm, n = next(iter(short.items()))
        more = f" and {len(short) - 1} more arm(s)" if len(short) > 1 else ""
        raise StudyError(
            f"tuning of {study.name}/{study.budget} is unfinished: arm {arm} has {n} of its {t.trials_per_arm} tuning "
            f"trials{more} (the others failed; see `error` in trials.parquet); no confirmation run starts until every "
            f"arm has its full budget: run the same command again to finish it"
        )
    return ran, best_nuisance(study, study_dir)


def optuna_storage(study_dir: Path | str):
    """The study's Optuna database, `results/<study>/optuna.db`: open it with `optuna-dashboard sqlite:///…`.

    SQLite needs a local file, so results in an object store get no database (`None`: Optuna keeps the study in
    memory); the Parquet tables hold the whole tuning history either way.
    """
    import optuna

    filesystem, path = resolve(study_dir)
    if filesystem.type_name != "local":
        return None
    Path(path).mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(f"sqlite:///{Path(path, 'optuna.db')}")


def optuna_study_name(study: Study, arm: str) -> str:
    """One Optuna study per (budget, arm): `<study>/<budget>/<arm>`."""
    return f"{study.name}/{study.budget}/{arm}"


def _drop_optuna_study(storage, name: str) -> None:
    import optuna

    if storage is None:
        return
    with suppress(KeyError):
        optuna.delete_study(study_name=name, storage=storage)


def best_nuisance(study: Study, study_dir: Path | str) -> dict[str, dict]:
    """Arm -> nuisance values of its best finished tuning trial (from the Parquet table; arms without one are absent)."""
    t, best = study.tuning, {}
    if t is None:
        return best
    done = read_trials(study_dir)
    arms = {}
    for cfg in validate(study):
        arms.setdefault(arm_of(study, cfg), cfg)
    for arm, cfg in arms.items():
        if not t.space(cfg):
            best[arm] = {}  # an untuned arm: its grid points run as they are
            continue
        prev = _tuned(done, study, arm)
        ok = prev[(prev["status"] == "ok") & prev[t.metric].map(lambda v: math.isfinite(v))] if len(prev) else prev
        if len(ok):
            pick = ok[t.metric].idxmax() if t.mode == "max" else ok[t.metric].idxmin()
            best[arm] = {k: ok.loc[pick, f"config/{k}"] for k in t.space(cfg)}
        else:
            print(
                f"[{study.name}/{study.budget}] arm {arm}: no finished tuning trial, so no confirmation runs", file=sys.stderr
            )
    return best


def trial_count(study: Study) -> int:
    """Trials a full run of the study takes: grid (or confirmation) points plus tuning trials."""
    grid = validate(study)
    tuned = {arm_of(study, c) for c in grid if study.tuning is not None and study.tuning.space(c)}
    tuning = 0 if study.tuning is None else study.tuning.trials_per_arm * len(tuned)
    return len(grid) + tuning


def _tuned(done, study: Study, arm: str):
    """Finished tuning trials of one arm at this study's budget, from the trial table `done`."""
    sel = (done["phase"] == "tune") & (done["arm"] == arm) & (done["budget"] == study.budget) & done["status"].isin(FINISHED)
    out = done[sel]
    if study.tuning.metric not in out:
        out = out.assign(**{study.tuning.metric: math.nan})
    return out.reset_index(drop=True)


def _fit(
    study: Study, space: dict, recorder: Recorder, identify, address: str | None, search=None, num_samples: int = 1
) -> None:
    """One Ray Tune run with the recorder as callback: a grid (`search=None`) or `num_samples` searcher trials."""
    init_ray(address)
    from ray import tune

    # Ray Tune's own CSV, JSON and TensorBoard loggers write every report again in this process; on 2 cores they
    # took ~20% of the trials' time (bench/README.md). The Parquet tables are the record; `=0` turns them back on.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Without those files Ray's end-of-run result grid warns once per trial that it found none; it is not used.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    threads = max(1, int(study.resources.get("cpu", 1)))
    fused = study.fusion.trainable if study.fusion is not None else None
    metric = study.tuning.metric if search is not None else None
    trainable = tune.with_resources(_entry(study.trainable, threads, fused, metric), study.resources)
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            search_alg=search, num_samples=num_samples, reuse_actors=True, max_concurrent_trials=study.max_concurrent
        ),
        run_config=tune.RunConfig(
            name=f"{study.name}-{study.budget}",  # Ray's own files (and its loggers', if on) go to ~/ray_results/<name>
            callbacks=[_tune_callback(recorder, identify)],
            stop=_stopper(recorder),
            failure_config=tune.FailureConfig(max_failures=RETRIES),
            verbose=0,
        ),
    )
    tuner.fit()
    if recorder.write_error is not None:
        done = sum(recorder.counts.values())
        raise StudyError(
            f"cannot write results to {recorder.dir}: {recorder.write_error}; stopped at the first failed write, the "
            f"{done} trial(s) recorded before it in this run are kept; make room (or restore write access) and run "
            f"the same command again to resume"
        )


def _stopper(recorder: Recorder):
    """Ray Tune's stop rule: a trial whose loss is not finite stops; every trial stops once a write has failed."""
    from ray import tune

    class _Stop(tune.Stopper):
        def __call__(self, trial_id: str, result: dict) -> bool:
            return _nonfinite_loss(trial_id, result)

        def stop_all(self) -> bool:
            return recorder.write_error is not None

    return _Stop()
