"""A finished trial whose metrics are gone (deleted, or fewer rows than were written) is re-run by `run`, and the
analysis and `status` refuse, in one line, to decide on a study that lacks them: never a verdict from part of the
data, never "all trials already finished"."""

import pyarrow.parquet as pq
import pytest

import analysis.report
import studies.__main__ as cli
from analysis.__main__ import main as analysis_main
from analysis.schema import incomplete_trials, read_metrics, read_trials
from studies import _synthetic
from studies._plan import plan
from studies._runner import run

pytestmark = pytest.mark.slow  # a real run, damaged and resumed: the second tier


def _study():
    return _synthetic.get_study(seeds=3, steps=3)


def test_lost_or_short_metrics_are_named_refused_by_the_analysis_and_run_again(tmp_path, ray_session, monkeypatch, capsys):
    study, study_dir = _study(), tmp_path / "results" / "synthetic"
    run(study, tmp_path / "results")
    trials = read_trials(study_dir)
    assert (trials["metric_rows"] > 0).all() and incomplete_trials(study_dir, trials) == {}
    lost, short = sorted(p.trial_id for p in plan(study))[:2]
    (study_dir / "metrics" / f"{lost}.parquet").unlink()
    kept = pq.read_table(study_dir / "metrics" / f"{short}.parquet")
    pq.write_table(kept.slice(0, kept.num_rows - 1), study_dir / "metrics" / f"{short}.parquet")  # one row gone
    assert incomplete_trials(study_dir, trials) == {
        lost: "metrics file missing",
        short: f"metrics file has {kept.num_rows - 1} rows, {kept.num_rows} were written",
    }

    monkeypatch.setattr(analysis.report, "discover", lambda: {"synthetic": _synthetic.get_study()})
    capsys.readouterr()
    assert analysis_main(["--results", str(tmp_path / "results"), "--out", str(tmp_path / "reports")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("analysis: error: ") and "2 finished trial(s)" in lines[0], lines
    assert "python -m studies run synthetic --budget smoke" in lines[0] and not (tmp_path / "reports").exists()

    monkeypatch.setattr(cli, "discover", lambda: {"synthetic": _synthetic})
    monkeypatch.setattr(cli, "load", lambda name, budget: _study())
    assert cli.main(["status", "synthetic", "--results", str(tmp_path / "results")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("studies: error: ") and "lack their metrics" in lines[0], lines

    again = run(study, tmp_path / "results")  # the same command: exactly the two trials run again
    assert again["skipped"] == len(plan(study)) - 2 and again["ok"] == 2
    after = read_trials(study_dir)
    assert after["trial_id"].is_unique and len(after) == len(trials) and incomplete_trials(study_dir, after) == {}
    metrics = read_metrics(study_dir)
    assert set(metrics["trial_id"]) >= {lost, short} and not metrics.duplicated(["trial_id", "step", "series", "metric"]).any()


def test_a_metrics_file_that_does_not_parse_is_run_again_by_run(tmp_path, ray_session):
    study, study_dir = _study(), tmp_path / "synthetic"
    run(study, tmp_path)
    victim = sorted(p.trial_id for p in plan(study))[0]
    path = study_dir / "metrics" / f"{victim}.parquet"
    path.write_bytes(path.read_bytes()[:20])
    again = run(study, tmp_path)
    assert again["ok"] == 1 and again["skipped"] == len(plan(study)) - 1
    assert pq.read_table(path).num_rows == read_trials(study_dir).set_index("trial_id").loc[victim, "metric_rows"]
