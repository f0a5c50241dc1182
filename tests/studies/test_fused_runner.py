"""The runner's fused bundles: members land as ordinary trials, equal to the same trials run one by one."""

import dataclasses
import math

import pandas as pd
import pytest

from analysis.load import tables_for
from analysis.schema import read_metrics, read_trials
from analysis.verdict import evaluate
from studies import _synthetic
from studies._plan import plan
from studies._ray import bundles, gpu_share_bytes
from studies._runner import run


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


def test_on_a_gpu_a_bundle_holds_what_fits_in_the_trials_share_of_gpu_memory(ray_session, monkeypatch):
    study = _synthetic.get_study(seeds=7, fused=3, gpu=0.5)  # max_members = 3 caps CPU bundles only
    asked = []
    fusion = dataclasses.replace(study.fusion, can_fuse=lambda config, gpu: asked.append(gpu) or True)
    study = dataclasses.replace(study, fusion=fusion)
    monkeypatch.setattr("studies._ray.gpu_share_bytes", lambda s: 100.0)  # room for 100 one-byte members
    assert sorted(len(u) for u in bundles(study, plan(study), None)) == [7, 7]  # one slot (no GPU here): one an arm
    monkeypatch.setattr("studies._ray.gpu_share_bytes", lambda s: 3.0)
    assert sorted(len(u) for u in bundles(study, plan(study), None)) == [2, 2, 2, 2, 3, 3]  # ceil(7 / 3) an arm
    assert set(asked) == {True}  # the study is told its trials hold a GPU (on CPU only small models gain)
    monkeypatch.setattr("studies._ray.gpu_share_bytes", lambda s: None)  # unknown: sized as on CPU
    assert max(len(u) for u in bundles(study, plan(study), None)) == 3


@pytest.mark.gpu
def test_on_a_real_gpu_a_trials_share_of_gpu_memory_is_asked_of_the_gpu(ray_session):
    import torch

    study = _synthetic.get_study(seeds=2, fused=3, gpu=0.25)
    assert gpu_share_bytes(study) == 0.5 * 0.25 * torch.cuda.get_device_properties(0).total_memory


def test_fused_members_are_ordinary_trials_equal_to_unfused_runs(tmp_path, ray_session, monkeypatch, capsys):
    monkeypatch.setattr("studies._record.BUNDLE_PROGRESS_S", 0.0)
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
