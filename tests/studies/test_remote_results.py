"""Results in a bucket: a real S3-compatible server (moto's server mode) on 127.0.0.1 (fixture `s3_results`).

The study writes `s3://…` through pyarrow's S3 filesystem, exactly as on AWS; only the endpoint differs
(`endpoint_override` in the URI). Credentials are dummies in the environment; no request leaves the loopback.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyarrow import fs as pafs

from analysis.load import tables_for
from analysis.schema import read_metrics, read_trials
from analysis.store import join, resolve
from analysis.verdict import evaluate
from studies import _synthetic
from studies._runner import run

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ["trial_id", "config_hash", "seed", "status", "arm", "train/loss", "val/score", "test/score"]


def _keys(where) -> list[str]:
    filesystem, path = resolve(where)
    infos = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    return sorted(i.path[len(path) + 1 :] for i in infos if i.type == pafs.FileType.File)


def _table(study_dir):
    return read_trials(study_dir)[COLUMNS].sort_values("trial_id").reset_index(drop=True)


def _metrics(study_dir):
    return read_metrics(study_dir).sort_values(["trial_id", "metric", "step"]).reset_index(drop=True)


@pytest.mark.slow  # a real study in a bucket: the second tier
def test_a_study_in_a_bucket_equals_a_local_run_resumes_and_reads_back(tmp_path, s3_results, ray_session):
    study = _synthetic.get_study(seeds=2, steps=2)
    remote_dir, local_dir = join(s3_results, "synthetic"), tmp_path / "synthetic"
    remote = run(study, s3_results)
    local = run(study, tmp_path)
    assert (
        remote
        == local
        == {"planned": 4, "skipped": 0, "tuned": 0, "ok": 4, "diverged": 0, "failed": 0, "retried": 0, "bundles": 0}
    )
    # The same layout as on disk, and no temporary or probe objects left behind.
    keys = _keys(remote_dir)
    assert keys == sorted(
        ["trials.parquet", "metadata/smoke.json", *(f"metrics/{t}.parquet" for t in _table(local_dir)["trial_id"])]
    )
    # The same trials (config hash, seed) with the same metrics as the local run: the synthetic trials are deterministic.
    assert _table(remote_dir).equals(_table(local_dir))
    assert _metrics(remote_dir).equals(_metrics(local_dir))
    # Resume: the same command skips every finished trial; a grown grid runs only its new points.
    assert run(study, s3_results) == {
        "planned": 4,
        "skipped": 4,
        "tuned": 0,
        "ok": 0,
        "diverged": 0,
        "failed": 0,
        "retried": 0,
        "bundles": 0,
    }
    finished = read_trials(remote_dir).set_index("trial_id")["finished_at"]
    grown = run(_synthetic.get_study(seeds=3, steps=2), s3_results)
    assert grown == {"planned": 6, "skipped": 4, "tuned": 0, "ok": 2, "diverged": 0, "failed": 0, "retried": 0, "bundles": 0}
    after = read_trials(remote_dir)
    assert after["trial_id"].is_unique and len(after) == 6
    assert after.set_index("trial_id").loc[finished.index, "finished_at"].equals(finished)  # not run again
    # The analysis reads the bucket: the same verdict as from the local copy of the first four trials.
    run(_synthetic.get_study(seeds=3, steps=2), tmp_path)
    v_remote = evaluate(study, tables_for(remote_dir, "smoke"))
    v_local = evaluate(study, tables_for(local_dir, "smoke"))
    assert v_remote[["claim_id", "verdict", "effect", "p_value"]].equals(v_local[["claim_id", "verdict", "effect", "p_value"]])


@pytest.mark.slow  # a real study in a bucket: the second tier
def test_the_command_lines_run_and_report_a_real_study_in_a_bucket(tmp_path, s3_results):
    """`python -m studies run … --results s3://…`, then `status` and `python -m analysis --results s3://…`."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONPATH": str(ROOT)}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)

    ran = cli("studies", "run", "pg_vs_zo", "--budget", "smoke", "--results", s3_results)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "planned 5, skipped 0 finished, ran 5 ok" in ran.stdout
    status = cli("studies", "status", "pg_vs_zo", "--results", s3_results)
    assert status.returncode == 0 and "pg_vs_zo/smoke: 5/5 trials recorded (5 ok" in status.stdout, status.stderr[-2000:]
    keys = _keys(s3_results)
    report = cli("analysis", "--results", s3_results, "--out", str(tmp_path / "reports"))
    assert report.returncode == 0, report.stderr[-3000:]
    for claim in ("Z1", "Z2", "Z3", "Z4"):  # as in the local end-to-end test
        assert f"pg_vs_zo/smoke {claim}: SUPPORTED" in report.stdout
    assert _keys(s3_results) == keys  # the bucket is only read: the verdicts go beside the report
    assert (tmp_path / "reports" / "report.html").is_file()
    assert (tmp_path / "reports" / "pg_vs_zo" / "verdicts.parquet").is_file()


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (
            "s3://no-such-bucket/x?endpoint_override={ep}&scheme=http&region=us-east-1",
            "cannot write results to s3://no-such-bucket",
        ),
        ("nosuch://bucket/x", "cannot write results to nosuch://bucket/x"),
        ("{tmp}/a-file/results", "cannot write results to {tmp}/a-file/results/flooding"),
    ],
)
def test_an_unknown_or_unwritable_results_location_is_one_line(tmp_path, s3_results, where, message):
    endpoint = s3_results.split("endpoint_override=")[1].split("&")[0]
    (tmp_path / "a-file").write_text("kept")
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [sys.executable, "-m", "studies", "run", "flooding", "--results", where.format(ep=endpoint, tmp=tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and message.format(tmp=tmp_path) in lines[0], res.stderr
    assert (tmp_path / "a-file").read_text() == "kept" and os.listdir(tmp_path) == ["a-file"]  # nothing written
