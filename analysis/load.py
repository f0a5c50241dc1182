"""Read one study's tables at one budget from Parquet into `analysis.verdict.Tables`."""

from pathlib import Path

from analysis.schema import read_metrics, read_trials
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
    check_ids = trials.loc[(trials["phase"] == "checks") & (trials["status"] == "ok"), "trial_id"].tolist()
    train = trials[trials["phase"] == "main"].reset_index(drop=True)
    checks = read_metrics(study_dir, check_ids[-1:])
    tuning = trials[trials["phase"] == "tune"].reset_index(drop=True)
    return Tables(budget, train, read_metrics(study_dir, train["trial_id"].tolist()), checks, tuning)
