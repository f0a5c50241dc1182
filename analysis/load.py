"""Read one study's tables at one budget from Parquet into `analysis.verdict.Tables`; find the studies outside the
package that a results root holds (`outside_studies`)."""

from pathlib import Path

import pandas as pd
from pyarrow import fs as pafs

from analysis.claims import StudyFileError, builtin_names, file_sha256, import_study_file
from analysis.schema import BUDGETS, incomplete_trials, read_json, read_metrics, read_trials
from analysis.store import join, resolve
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


def subfolders(where) -> list[str]:
    """Names of the folders directly under a results root (hidden `.`/`_` names skipped), sorted; none if it is absent."""
    filesystem, path = resolve(where)
    infos = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory and not i.base_name.startswith((".", "_")))


def recorded_study_file(study_dir: Path | str) -> tuple[str, str] | None:
    """The study file and its sha256 that the latest run of a study outside the package recorded in its metadata
    (`metadata/<budget>.json`, keys `study_file` and `study_sha256`), or `None` for a study without one."""
    records = []
    for budget in BUDGETS:
        meta = read_json(join(study_dir, "metadata", f"{budget}.json"))
        if meta.get("study_file"):
            records.append((meta.get("started_at") or "", meta["study_file"], meta.get("study_sha256", "")))
    return max(records)[1:] if records else None


def outside_studies(results: Path | str, named: list[Path] = ()) -> tuple[dict[str, Path], list[str]]:
    """The studies outside the package that the analysis reports: the files named (`--study PATH`), and every folder
    under `results` whose run recorded a study file (`recorded_study_file`) that still exists.

    A named file that is missing or not a study raises `StudyFileError` (a bad argument). A recorded file that is gone
    or no longer a study leaves its study out; one that changed since its run is still read, as it is now. Either way
    the study gets one line in the returned notes.

    Args:
        results (Path | str):
            Results root, a local path or a URI.
        named (list[Path]):
            Study files named on the command line; each one's stem names its results folder.

    Returns:
        tuple[dict[str, Path], list[str]]: study name -> file to read its claims from, and one note per study whose
        recorded file is gone, changed or broken.
    """
    builtin = set(builtin_names())
    files, notes = {}, []
    for path in named:
        import_study_file(path)  # a missing file, a built-in name or a module that is no study: one line, exit 2
        files[Path(path).stem] = Path(path)
    for name in subfolders(results):
        if name in builtin:
            continue
        record = recorded_study_file(join(results, name))
        if record is None:
            continue  # a folder of something else (or of a study object run from code): not ours to report
        file, sha = record
        if name in files:
            file = files[name]  # named explicitly: a moved file
        elif not Path(file).is_file():
            notes.append(f"{name}: its study file {file} is gone; not reported (name it with --study PATH if it moved)")
            continue
        try:
            import_study_file(file)
        except StudyFileError as exc:
            notes.append(f"{name}: not reported: {exc}")
            files.pop(name, None)
            continue
        now = file_sha256(file)
        if sha and now != sha:
            notes.append(f"{name}: {file} changed since its run (sha256 {sha[:12]} then, {now[:12]} now); its claims are "
                         "read from the file as it is now")  # fmt: skip
        files[name] = Path(file)
    return dict(sorted(files.items())), notes
