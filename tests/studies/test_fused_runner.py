"""The runner's fused bundles: members land as ordinary trials, equal to the same trials run one by one."""

import math

import pandas as pd

from analysis.load import tables_for
from analysis.schema import read_metrics, read_trials
from analysis.verdict import evaluate
from studies import _synthetic
from studies._runner import bundles, plan, run


def _table(root):
    trials = read_trials(root / "synthetic").set_index("trial_id").sort_index()
    metrics = read_metrics(root / "synthetic").sort_values(["trial_id", "metric", "step"]).reset_index(drop=True)
    return trials, metrics


def test_bundles_group_by_everything_but_the_fusable_keys_and_fill_every_slot(ray_session):
    study = _synthetic.get_study(seeds=7, fused=3)  # two arms of 7 trials; 2 slots (max_concurrent 2)
    units = bundles(study, plan(study), None)
    assert sorted(len(u) for u in units) == [1, 1, 2, 2, 2, 2, 2, 2]  # ceil(7/3) = 3 bundles, rounded up to 4 (2 slots)
    for u in units:
        assert len({p.config["effect"] for p in u}) == 1  # an arm's factor is never fused across arms
    assert sorted(p.trial_id for u in units for p in u) == sorted(p.trial_id for p in plan(study))
    one = _synthetic.get_study(seeds=7, fused=1)
    assert all(len(u) == 1 for u in bundles(one, plan(one), None))


def test_fused_members_are_ordinary_trials_equal_to_unfused_runs(tmp_path, ray_session, monkeypatch, capsys):
    monkeypatch.setattr("studies._runner.BUNDLE_PROGRESS_S", 0.0)
    study = _synthetic.get_study(seeds=6, diverge_seed=2, fused=4)
    fused = run(study, tmp_path / "fused")
    assert "(3 runs): step " in capsys.readouterr().err  # a running bundle says where it is
    alone = run(study, tmp_path / "alone", fuse=False)
    assert fused["bundles"] == 4 and alone["bundles"] == 0
    assert {k: fused[k] for k in ("ok", "diverged", "failed")} == {k: alone[k] for k in ("ok", "diverged", "failed")}
    assert fused["diverged"] == 1
    (tf, mf), (ta, ma) = _table(tmp_path / "fused"), _table(tmp_path / "alone")
    assert list(tf.index) == list(ta.index)  # same ids: config hash and seed
    cols = ["config_hash", "seed", "arm", "status", "train/loss", "test/score"]
    pd.testing.assert_frame_equal(tf[cols], ta[cols])
    pd.testing.assert_frame_equal(mf, ma)  # every step of every member
    assert tf["bundle"].notna().all() and set(tf["bundle_size"]) == {3} and ta["bundle"].isna().all()
    assert tf.groupby("bundle").size().eq(3).all()
    v_fused = evaluate(study, tables_for(tmp_path / "fused" / "synthetic", "smoke"))
    v_alone = evaluate(study, tables_for(tmp_path / "alone" / "synthetic", "smoke"))
    assert list(v_fused["verdict"]) == list(v_alone["verdict"])


def test_a_failing_bundle_fails_its_members_and_a_rerun_bundles_only_what_is_left(tmp_path, ray_session):
    first = run(_synthetic.get_study(seeds=4, fail_seed=1, fused=2), tmp_path)
    trials = read_trials(tmp_path / "synthetic")
    failed = trials[trials["status"] == "failed"]
    assert first["failed"] == 2 and len(failed) == 2 and failed["bundle"].nunique() == 1  # the planted failure's bundle
    assert failed["error"].str.contains("planted failure at step 2").all()
    again = run(_synthetic.get_study(seeds=4, fused=2), tmp_path)  # the failure is gone from the config
    assert again["skipped"] == 6 and again["ok"] == 2 and again["bundles"] == 0  # two left, two slots: one each
    trials = read_trials(tmp_path / "synthetic")
    assert trials["trial_id"].is_unique and (trials["status"] != "failed").sum() == 8
    assert not math.isnan(trials["test/score"].dropna().iloc[0])
