"""The tuning phase: Optuna TPE over each arm's nuisance parameters, the same number of trials per arm, all or
nothing, before any confirmation run; the best values are chosen from the Parquet table, so every re-run agrees.
"""

import math
import sys
from contextlib import suppress
from pathlib import Path

from analysis.schema import (
    FINISHED,
    read_trials,
)
from analysis.store import resolve
from studies import Study, StudyError, validate
from studies._plan import Planned, arm_of, planned
from studies._ray import fit, unwrap
from studies._record import Recorder


def tune_arms(
    study: Study, study_dir: Path | str, common: dict, address: str | None, force: bool, grid: list[dict] | None = None
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
    grid = validate(study) if grid is None else grid
    for cfg in grid:
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
                return [planned(study, unwrap(c), phase="tune")]

            fit(
                study,
                {"__fixed": fixed, **space},
                recorder,
                identify,
                address,
                search=search,
                num_samples=remaining,
                metric=t.metric,
            )
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
    return ran, best_nuisance(study, study_dir, grid)


def best_nuisance(study: Study, study_dir: Path | str, grid: list[dict] | None = None) -> dict[str, dict]:
    """Arm -> nuisance values of its best finished tuning trial (from the Parquet table; arms without one are absent)."""
    t, best = study.tuning, {}
    if t is None:
        return best
    done = read_trials(study_dir)
    arms = {}
    for cfg in validate(study) if grid is None else grid:
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


def _tuned(done, study: Study, arm: str):
    """Finished tuning trials of one arm at this study's budget, from the trial table `done`."""
    sel = (done["phase"] == "tune") & (done["arm"] == arm) & (done["budget"] == study.budget) & done["status"].isin(FINISHED)
    out = done[sel]
    if study.tuning.metric not in out:
        out = out.assign(**{study.tuning.metric: math.nan})
    return out.reset_index(drop=True)


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
