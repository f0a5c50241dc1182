"""The orchestrator on the synthetic study: recording, statuses, dedup, resume, schema."""

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analysis.load import tables_for
from analysis.schema import METRIC_SCHEMA, TRIAL_COLUMNS, read_metrics, read_trials
from analysis.verdict import SUPPORTED, evaluate
from studies import _synthetic
from studies._plan import plan
from studies._runner import run

ROOT = Path(__file__).resolve().parents[2]


def test_statuses_metrics_and_schema(tmp_path, ray_session):
    study = _synthetic.get_study(seeds=6, fail_seed=1, diverge_seed=2)
    summary = run(study, tmp_path)
    assert summary == {
        "planned": 12,
        "skipped": 0,
        "tuned": 0,
        "ok": 10,
        "diverged": 1,
        "failed": 1,
        "retried": 0,
        "bundles": 0,
    }
    trials = read_trials(tmp_path / "synthetic").set_index("trial_id")
    by_seed = trials[trials["config/effect"] > 0].set_index("seed")
    assert by_seed.loc[1, "status"] == "failed" and "planted failure at step 2" in by_seed.loc[1, "error"]
    assert by_seed.loc[2, "status"] == "diverged" and math.isnan(by_seed.loc[2, "train/loss"])
    # Schema: fixed columns first, config/* and final metrics after; metrics table typed as declared.
    table = pq.read_table(tmp_path / "synthetic" / "trials.parquet")
    assert table.column_names[: len(TRIAL_COLUMNS)] == TRIAL_COLUMNS
    assert {"config/effect", "config/seed", "config/steps", "test/score", "train/loss"} <= set(table.column_names)
    assert json.loads(trials.iloc[0]["versions"])["ray"]
    metrics = read_metrics(tmp_path / "synthetic")
    assert pq.read_table(next((tmp_path / "synthetic" / "metrics").glob("*.parquet"))).schema.equals(METRIC_SCHEMA)
    last_step = metrics[metrics["metric"] == "test/score"].groupby("trial_id")["step"].max()
    effect_arm = trials[trials["config/effect"] > 0].reset_index().set_index("seed")["trial_id"]
    assert last_step[effect_arm[0]] == 3 and last_step[effect_arm[2]] == 2  # the diverged trial stopped at its NaN
    # The planted effect is found from the Parquet tables alone.
    verdicts = evaluate(study, tables_for(tmp_path / "synthetic", "smoke"))
    assert verdicts.loc[0, "verdict"] == SUPPORTED and verdicts.loc[0, "n_seeds"] == 4  # seeds 1 and 2 are unpaired


def test_rerun_skips_finished_retries_failed_and_runs_only_new_points(tmp_path, ray_session):
    first = run(_synthetic.get_study(seeds=2, fail_seed=0), tmp_path)
    assert first["failed"] == 1
    again = run(_synthetic.get_study(seeds=2), tmp_path)  # the planted failure is gone from the config
    assert again["skipped"] == 3 and again["ok"] == 1
    grown = run(_synthetic.get_study(seeds=3), tmp_path)
    assert grown == {"planned": 6, "skipped": 4, "tuned": 0, "ok": 2, "diverged": 0, "failed": 0, "retried": 0, "bundles": 0}
    forced = run(_synthetic.get_study(seeds=3), tmp_path, force=True)
    assert forced["ok"] == 6 and forced["skipped"] == 0
    trials = read_trials(tmp_path / "synthetic")
    assert trials["trial_id"].is_unique and len(trials) == 7  # the failed config stays as its own row


DRIVER = (
    "import sys; from studies import _synthetic; from studies._runner import run; "
    "run(_synthetic.get_study(seeds=5, steps=4, sleep=0.5), sys.argv[1])"
)
"""The driver of the kill tests: the runner on a 10-trial synthetic study, 2 trials at a time, ~2 s each."""


def _driver(results: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(results)], cwd=ROOT, env=env, start_new_session=True, text=True, **kwargs
    )


@pytest.mark.slow  # three killed drivers and their resumes: the second tier
def test_sigkill_of_the_driver_at_three_points_then_the_same_command_loses_and_repeats_nothing(tmp_path):
    """Kill the driver (and the Ray it started) after the first row, mid-way and with two trials left; rerun each time.

    Each rerun is the same command and is itself the run killed next; the last one finishes. Figures per kill
    point are printed for the note: trials planned, finished before the kill, finished in the end,
    duplicated (a finished trial run again) and lost (planned, never recorded).
    """
    study = _synthetic.get_study(seeds=5, steps=4, sleep=0.5)
    planned = {p.trial_id for p in plan(study)}
    study_dir = tmp_path / "synthetic"
    figures = []
    for point, rows in [("after the first row", 1), ("mid-way", len(planned) // 2), ("two trials left", len(planned) - 2)]:
        proc = _driver(tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and len(read_trials(study_dir)) < rows:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        proc.wait()
        before = read_trials(study_dir)
        assert rows <= len(before) < len(planned), f"the kill {point} must land part-way ({len(before)} rows)"
        figures.append((point, before))
    done = _driver(tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err[-2000:]
    after = read_trials(study_dir).set_index("trial_id")
    metrics = read_metrics(study_dir)
    for point, before in figures:
        # A trial finished before a kill keeps its row as written then: it was not run again by any later driver.
        duplicated = int((after.loc[before["trial_id"], "finished_at"].to_numpy() != before["finished_at"].to_numpy()).sum())
        lost = len(planned - set(after.index))
        print(f"driver SIGKILL {point}: planned {len(planned)}, finished before the kill {len(before)}, "
              f"finished in the end {len(after)}, duplicated {duplicated}, lost {lost}")  # fmt: skip
        assert duplicated == 0 and lost == 0
    assert sorted(after.index) == sorted(planned) and (after["status"] == "ok").all()  # every planned trial, exactly once
    # Each trial's metrics are one attempt's: 4 steps of each of its 3 metrics, no step recorded twice.
    assert set(metrics["trial_id"]) == planned
    assert (metrics.groupby("trial_id").size() == 12).all()
    assert not metrics.duplicated(["trial_id", "step", "series", "metric"]).any()


BIG = (
    "import sys; from studies import _synthetic; from studies._runner import run; "
    "run(_synthetic.get_study(seeds=5000, steps=1), sys.argv[1])"
)
"""A 10,000-trial synthetic study of zero-second trials: what recording costs, and resumes, at scale."""


@pytest.mark.slow  # ~10 minutes on 2 cores: the second tier
def test_a_10000_trial_study_killed_half_way_then_rerun_records_every_trial_exactly_once(tmp_path):
    study = _synthetic.get_study(seeds=5000, steps=1)
    planned = {p.trial_id for p in plan(study)}
    assert len(planned) == 10_000
    study_dir = tmp_path / "synthetic"
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONPATH": str(ROOT)}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", BIG, str(tmp_path)], cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    metrics = study_dir / "metrics"  # a trial's metrics file lands before its row: a cheap count to poll
    while time.monotonic() - t0 < 1200 and (not metrics.is_dir() or len(os.listdir(metrics)) < 5000):
        assert proc.poll() is None, "the driver ended before the kill"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_s = time.monotonic() - t0
    before = read_trials(study_dir)
    assert 0 < len(before) < len(planned), f"the kill must land part-way ({len(before)} rows)"
    done = subprocess.run(
        [sys.executable, "-c", BIG, str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stderr[-2000:]
    after = read_trials(study_dir).set_index("trial_id")
    duplicated = int((after.loc[before["trial_id"], "finished_at"].to_numpy() != before["finished_at"].to_numpy()).sum())
    print(
        f"10,000 zero-second trials: killed after {killed_s:.0f} s with {len(before)} recorded; the rerun took "
        f"{time.monotonic() - t0 - killed_s:.0f} s; {len(after)} recorded, {duplicated} run twice, "
        f"{len(planned - set(after.index))} lost; {len(list((study_dir / 'trials').glob('*.parquet')))} parts left"
    )
    assert sorted(after.index) == sorted(planned) and (after["status"] == "ok").all() and duplicated == 0
    assert set(read_metrics(study_dir)["trial_id"]) == planned
    assert not (study_dir / "trials").exists()  # compacted at the end of the run: one table


def test_a_second_run_on_the_same_results_is_refused(tmp_path):
    from studies import StudyError
    from studies._record import exclusive

    with exclusive(tmp_path / "synthetic"), pytest.raises(StudyError, match="another run"), exclusive(tmp_path / "synthetic"):
        pass


def test_tuning_gives_every_arm_the_same_budget_then_confirms_the_best(tmp_path, ray_session):
    study = _synthetic.get_study(seeds=3, steps=1, tuned_trials=5)
    first = run(study, tmp_path)
    assert first["tuned"] == 10 and first["ok"] == 6
    trials = read_trials(tmp_path / "synthetic")
    tuned, main = trials[trials["phase"] == "tune"], trials[trials["phase"] == "main"]
    assert tuned.groupby("arm").size().to_dict() == {"effect=0.0": 5, "effect=0.5": 5}  # equal budgets
    assert set(tuned["seed"]) == {1000} and set(main["seed"]) == {0, 1, 2}  # tuning seed outside confirmation seeds
    for arm, rows in main.groupby("arm"):
        arm_tuned = tuned[tuned["arm"] == arm]
        assert set(rows["config/lr"]) == {arm_tuned.loc[arm_tuned["val/score"].idxmax(), "config/lr"]}
    # Claims read the confirmation runs only.
    assert len(tables_for(tmp_path / "synthetic", "smoke").trials) == 6
    # A larger tuning budget runs only the extra trials, with the earlier ones handed to the sampler.
    more = run(_synthetic.get_study(seeds=3, steps=1, tuned_trials=7), tmp_path)
    assert more["tuned"] == 4
    again = run(_synthetic.get_study(seeds=3, steps=1, tuned_trials=7), tmp_path)
    assert again["tuned"] == 0 and again["ok"] == 0 and again["skipped"] == 6
    # The Optuna database beside the results mirrors each arm's history, for optuna-dashboard.
    import optuna

    storage = f"sqlite:///{tmp_path / 'synthetic' / 'optuna.db'}"
    for arm in ("effect=0.0", "effect=0.5"):
        ot = optuna.load_study(study_name=f"synthetic/smoke/{arm}", storage=storage)
        assert len([x for x in ot.trials if x.state == optuna.trial.TrialState.COMPLETE]) == 7


def test_progress_is_a_live_line_on_a_terminal_and_plain_lines_in_logs(monkeypatch, capsys):
    from studies._record import Recorder

    rec = Recorder(_synthetic.get_study(), Path("unused"), total=4, common={})
    rec.counts["ok"] = 1
    rec.tty = False  # asked once, when the run starts
    rec.progress()
    plain = capsys.readouterr().err
    assert plain.startswith("[synthetic/smoke] 1/4 done") and plain.endswith("\n") and "\r" not in plain
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    rec = Recorder(_synthetic.get_study(), Path("unused"), total=4, common={})
    rec.counts["ok"] = 1
    rec.progress()
    live = capsys.readouterr().err
    assert live.startswith("\r\033[K[synthetic/smoke] 1/4 done") and not live.endswith("\n")


def test_a_trainable_can_declare_its_own_divergence(tmp_path):
    from studies._plan import planned
    from studies._record import DIVERGED, Recorder

    study = _synthetic.get_study()
    with Recorder(study, tmp_path, total=2, common={}) as rec:  # closing it writes every finished trial
        for seed, flag in [(0, 1.0), (1, 0.0)]:
            p = planned(study, {"effect": 0.0, "seed": seed, "steps": 3, "sleep": 0.0})
            rec.start(p)
            rec.result(p.trial_id, {"step": 7, "train/loss": 3.2, DIVERGED: flag})
            rec.finish(p.trial_id)
    status = read_trials(tmp_path).set_index("seed")["status"]
    assert status[0] == "diverged" and status[1] == "ok"  # a finite loss, but the trainable's rule fired


def test_a_list_value_is_a_series_recorded_at_its_step(tmp_path):
    from studies._plan import planned
    from studies._record import Recorder

    study = _synthetic.get_study()
    with Recorder(study, tmp_path, total=1, common={}) as rec:
        p = planned(study, {"effect": 0.0, "seed": 0, "steps": 3, "sleep": 0.0})
        rec.start(p)
        rec.result(p.trial_id, {"step": 100, "test/chunk": [0.5, 0.25, 2.0], "train/loss": 1.5})
        rec.result(p.trial_id, {"step": 3, "val/acc": 0.75})
        rec.finish(p.trial_id)
    m = read_metrics(tmp_path)
    chunk = m[m["metric"] == "test/chunk"].sort_values("series")
    assert chunk["step"].tolist() == [100] * 3 and chunk["series"].tolist() == [0, 1, 2]
    assert chunk["value"].tolist() == [0.5, 0.25, 2.0]
    assert m.loc[m["metric"] != "test/chunk", "series"].tolist() == [0, 0]  # scalars
    trial = read_trials(tmp_path).iloc[0]
    assert trial["val/acc"] == 0.75 and trial["train/loss"] == 1.5 and "test/chunk" not in trial  # no final scalar


def test_an_arm_with_an_empty_space_is_not_tuned_and_still_confirmed(tmp_path, ray_session):
    study = _synthetic.get_study(seeds=2, steps=1, tuned_trials=3, untuned_baseline=True)
    summary = run(study, tmp_path)
    assert summary["tuned"] == 3 and summary["ok"] == 4
    trials = read_trials(tmp_path / "synthetic")
    assert set(trials.loc[trials["phase"] == "tune", "arm"]) == {"effect=0.5"}
    main = trials[trials["phase"] == "main"].set_index("arm")
    assert main.loc["effect=0.0", "config/lr"].isna().all() and main.loc["effect=0.5", "config/lr"].notna().all()


def test_the_metadata_records_each_arms_tuning_ranges_as_plain_json():
    from ray import tune

    from studies import Tuning, expand
    from studies._plan import tuning_record

    def space(config):  # a range that depends on the arm, and a categorical parameter
        top = 1.0 if config["effect"] else 0.1
        return {"lr": tune.loguniform(1e-4, top), "width": tune.uniform(2.0, 8.0), "q": tune.choice([4, 16])}

    study = _synthetic.get_study(tuned_trials=2)
    study = dataclasses.replace(study, tuning=Tuning(space, "val/score", "max", 2))
    record = tuning_record(study, expand(study.param_space))
    assert json.loads(json.dumps(record)) == record
    assert record["metric"] == "val/score" and record["mode"] == "max" and record["trials_per_arm"] == 2
    arms = {f"effect={c['effect']}": c["effect"] for c in expand(study.param_space)}
    assert len(arms) == 2 and set(record["spaces"]) == set(arms)
    for arm, effect in arms.items():
        assert record["spaces"][arm] == {
            "lr": {"lower": 1e-4, "upper": 1.0 if effect else 0.1, "log": True},
            "width": {"lower": 2.0, "upper": 8.0, "log": False},
            "q": {"values": [4, 16]},
        }
