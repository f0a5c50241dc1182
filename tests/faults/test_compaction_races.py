"""A reader and a compaction that overlap: each interleaving, forced in one process, still reads every trial once,
at its latest row, never a `FileNotFoundError` (CI once saw a part deleted between its listing and its read, on S3).

`read_trials` lists the parts, then reads the table, then the parts. The compaction (under the study's lock, so no
part is appended meanwhile) writes a table naming the parts it holds, then deletes them. Here it is slipped into
each gap of one read by wrapping the functions the reader calls.
"""

import pandas as pd
import pytest

from analysis import schema, store
from analysis.schema import append_trials, compact_trials, read_trials


def _row(trial, value):
    return {"trial_id": trial, "study": "s", "arm": "a", "phase": "main", "status": "ok", "value": value}


def _expected(df):
    return dict(zip(df["trial_id"], df["value"], strict=True))


@pytest.fixture
def study(tmp_path):
    append_trials(tmp_path, [_row("t0", 0.0), _row("t1", 1.0)])
    compact_trials(tmp_path)  # an older compacted table...
    append_trials(tmp_path, [_row("t1", 1.5), _row("t2", 2.0)])  # ...and parts since: t1 re-recorded
    append_trials(tmp_path, [_row("t3", 3.0)])
    return tmp_path


WANT = {"t0": 0.0, "t1": 1.5, "t2": 2.0, "t3": 3.0}


def _once(hook):
    """Run `hook` the first time it is reached, never again (the compaction happens once)."""
    done = []

    def run():
        if not done:
            done.append(True)
            hook()

    return run


def test_a_compaction_between_listing_the_parts_and_reading_the_table(study, monkeypatch):
    compact = _once(lambda: compact_trials(study))
    listdir = schema.listdir

    def listing_then_compaction(*args):
        names = listdir(*args)
        compact()
        return names

    monkeypatch.setattr(schema, "listdir", listing_then_compaction)
    assert _expected(read_trials(study)) == WANT


def test_a_compaction_between_reading_the_table_and_reading_its_parts(study, monkeypatch):
    compact = _once(lambda: compact_trials(study))
    table = schema._trial_table

    def read_then_compaction(where, study_dir):
        got = table(where, study_dir)
        if str(where).endswith("trials.parquet"):
            with monkeypatch.context() as m:
                m.setattr(schema, "_trial_table", table)
                compact()
        return got

    monkeypatch.setattr(schema, "_trial_table", read_then_compaction)
    assert _expected(read_trials(study)) == WANT  # the listed parts were gone: the whole read was redone


def test_parts_the_table_already_holds_are_skipped_not_read_over_it(study, monkeypatch):
    """A crash between the compaction's write and its deletes leaves parts the table holds; a part re-recording a
    trial later (t1 again) must not lose to an older leftover part that sorts after the table."""
    compact_trials(study)
    names = schema.listdir(study / "trials", ".parquet")
    assert names == []
    append_trials(study, [_row("t1", 0.5)])  # stale row, then the newer one, both folded...
    append_trials(study, [_row("t1", 1.75)])
    leftovers = schema.listdir(study / "trials", ".parquet")
    monkeypatch.setattr(schema, "delete", lambda where: None)  # ...by a compaction that died before its deletes
    compact_trials(study)
    monkeypatch.undo()
    assert schema.listdir(study / "trials", ".parquet") == leftovers
    (study / "trials" / leftovers[1]).unlink()  # only the older leftover is still there when a reader lists
    assert _expected(read_trials(study)) == {**WANT, "t1": 1.75}
    assert compact_trials(study) == 1 and schema.listdir(study / "trials", ".parquet") == []  # the next one tidies
    assert _expected(read_trials(study)) == {**WANT, "t1": 1.75}


def test_a_missing_file_is_not_read_again_and_again(tmp_path, monkeypatch):
    """An object store's read is retried (it may hand over a mix of two versions); a missing object is not."""
    calls = []
    read = store.read_bytes

    def counted(where):
        calls.append(where)
        return read(where)

    monkeypatch.setattr(store, "read_bytes", counted)
    monkeypatch.setattr(store, "OBJECT_STORES", {"local"})  # this disk, read as if it were a bucket
    with pytest.raises(FileNotFoundError):
        store.read_parsed(tmp_path / "gone.parquet", lambda data: pd.read_parquet(data))
    assert len(calls) == 1
