"""Read one study's tables at one budget from Parquet into `analysis.verdict.Tables`."""

from pathlib import Path

import pandas as pd

from analysis.schema import incomplete_trials, read_metrics, read_trials
from analysis.verdict import Tables


def tables_for(study_dir: Path, budget: str) -> Tables:
    """Trials, metrics and exact checks of one budget.

    Only the latest check trial and the main (grid or confirmation) trials of that budget are read; tuning
    trials only chose the nuisance values.

    Args:
        study_dir (Path):
            `results/<study>`.
        budget (str):
            The budget.

    Returns:
        Tables: the study's tables.
    """
    trials = read_trials(study_dir)
    trials = trials[trials["budget"] == budget]
    train = trials[trials["phase"] == "main"].reset_index(drop=True)
    checks = read_metrics(study_dir, _latest_check(trials))
    tuning = trials[trials["phase"] == "tune"].reset_index(drop=True)
    return Tables(budget, train, read_metrics(study_dir, train["trial_id"].tolist()), checks, tuning)


def _latest_check(trials: pd.DataFrame) -> list[str]:
    """The id of the latest finished exact-checks trial among `trials` (one budget's), or none."""
    return trials.loc[(trials["phase"] == "checks") & (trials["status"] == "ok"), "trial_id"].tolist()[-1:]


def lacking_metrics(study_dir: Path, trials: pd.DataFrame, tables: Tables) -> dict[str, str]:
    """`incomplete_trials` of what a verdict reads (the main trials and the latest exact checks of `tables`'s budget),
    counted in the metrics `tables` already holds."""
    trials = trials[trials["budget"] == tables.budget]
    read = trials[(trials["phase"] == "main") | trials["trial_id"].isin(_latest_check(trials))]
    return incomplete_trials(study_dir, read, pd.concat([tables.metrics, tables.checks], ignore_index=True))
