"""Run a study: check the results location and the resources, run the exact checks, tune, then fan the unfinished
main trials out over Ray Tune and record them as they finish (`studies._record`).

The pieces live beside this module, one concern each: `_plan` (trial ids and the plan), `_record` (writing results,
metadata, the lock), `_tune` (the tuning phase), `_ray` (Ray and Ray Tune). Results go to a local folder or a URI
(`s3://bucket/prefix`, see `analysis.store`); only the driver writes them, and a killed run is resumed by the same
command.
"""

import json
import platform
import sys
import time
from pathlib import Path

from analysis.schema import (
    FINISHED,
    append_trials,
    compact_trials,
    incomplete_trials,
    read_trials,
    set_aside_trials,
    write_json_atomic,
    write_metrics,
)
from analysis.store import check_reachable, check_writable, first_line, join
from studies import Study, StudyError, config_hash, validate
from studies._plan import plan, tuning_record
from studies._ray import bundles, check_resources, connect, fit, in_order
from studies._record import Recorder, data_sources, exclusive, git_commit, now, versions, writing
from studies._tune import tune_arms


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
            aside = set_aside_trials(study_dir, now().replace(":", "")) if force else []
            compact_trials(study_dir)  # the parts a killed run left fold into the table
        if aside:
            kept = ", ".join(map(str, aside))
            print(f"[{study.name}/{study.budget}] the trial table was damaged or foreign; kept it as {kept}", file=sys.stderr)
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
            "tuning": tuning_record(study, grid),
            "resources": study.resources,
            "host": platform.node(),
            "data": data_sources(study),
            # A study outside the package: where `python -m analysis` loads its claims from, and what the file was.
            **({"study_file": study.file, "study_sha256": study.file_sha256} if study.file else {}),
            # The main trials a claim reads (`analysis.load.tables_for`): unknown (null) until every arm's tuning
            # has finished, so confirmation rows of an unfinished or superseded tuning are never read.
            "main_trials": None if study.tuning is not None else [p.trial_id for p in plan(study, grid=grid)],
        }
        meta_path = join(study_dir, "metadata", f"{study.budget}.json")
        with writing(study_dir):
            write_json_atomic(meta, meta_path)
        run_checks(study, study_dir, common, force)
        tuned, best = (0, None) if study.tuning is None else tune_arms(study, study_dir, common, address, force, grid)
        todo = plan(study, best, grid)
        if study.tuning is not None:  # every arm tuned in full: the confirmation runs are chosen
            with writing(study_dir):
                write_json_atomic(meta | {"main_trials": [p.trial_id for p in todo]}, meta_path)
        summary = _main_phase(study, study_dir, todo, common, address, force, fuse) | {"tuned": tuned}
        with writing(study_dir):
            compact_trials(study_dir)
        return summary


def _main_phase(
    study: Study, study_dir: Path | str, todo: list, common: dict, address: str | None, force: bool, fuse: bool
) -> dict:
    """Run the planned main trials that have not finished (all of them with `force`); the run's counts."""
    done = read_trials(study_dir)
    finished = set(done.loc[done["status"].isin(FINISHED), "trial_id"])
    lacking = incomplete_trials(study_dir, done[done["trial_id"].isin({p.trial_id for p in todo} & finished)])
    if lacking and not force:
        first, why = next(iter(lacking.items()))
        print(f"[{study.name}/{study.budget}] {len(lacking)} finished trial(s) lack their metrics ({first}: {why}"
              f"{' and more' if len(lacking) > 1 else ''}): running them again", file=sys.stderr)  # fmt: skip
    finished -= set(lacking)
    pending = [p for p in todo if force or p.trial_id not in finished]
    summary = {"planned": len(todo), "skipped": len(todo) - len(pending)}
    if not pending:
        print(f"[{study.name}/{study.budget}] all {len(todo)} trials already finished", file=sys.stderr)
        return summary | {"ok": 0, "diverged": 0, "failed": 0, "retried": 0, "bundles": 0}
    recorder = Recorder(study, study_dir, len(pending), common)  # `fit` closes it: every finished trial written
    by_id = {p.trial_id: p for p in pending}
    units = bundles(study, pending, address) if fuse and study.fusion is not None else [[p] for p in pending]
    identify = lambda c: [by_id[i] for i in c["__trial"]["ids"]]  # noqa: E731
    fit(study, {}, recorder, identify, address, search=in_order(units), num_samples=len(units))
    return summary | recorder.counts | {"retried": recorder.retried, "bundles": sum(len(u) > 1 for u in units)}


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
    rows = [(0, i, metric, float(v)) for metric, vs in values.items() for i, v in enumerate(vs)]  # one series each
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
        append_trials(study_dir, [row])
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
