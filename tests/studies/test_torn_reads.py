"""Torn reads: the analysis reads the tables again and again while a study writes them, and never fails.

A driver subprocess runs a 30-trial synthetic study, appending parts under `trials/` and adding a metrics file as
trials end, and compacting the parts into `trials.parquet` at its start and end; meanwhile this process reads the
tables the way `python -m analysis` does (`tables_for`, `evaluate`). Every read
must parse and be a consistent snapshot: known trials, each at most once, each with its metrics.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.load import tables_for
from analysis.schema import read_metrics, read_trials
from analysis.store import join
from analysis.verdict import evaluate
from studies import _synthetic
from studies._plan import plan

pytestmark = pytest.mark.slow  # a study written while read, on disk and on S3: the second tier

ROOT = Path(__file__).resolve().parents[2]
WRITER = (
    "import sys; from studies import _synthetic; from studies._runner import run; "
    "run(_synthetic.get_study(seeds=15, steps=2, sleep=0.02), sys.argv[1])"
)


@pytest.mark.parametrize("store", ["local", "s3"])
def test_reads_while_a_study_writes_never_see_a_partial_file(tmp_path, request, store):
    results = tmp_path if store == "local" else join(request.getfixturevalue("s3_results"), f"torn-{os.getpid()}")
    study = _synthetic.get_study(seeds=15, steps=2, sleep=0.02)
    planned = {p.trial_id for p in plan(study)}
    study_dir = join(results, "synthetic")
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(results)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    reads, sizes = 0, []
    try:
        while writer.poll() is None:
            trials = read_trials(study_dir)
            ids = set(trials["trial_id"])
            assert trials["trial_id"].is_unique and ids <= planned
            assert not sizes or len(trials) >= sizes[-1]  # rows only ever get added
            assert set(read_metrics(study_dir, list(ids))["trial_id"]) == ids  # metrics land before the row
            evaluate(study, tables_for(study_dir, "smoke"))  # a verdict from whatever has landed so far
            reads += 1
            sizes.append(len(trials))
            time.sleep(0.01)  # leave the writer some of the two cores
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.wait() == 0, writer.stderr.read()[-2000:]
    seen = sorted(set(sizes))
    print(f"torn reads ({store}): {reads} reads while writing, {len(seen)} distinct table sizes seen: {seen}")
    assert len([n for n in seen if 0 < n < len(planned)]) >= 3  # the reads really interleaved with the writes
    assert set(read_trials(study_dir)["trial_id"]) == planned
