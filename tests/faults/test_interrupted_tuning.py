"""Tuning is all or nothing per arm: a tuning phase stopped part-way (interrupted, or short of trials that failed)
starts no confirmation run, and the claims read exactly the main trials of the study's current plan, never the
confirmation rows of an unfinished or superseded tuning."""

import pytest

import analysis.report
import studies.__main__ as cli
import studies._tune as tuning
from analysis.__main__ import main as analysis_main
from analysis.load import tables_for
from analysis.schema import read_json, read_trials
from studies import StudyError, _synthetic
from studies._plan import plan
from studies._runner import run

pytestmark = pytest.mark.slow  # real tuning runs, stopped and resumed: the second tier


def _study(tuned: int, **kw):
    return _synthetic.get_study(seeds=3, steps=3, tuned_trials=tuned, **kw)


def _cli(monkeypatch, tuned: int):
    monkeypatch.setattr(analysis.report, "discover", lambda: {"synthetic": _study(tuned)})
    monkeypatch.setattr(cli, "discover", lambda: {"synthetic": _synthetic})
    monkeypatch.setattr(cli, "load", lambda name, budget: _study(tuned))


def test_an_interrupted_tuning_is_finished_before_any_confirmation_and_superseded_rows_are_ignored(
    tmp_path, ray_session, monkeypatch, capsys
):
    results, study_dir = tmp_path / "results", tmp_path / "results" / "synthetic"
    run(_study(2), results)  # a finished study: 2 tuning trials an arm, 3 confirmation seeds an arm
    old_main = set(read_trials(study_dir).query("phase == 'main'")["trial_id"])
    assert len(old_main) == 6

    # A bigger tuning budget, interrupted (Ctrl-C) once the first arm has tuned and before the second starts.
    fit, calls = tuning.fit, []

    def stopping_fit(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return fit(*args, **kw)

    monkeypatch.setattr(tuning, "fit", stopping_fit)
    with pytest.raises(KeyboardInterrupt):
        run(_study(4), results)
    monkeypatch.setattr(tuning, "fit", fit)
    trials = read_trials(study_dir)
    assert trials.query("phase == 'tune'").groupby("arm").size().to_dict() == {"effect=0.0": 4, "effect=0.5": 2}
    assert read_json(study_dir / "metadata" / "smoke.json")["main_trials"] is None  # the plan is not chosen yet

    # Nothing decides on it: no confirmation row of the finished best-of-2 tuning is read.
    tables = tables_for(study_dir, "smoke")
    assert tables.trials.empty and tables.ignored == 6 and "tuning phase has not finished" in tables.waiting
    _cli(monkeypatch, 4)
    capsys.readouterr()
    assert analysis_main(["--results", str(results), "--out", str(tmp_path / "reports")]) == 0
    err = capsys.readouterr().err
    assert "synthetic/smoke: no verdicts: its tuning phase has not finished" in err
    assert "ignored 6 main row(s) outside the current plan" in err
    assert "**Incomplete:**" in (tmp_path / "reports" / "synthetic.md").read_text()
    assert not (tmp_path / "reports" / "synthetic" / "verdicts.parquet").exists()
    assert cli.main(["status", "synthetic", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "0/? trials recorded" in out and "no verdicts: its tuning phase has not finished" in out and "S1" not in out

    # The same command again: the second arm gets its 2 missing tuning trials, then the confirmations run.
    again = run(_study(4), results)
    assert again["tuned"] == 2
    trials = read_trials(study_dir)
    assert trials.query("phase == 'tune'").groupby("arm").size().to_dict() == {"effect=0.0": 4, "effect=0.5": 4}
    now_planned = [p.trial_id for p in plan(_study(4), tuning.best_nuisance(_study(4), study_dir))]
    assert read_json(study_dir / "metadata" / "smoke.json")["main_trials"] == now_planned
    tables = tables_for(study_dir, "smoke")
    main = set(trials.query("phase == 'main'")["trial_id"])
    assert sorted(tables.trials["trial_id"]) == sorted(now_planned) and tables.waiting == ""
    assert tables.ignored == len(main - set(now_planned)) == len(old_main - set(now_planned))
    assert tables.trials.groupby("arm")["seed"].nunique().to_dict() == {"effect=0.0": 3, "effect=0.5": 3}
    assert cli.main(["status", "synthetic", "--results", str(results)]) == 0
    assert "6/6 trials recorded (6 ok" in capsys.readouterr().out


def test_an_arm_whose_tuning_trials_failed_gets_no_confirmation_run_and_the_run_says_so(tmp_path, ray_session):
    # The effect arm is tuned from its first cell, seed 0's, planted to fail: every tuning trial of that arm fails.
    study = _study(2, fail_seed=0)
    with pytest.raises(StudyError, match=r"tuning of synthetic/smoke is unfinished: arm effect=0.5 has 0 of its 2"):
        run(study, tmp_path)
    trials = read_trials(tmp_path / "synthetic")
    assert (trials["phase"] != "main").all()  # no confirmation run of either arm
    assert read_json(tmp_path / "synthetic" / "metadata" / "smoke.json")["main_trials"] is None
    assert "tuning phase has not finished" in tables_for(tmp_path / "synthetic", "smoke").waiting
