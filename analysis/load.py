"""Read one study's tables at one budget from Parquet into `analysis.verdict.Tables`."""

from pathlib import Path

import pandas as pd

from analysis.schema import incomplete_trials, read_json, read_metrics, read_trials
from analysis.store import join
from analysis.verdict import Tables


def tables_for(study_dir: Path, budget: str) -> Tables:
    """Trials, metrics and exact checks of one budget.

    Only the latest check trial and the main (grid or confirmation) trials of the budget's current plan are read;
    tuning trials only chose the nuisance values. The plan is the list of main trial ids the latest run recorded
    in `metadata/<budget>.json` (`main_trials`): main rows outside it (confirmation runs of a superseded tuning,
    or of an edited grid) are counted in `Tables.ignored` and never read by a claim. A plan of `null` means the
    tuning phase has not finished, so no confirmation run is chosen yet; results from before plans were recorded
    (no `main_trials` key) read every main row of the budget.

    Args:
        study_dir (Path):
            `results/<study>`.
        budget (str):
            The budget.

    Returns:
        Tables: the study's tables; `waiting` says why no verdict may be drawn yet (or is empty).
    """
    trials = read_trials(study_dir)
    trials = trials[trials["budget"] == budget]
    train = trials[trials["phase"] == "main"]
    meta = read_json(join(study_dir, "metadata", f"{budget}.json"))
    ignored, waiting = 0, ""
    if "main_trials" in meta:
        plan = meta["main_trials"]
        keep = train["trial_id"].isin(plan or [])
        ignored, train = int((~keep).sum()), train[keep]
        if plan is None:
            waiting = "its tuning phase has not finished, so no confirmation run is chosen yet"
        elif unrun := len(set(plan) - set(train["trial_id"])):
            waiting = f"{unrun} of its {len(plan)} planned trials are not recorded yet"
    train = train.reset_index(drop=True)
    checks = read_metrics(study_dir, _latest_check(trials))
    tuning = trials[trials["phase"] == "tune"].reset_index(drop=True)
    metrics = read_metrics(study_dir, train["trial_id"].tolist())
    return Tables(budget, train, metrics, checks, tuning, ignored=ignored, waiting=waiting)


def _latest_check(trials: pd.DataFrame) -> list[str]:
    """The id of the latest finished exact-checks trial among `trials` (one budget's), or none."""
    return trials.loc[(trials["phase"] == "checks") & (trials["status"] == "ok"), "trial_id"].tolist()[-1:]


def lacking_metrics(study_dir: Path, trials: pd.DataFrame, tables: Tables) -> dict[str, str]:
    """`incomplete_trials` of what a verdict reads (the planned main trials and the latest exact checks of `tables`'s
    budget), counted in the metrics `tables` already holds."""
    trials = trials[trials["budget"] == tables.budget]
    read = pd.concat([tables.trials, trials[trials["trial_id"].isin(_latest_check(trials))]], ignore_index=True)
    return incomplete_trials(study_dir, read, pd.concat([tables.metrics, tables.checks], ignore_index=True))
