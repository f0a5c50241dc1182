"""Run a study: expand its grid, skip finished trials, fan the rest out over Ray Tune, record as they finish.

Ray starts inside this process unless an address is given (`auto` joins a running cluster). The embedded
Ray listens on 127.0.0.1 only. A driver-side callback writes each trial's row and metrics to Parquet the moment
the trial ends, so a killed run loses at most the trials in flight and the same command resumes it.
"""

import fcntl
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from analysis.schema import FINISHED, read_trials, upsert_trials, write_json_atomic, write_metrics
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


def plan(study: Study) -> list[Planned]:
    """Every trial of the study's grid with its id: `<config hash>-s<seed>`.

    Args:
        study (Study):
            The study.

    Returns:
        list[Planned]: in grid order.
    """
    out = []
    for cfg in validate(study):
        h = config_hash(study.name, study.budget, cfg, study.seed_key)
        arm = ",".join(f"{k}={cfg[k]}" for k in study.scientific)
        out.append(Planned(f"{h}-s{cfg[study.seed_key]}", h, int(cfg[study.seed_key]), arm, cfg))
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


@contextmanager
def exclusive(study_dir: Path):
    """Hold `results/<study>/.lock` so two runs never write the same tables at once."""
    study_dir.mkdir(parents=True, exist_ok=True)
    with open(study_dir / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyError(f"another run is writing {study_dir} (lock held)") from None
        yield


class Recorder:
    """Collects each trial's reports in the driver and writes the trial's row and metrics when it ends.

    Written as a Ray Tune callback (the hooks below are Ray's names); also prints live progress.
    """

    def __init__(self, study: Study, study_dir: Path, planned: list[Planned], common: dict):
        self.study, self.dir, self.common = study, study_dir, common
        self.by_id = {p.trial_id: p for p in planned}
        self.total = len(planned)
        self.metrics: dict[str, list[tuple[int, str, float]]] = {}
        self.last: dict[str, dict[str, float]] = {}
        self.started: dict[str, float] = {}
        self.started_at: dict[str, str] = {}
        self.running: set[str] = set()
        self.counts = {"ok": 0, "diverged": 0, "failed": 0}
        self.t0 = time.monotonic()

    def start(self, trial_id: str) -> None:
        self.started[trial_id], self.started_at[trial_id] = time.monotonic(), now()
        self.metrics[trial_id], self.last[trial_id] = [], {}
        self.running.add(trial_id)

    def result(self, trial_id: str, result: dict) -> None:
        step = int(result.get("step", result.get("training_iteration", 0)))
        for key, value in result.items():
            if "/" in key and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.metrics[trial_id].append((step, key, float(value)))
                self.last[trial_id][key] = float(value)

    def finish(self, trial_id: str, error: str | None = None) -> None:
        p = self.by_id[trial_id]
        last = self.last.get(trial_id, {})
        diverged = any(k.endswith("loss") and not math.isfinite(v) for k, v in last.items())
        status = "failed" if error is not None else ("diverged" if diverged else "ok")
        row = {
            **self.common,
            "arm": p.arm,
            "trial_id": trial_id,
            "config_hash": p.config_hash,
            "seed": p.seed,
            "status": status,
            "error": error,
            "wall_s": time.monotonic() - self.started.get(trial_id, time.monotonic()),
            "started_at": self.started_at.get(trial_id),
            "finished_at": now(),
            "hparams": json.dumps(p.config, sort_keys=True, default=repr),
            **{f"config/{k}": v for k, v in p.config.items()},
            **last,
        }
        write_metrics(self.dir, trial_id, self.metrics.get(trial_id, []))
        upsert_trials(self.dir, [row])
        self.counts[status] += 1
        self.running.discard(trial_id)
        self.progress(final=trial_id if status != "ok" else None, error=error)

    def progress(self, final: str | None = None, error: str | None = None) -> None:
        done = sum(self.counts.values())
        elapsed = time.monotonic() - self.t0
        eta = f"{elapsed / done * (self.total - done):.0f}s" if done else "?"
        line = (
            f"[{self.study.name}/{self.study.budget}] {done}/{self.total} done, {len(self.running)} running, "
            f"{self.counts['failed']} failed, {self.counts['diverged']} diverged, {elapsed:.0f}s elapsed, ETA {eta}"
        )
        if final is not None:
            print(f"  trial {final}: {'failed: ' + error if error else 'diverged'}", file=sys.stderr, flush=True)
        print(line, file=sys.stderr, flush=True)


def _tune_callback(recorder: Recorder):
    from ray import tune

    class _Callback(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            recorder.start(trial.config["__trial"]["id"])

        def on_trial_result(self, iteration, trials, trial, result, **info):
            recorder.result(trial.config["__trial"]["id"], result)

        def on_trial_complete(self, iteration, trials, trial, **info):
            recorder.finish(trial.config["__trial"]["id"])

        def on_trial_error(self, iteration, trials, trial, **info):
            recorder.finish(trial.config["__trial"]["id"], error=_error_line(trial))

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


def _entry(trainable, threads: int):
    """The function Ray runs: pin torch threads to the trial's CPUs, then call the study's trainable."""

    def run_trial(config: dict) -> None:
        import torch

        torch.set_num_threads(threads)
        trainable(config["__trial"]["config"])

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
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)


def run_checks(study: Study, study_dir: Path, common: dict, force: bool) -> None:
    """Run the study's exact checks in this process and store them as trial `checks-<hash>` (arm `checks`)."""
    if study.checks is None:
        return
    cfg = {"checks": study.checks.__name__}
    h = config_hash(study.name, study.budget, cfg)
    trial_id = f"checks-{h}"
    done = read_trials(study_dir)
    if not force and ((done["trial_id"] == trial_id) & done["status"].isin(FINISHED)).any():
        return
    t0, error, values = time.monotonic(), None, {}
    try:
        values = study.checks()
    except Exception as exc:  # noqa: BLE001 - recorded as a failed trial, the study goes on
        error = f"{type(exc).__name__}: {exc}"
    rows = [(step, metric, float(v)) for metric, vs in values.items() for step, v in enumerate(vs)]
    write_metrics(study_dir, trial_id, rows)
    row = {
        **common,
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
    }
    upsert_trials(study_dir, [row])
    print(
        f"[{study.name}/{study.budget}] exact checks {'failed: ' + error if error else 'done'} ({row['wall_s']:.1f}s)",
        file=sys.stderr,
    )


def run(study: Study, results: Path, address: str | None = None, force: bool = False, command: str = "") -> dict:
    """Run every unfinished trial of a study and record it.

    Args:
        study (Study):
            The validated study.
        results (Path):
            Results root; tables go to `results/<study>/`.
        address (str | None):
            Ray address, or `None` for the embedded default.
        force (bool):
            Re-run finished trials too.
        command (str):
            The command line, for the metadata.

    Returns:
        dict: counts of planned, skipped and run trials by status.
    """
    planned = plan(study)
    study_dir = Path(results) / study.name
    with exclusive(study_dir):
        common = {
            "study": study.name,
            "budget": study.budget,
            "git_commit": git_commit(),
            "versions": json.dumps(versions(), sort_keys=True),
            "started_at": now(),
        }
        write_json_atomic(
            {
                "study": study.name,
                "budget": study.budget,
                "article": study.article,
                "command": command,
                "git_commit": common["git_commit"],
                "versions": versions(),
                "started_at": common["started_at"],
                "planned_trials": len(planned),
                "seeds": sorted({p.seed for p in planned}),
                "resources": study.resources,
                "host": platform.node(),
                "data": data_sources(study),
            },
            study_dir / "metadata.json",
        )
        run_checks(study, study_dir, common, force)
        done = read_trials(study_dir)
        finished = set(done.loc[done["status"].isin(FINISHED), "trial_id"])
        pending = [p for p in planned if force or p.trial_id not in finished]
        summary = {"planned": len(planned), "skipped": len(planned) - len(pending)}
        if not pending:
            print(f"[{study.name}/{study.budget}] all {len(planned)} trials already finished", file=sys.stderr)
            return summary | {"ok": 0, "diverged": 0, "failed": 0}
        recorder = Recorder(study, study_dir, pending, common)
        _fit(study, pending, recorder, address)
        return summary | recorder.counts


def _fit(study: Study, pending: list[Planned], recorder: Recorder, address: str | None) -> None:
    """One Ray Tune grid run over the pending trials, with the recorder as callback."""
    init_ray(address)
    from ray import tune

    threads = max(1, int(study.resources.get("cpu", 1)))
    trainable = tune.with_resources(_entry(study.trainable, threads), study.resources)
    space = {"__trial": tune.grid_search([{"id": p.trial_id, "config": p.config} for p in pending])}
    storage = tempfile.mkdtemp(prefix="claimbench-ray-")
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=study.max_concurrent),
        run_config=tune.RunConfig(
            name=f"{study.name}-{study.budget}",
            storage_path=storage,
            callbacks=[_tune_callback(recorder)],
            stop=_nonfinite_loss,
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=0,
        ),
    )
    try:
        tuner.fit()
    finally:
        shutil.rmtree(storage, ignore_errors=True)
