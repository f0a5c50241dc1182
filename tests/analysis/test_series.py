"""A list a trial reports is a series: one metrics row per element, `series` its index, at the step it was reported.

Written by the recorder (`tests/studies/test_runner.py`), kept by the Parquet round trip, read back in order by
`Tables.series`; a metrics file from before the column (its elements told apart by offsets added to the step) is
refused in one line, never misread.
"""

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.schema import METRIC_SCHEMA, ResultsError, read_metrics, write_metrics
from analysis.verdict import Tables


def test_series_survive_the_parquet_round_trip_and_read_back_in_order(tmp_path):
    rows = [(3, 0, "val/x", 0.1), (3, 1, "val/x", 0.2), (9, 2, "test/c", 12.0), (9, 0, "test/c", 10.0), (9, 1, "test/c", 11.0)]
    rows += [(5, 0, "test/c", -1.0)]  # an earlier report of the same series: the last step's is the one read
    write_metrics(tmp_path, "t1", rows)
    assert pq.read_table(tmp_path / "metrics" / "t1.parquet").schema.equals(METRIC_SCHEMA)
    m = read_metrics(tmp_path)
    assert list(m.columns) == METRIC_SCHEMA.names and len(m) == len(rows)
    t = Tables("local", pd.DataFrame({"trial_id": ["t1"]}), m, pd.DataFrame(columns=["step", "metric", "value"]))
    assert t.series("test/c", "t1").tolist() == [10.0, 11.0, 12.0]
    assert t.series("val/x", "t1").tolist() == [0.1, 0.2] and t.series("val/x", "t2").size == 0


def test_a_metrics_file_from_before_the_series_column_is_refused_in_one_line(tmp_path):
    (tmp_path / "metrics").mkdir()
    old = pa.table({"trial_id": ["t1"] * 2, "step": [100_000, 100_001], "metric": ["test/c"] * 2, "value": [1.0, 2.0]})
    pq.write_table(old, tmp_path / "metrics" / "t1.parquet")
    with pytest.raises(ResultsError, match="written by an older claimbench") as err:
        read_metrics(tmp_path)
    assert "\n" not in str(err.value) and "--force" in str(err.value)
