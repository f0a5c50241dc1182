"""The results format, in one place: where each table lives and how it is written and read.

    results/<study>/trials.parquet      one row per trial (latest attempt wins), compacted at the end of each run
    results/<study>/trials/<part>.parquet    trial rows appended since: one small part per batch of finished trials
    results/<study>/metrics/<trial>.parquet   long metrics of one trial: trial_id, step, metric, value
    results/<study>/metadata/<budget>.json   commit, versions, data sources, command of the latest run at that budget
    reports/<study>/verdicts.parquet    one row per (budget, claim), written by `python -m analysis` beside its report

`results` is a local folder or a URI (`s3://bucket/prefix`, `gs://…`, `file://…`); `analysis.store` does the I/O.
Every file is written to a hidden temporary name and renamed into place (on object stores, uploaded in one
request, which is just as atomic), so a reader never sees a torn file; pyarrow's dataset reader skips the hidden
names. Trial rows land as trials finish, each batch as a new part (`append_trials`), so recording a trial costs the
same at the 10,000th as at the first; readers merge the compacted table with the parts (a later row of a trial
replaces an earlier one), and the runner folds the parts into `trials.parquet` at the start and end of each run
(`compact_trials`). The analysis only reads `results`: its verdicts go to its own `--out`.

A table that is there but damaged (it does not parse) or foreign (it lacks the columns below) is never read as
empty or as something else: the readers raise `ResultsError`, one line naming the file and what to do.
"""

import io
import itertools
import json
import os
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.store import (
    ResultsError,
    delete,
    exists,
    first_line,
    join,
    listdir,
    move,
    name,
    read_parsed,
    remove_empty_folder,
    write_bytes,
)

TRIAL_COLUMNS = [
    "study",
    "budget",
    "phase",
    "arm",
    "trial_id",
    "config_hash",
    "seed",
    "status",
    "error",
    "wall_s",
    "started_at",
    "finished_at",
    "git_commit",
    "versions",
    "hparams",
]
"""Fixed trial-table columns; `config/<key>` columns, then `bundle` and `bundle_size` (a fused bundle's id and size;
null and 1 for a run of its own) and final metrics (`split/name`) follow."""
METRIC_SCHEMA = pa.schema(
    [("trial_id", pa.string()), ("step", pa.int64()), ("series", pa.int64()), ("metric", pa.string()), ("value", pa.float64())]
)
"""One row per value a trial reported: a scalar at `step` has `series` 0; a list reported at `step` (per-chunk test
values, per-window scores, one value per length timed) has one row per element, `series` its index."""
BUDGETS: tuple[str, ...] = ("smoke", "local", "full")
"""The budgets a study runs at, in order of cost (the `budget` column; `metadata/<budget>.json`)."""
PHASES = ("checks", "tune", "main")
"""`checks`: exact checks run in the driver; `tune`: Optuna tuning of nuisance parameters; `main`: the grid (or the
confirmation runs of the tuned configs) that the claims read."""
STATUSES = ("ok", "diverged", "failed")
"""`ok` ran to the end; `diverged` stopped at a non-finite loss (terminal); `failed` raised (re-run next time)."""
FINISHED = ("ok", "diverged")
"""Statuses a re-run skips."""
VERDICT_COLUMNS = [
    "study",
    "claim_id",
    "kind",
    "budget",
    "verdict",
    "reason",
    "effect",
    "ci_low",
    "ci_high",
    "p_value",
    "threshold",
    "n_seeds",
    "rule",
    "statement",
    "controls_ok",
    "detail",
]


def write_atomic(table: pa.Table, path: Path | str) -> None:
    """Write a Parquet file atomically (`analysis.store.write_bytes`: hidden name then rename, or one upload).

    Args:
        table (pa.Table):
            The table.
        path (Path | str):
            Destination, a local path or a URI.
    """
    buf = io.BytesIO()
    pq.write_table(table, buf)
    write_bytes(buf.getvalue(), path)


def write_json_atomic(obj: dict, path: Path | str) -> None:
    """Write JSON the same way as `write_atomic`.

    Args:
        obj (dict):
            JSON-serialisable mapping.
        path (Path | str):
            Destination, a local path or a URI.
    """
    write_bytes(json.dumps(obj, indent=2, sort_keys=True, default=str).encode(), path)


def read_json(path: Path | str) -> dict:
    """A JSON file written by `write_json_atomic`, or `{}` if there is none."""
    remedy = "move it aside (the next run of that budget writes it again)"
    return read_parsed(path, json.loads, remedy=remedy) if exists(path) else {}


def read_parquet(path: Path | str, remedy: str = "move it aside") -> pd.DataFrame:
    """A whole Parquet file, fetched and parsed from memory (`analysis.store.read_parsed`).

    Raises:
        ResultsError: the file is damaged (`remedy` says what to do).
    """
    return read_parsed(path, lambda data: pd.read_parquet(io.BytesIO(data)), remedy=remedy)


def _rerun(study_dir: Path | str) -> str:
    """What rewrites a study's tables: its run with `--force`."""
    return f"python -m studies run {name(study_dir)} --budget BUDGET --force"


def _lacks(path: Path | str, what: str, missing: list[str], remedy: str) -> ResultsError:
    """The error for a foreign table: which columns it lacks."""
    shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
    return ResultsError(f"{path} is not a claimbench {what} (it lacks {shown}); {remedy}")


def _to_arrow(df: pd.DataFrame) -> pa.Table:
    """Convert, turning any column of mixed Python types into JSON strings rather than failing."""
    for col in df.columns:
        if df[col].dtype == object:
            kinds = {type(v) for v in df[col] if v is not None and not (isinstance(v, float) and pd.isna(v))}
            if len(kinds) > 1 or (kinds and not kinds <= {str, bool, int, float}):
                df[col] = [None if v is None else (v if isinstance(v, str) else json.dumps(v)) for v in df[col]]
    return pa.Table.from_pandas(df, preserve_index=False)


def read_trials(study_dir: Path | str) -> pd.DataFrame:
    """The trial table (the compacted table merged with the parts appended since), or an empty frame with the fixed
    columns.

    Args:
        study_dir (Path | str):
            `results/<study>`, a local path or a URI.

    Returns:
        pd.DataFrame: one row per trial (the latest row of each `trial_id`).

    Raises:
        ResultsError: the table or a part is damaged or foreign (not read as empty: a run would then redo, and an
        analysis misreport, every trial).
    """
    for _ in range(5):  # a listed part was folded into the table (and deleted) before it was read: read again
        try:
            return _merged_trials(study_dir)
        except _PartGone:
            continue
    return _merged_trials(study_dir)


class _PartGone(Exception):
    """A listed part was compacted away before it was read."""


_FOLDED = b"claimbench.folded"
"""Schema metadata of the compacted table: the parts it holds (a JSON list of names), which readers then skip."""


def _merged_trials(study_dir: Path | str) -> pd.DataFrame:
    """One consistent read: the parts are listed before the table is read, so a compaction in between either left
    the table as it was (the listed parts are read, or are gone and the whole read is redone) or wrote a table that
    names the parts it folded (those are skipped: their rows may be older than the table's)."""
    parts = listdir(join(study_dir, "trials"), ".parquet")  # names sort in the order they were written
    path = join(study_dir, "trials.parquet")
    tables, folded = [], set()
    if exists(path):
        table = _trial_table(path, study_dir)
        meta = dict(table.schema.metadata or {})
        folded = set(json.loads(meta.pop(_FOLDED, b"[]")))
        tables.append(table.replace_schema_metadata(meta))  # first: older than any part it does not hold
    for part in parts:
        if part in folded:
            continue
        try:
            tables.append(_trial_table(join(study_dir, "trials", part), study_dir))
        except FileNotFoundError as exc:
            raise _PartGone(part) from exc
    if not tables:
        return pd.DataFrame(columns=TRIAL_COLUMNS)
    try:
        merged = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column whose type changed between parts: let pandas unify it
        merged = None
    df = merged.to_pandas() if merged is not None else pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    if "phase" not in df:  # tables written before tuning existed: exact checks had arm "checks", the rest ran the grid
        df.insert(df.columns.get_loc("arm"), "phase", df["arm"].map(lambda a: "checks" if a == "checks" else "main"))
    if len(tables) > 1:
        df = df.drop_duplicates("trial_id", keep="last").reset_index(drop=True)
    return df


def _trial_table(where: Path | str, study_dir: Path | str) -> pa.Table:
    """One file of the trial table (the compacted table or a part), refused if damaged or foreign (`ResultsError`)."""
    remedy = f"move it aside, or rebuild it with `{_rerun(study_dir)}`"
    table = read_parsed(where, lambda data: pq.read_table(pa.BufferReader(data)), remedy=remedy)
    missing = [c for c in TRIAL_COLUMNS if c not in table.column_names and c != "phase"]  # `phase` came later
    if missing:
        raise _lacks(where, "trials table", missing, remedy)
    return table


def _ordered(df: pd.DataFrame) -> pd.DataFrame:
    """Fixed columns first, then `config/*`, then the rest (missing fixed columns: null)."""
    cols = (
        TRIAL_COLUMNS
        + sorted(c for c in df.columns if c.startswith("config/"))
        + sorted(c for c in df.columns if c not in TRIAL_COLUMNS and not c.startswith("config/"))
    )
    return df.reindex(columns=cols)


_PARTS = itertools.count()
"""Numbers this process's parts, so two written within one clock tick still sort in the order they were written."""


def append_trials(study_dir: Path | str, rows: list[dict]) -> None:
    """Add trial rows as one new part, `trials/<time>-<pid>-<n>.parquet`; a later row of a `trial_id` replaces an
    earlier one when read. The cost depends on `rows` alone, not on how many trials the study already has.

    Args:
        study_dir (Path | str):
            `results/<study>`, a local path or a URI.
        rows (list[dict]):
            New rows with the fixed columns, `config/*` and metric columns.
    """
    part = f"{time.time_ns():020d}-{os.getpid()}-{next(_PARTS):09d}.parquet"
    write_atomic(_to_arrow(_ordered(pd.DataFrame(rows))), join(study_dir, "trials", part))


def upsert_trials(study_dir: Path | str, rows: list[dict]) -> None:
    """Add trial rows, replacing earlier rows of the same `trial_id`, as one compacted table (for tests and tools that
    write a table in one go; the runner appends, `append_trials`)."""
    append_trials(study_dir, rows)
    compact_trials(study_dir)


def compact_trials(study_dir: Path | str) -> int:
    """Fold the appended parts into `trials.parquet` (one atomic write) and delete them; the number of parts folded.

    Called under the study's lock (by the runner at the start and end of a run), so no part is appended meanwhile.
    The table names the parts it holds: a reader that listed them before the deletes, or a crash between the write
    and the deletes, leaves parts that readers skip (and the next compaction deletes).
    """
    parts = listdir(join(study_dir, "trials"), ".parquet")
    if not parts:
        return 0
    df = read_trials(study_dir)
    table = _to_arrow(_ordered(df))
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _FOLDED: json.dumps(parts).encode()})
    write_atomic(table, join(study_dir, "trials.parquet"))
    for part in parts:
        delete(join(study_dir, "trials", part))
    remove_empty_folder(join(study_dir, "trials"))
    return len(parts)


def set_aside_trials(study_dir: Path | str, stamp: str) -> list:
    """Move damaged or foreign trial files (the table, or an appended part) out of the way (for `studies run --force`),
    keeping their bytes.

    Args:
        study_dir (Path | str):
            `results/<study>`, a local path or a URI.
        stamp (str):
            Tells this set-aside copy from earlier ones: `<file>.damaged-<stamp>`, a name no reader reads.

    Returns:
        list: where each file went (empty when every file reads, or there is none).
    """
    table = join(study_dir, "trials.parquet")
    files = [table] + [join(study_dir, "trials", p) for p in listdir(join(study_dir, "trials"), ".parquet")]
    aside = []
    for where in files:
        if not exists(where):
            continue
        try:
            _trial_table(where, study_dir)
        except ResultsError:
            aside.append(join(study_dir, *(["trials"] if where != table else []), f"{name(where)}.damaged-{stamp}"))
            move(where, aside[-1])
    return aside


def write_metrics(study_dir: Path | str, trial_id: str, rows: list[tuple[int, int, str, float]]) -> None:
    """Write one trial's long metrics (replacing any earlier attempt's).

    Args:
        study_dir (Path | str):
            `results/<study>`, a local path or a URI.
        trial_id (str):
            The trial.
        rows (list[tuple[int, int, str, float]]):
            `(step, series, metric, value)`: `series` is 0 for a scalar, the index within a list reported at `step`.
    """
    steps, series, names, values = zip(*rows, strict=True) if rows else ((), (), (), ())
    columns = {"step": list(steps), "series": list(series), "metric": list(names), "value": list(values)}
    table = pa.table({"trial_id": [trial_id] * len(rows), **columns}, schema=METRIC_SCHEMA)
    write_atomic(table, join(study_dir, "metrics", f"{trial_id}.parquet"))


def read_metrics(study_dir: Path | str, trial_ids: list[str] | None = None) -> pd.DataFrame:
    """The long metrics table (optionally of some trials only).

    Args:
        study_dir (Path | str):
            `results/<study>`, a local path or a URI.
        trial_ids (list[str] | None):
            Trials to read; `None` reads all.

    Returns:
        pd.DataFrame: `trial_id, step, series, metric, value`.
    """
    d = join(study_dir, "metrics")
    files = listdir(d, ".parquet")  # hidden temporary names are skipped
    if trial_ids is not None:
        wanted = {f"{t}.parquet" for t in trial_ids}
        files = [f for f in files if f in wanted]
    if not files:
        return METRIC_SCHEMA.empty_table().to_pandas()
    return pa.concat_tables([_metric_table(join(d, f), study_dir) for f in files]).to_pandas()


def _metric_table(path: Path | str, study_dir: Path | str) -> pa.Table:
    """One trial's metrics file, checked against `METRIC_SCHEMA` (a foreign file is refused, not read as nulls)."""
    remedy = f"rewrite it with `{_rerun(study_dir)}` at that trial's budget"
    table = read_parsed(path, lambda data: pq.read_table(pa.BufferReader(data)), remedy=remedy)
    missing = [c for c in METRIC_SCHEMA.names if c not in table.column_names]
    if missing == ["series"]:  # a list's elements were then told apart by offsets added to the step: not read as one
        raise ResultsError(f"{path} was written by an older claimbench (before series had a column of their own); {remedy}")
    if missing:
        raise _lacks(path, "metrics file", missing, remedy)
    try:
        return table.select(METRIC_SCHEMA.names).cast(METRIC_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ResultsError(f"{path} is not a claimbench metrics file ({first_line(exc)}); {remedy}") from exc


def read_verdicts(report_dir: Path | str) -> pd.DataFrame:
    """The verdict table the analysis wrote for one study, or an empty frame.

    Args:
        report_dir (Path | str):
            `reports/<study>` (the analysis's `--out`, never the results).

    Returns:
        pd.DataFrame: one row per (budget, claim).
    """
    path = join(report_dir, "verdicts.parquet")
    return read_parquet(path, "run `python -m analysis` again") if exists(path) else pd.DataFrame(columns=VERDICT_COLUMNS)


def write_verdicts(report_dir: Path | str, df: pd.DataFrame | None) -> None:
    """Replace one study's verdict table with `df` (every budget the analysis evaluated); `None` removes it.

    Args:
        report_dir (Path | str):
            `reports/<study>` (the analysis's `--out`, never the results).
        df (pd.DataFrame | None):
            Verdict rows, or `None` for a study without results (no verdicts of an earlier analysis stay behind).
    """
    path = join(report_dir, "verdicts.parquet")
    if df is None:
        delete(path)
        return
    write_atomic(pa.Table.from_pandas(df[VERDICT_COLUMNS], preserve_index=False), path)


def incomplete_trials(study_dir: Path | str, trials: pd.DataFrame, metrics: pd.DataFrame | None = None) -> dict[str, str]:
    """Finished trials whose metrics are not all there: trial id -> why (`metrics file missing`, `metrics file
    damaged`, or its row count against the `metric_rows` recorded with the trial; tables from before that column are
    checked for presence only).

    A verdict read from such a study would rest on part of the data, so the runner re-runs these trials and the
    analysis and `status` refuse to decide on them.

    Args:
        study_dir (Path | str):
            `results/<study>`, a local path or a URI.
        trials (pd.DataFrame):
            Rows of `read_trials(study_dir)` to check (e.g. one budget's).
        metrics (pd.DataFrame | None):
            Their metrics if already read (rows are counted there); `None` reads each file that needs counting.

    Returns:
        dict[str, str]: the incomplete trials, in table order.
    """
    finished = trials[trials["status"].isin(FINISHED)]
    if finished.empty:
        return {}
    d = join(study_dir, "metrics")
    present = set(listdir(d, ".parquet"))
    recorded = finished["metric_rows"] if "metric_rows" in finished else pd.Series(pd.NA, index=finished.index)
    counts = None if metrics is None else metrics["trial_id"].value_counts()
    out = {}
    for trial_id, expected in zip(finished["trial_id"], recorded, strict=True):
        if f"{trial_id}.parquet" not in present:
            out[trial_id] = "metrics file missing"
            continue
        if pd.isna(expected):
            continue
        if counts is not None:
            rows = int(counts.get(trial_id, 0))
        else:
            try:
                rows = _metric_table(join(d, f"{trial_id}.parquet"), study_dir).num_rows
            except ResultsError:
                out[trial_id] = "metrics file damaged"
                continue
        if rows != int(expected):
            out[trial_id] = f"metrics file has {rows} rows, {int(expected)} were written"
    return out


def describe_incomplete(study_dir: Path | str, budget: str, incomplete: dict[str, str]) -> str:
    """One line for `incomplete_trials`: how many, the first with its reason, and the command that re-runs them."""
    first, why = next(iter(incomplete.items()))
    more = f" and {len(incomplete) - 1} more" if len(incomplete) > 1 else ""
    return (
        f"{join(study_dir, 'metrics')}: {len(incomplete)} finished trial(s) at budget {budget!r} lack their metrics "
        f"({first}: {why}{more}); no verdict stands on part of the data: `python -m studies run {name(study_dir)} "
        f"--budget {budget}` re-runs them"
    )
