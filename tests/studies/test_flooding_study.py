"""The flooding study's F-D1 probe: what a run reports, on the real trainable at a few epochs of the smoke data."""

import math

import pytest

from analysis.flooding import EQ_LAMBDA_MAX, EQ_LEVEL, EQ_SHARPNESS, EQ_SUBSET_LOSS, SHARPNESS, SUBSET_LOSS
from studies import expand
from studies import flooding as study

EQ = (EQ_LEVEL, EQ_LAMBDA_MAX, EQ_SUBSET_LOSS, EQ_SHARPNESS)


def run(monkeypatch, epochs: int, levels: list[float]) -> list[dict]:
    """`study.train` on the smoke config of b = 0 with `levels` to reach, its reports collected."""
    config = {**study.FIXED["smoke"], "epochs": epochs, "label_noise": 0.2, "flood_level": 0.0, "seed": 1,
              "equal_loss_levels": levels, "sharpness_eps": study.SHARPNESS_EPS}  # fmt: skip
    reports: list[dict] = []
    monkeypatch.setattr(study.tune, "report", lambda m: reports.append(dict(m)))
    study.train(config)
    return reports


def test_levels_reached_at_the_last_epoch_measure_what_the_end_of_training_measures(monkeypatch):
    """One epoch, so the level is first reached at the last epoch: the probe's lambda_max (its own labels, subset and
    mode) equals the loop's `train/lambda_max`, and its loss and sharpness equal the end-of-training ones."""
    (last,) = run(monkeypatch, 1, [100.0])
    assert last[EQ_LEVEL] == [100.0]
    assert last[EQ_LAMBDA_MAX] == [last["train/lambda_max"]] and last["train/lambda_max"] > 0
    assert last[EQ_SUBSET_LOSS] == [last[SUBSET_LOSS]] and last[EQ_SHARPNESS] == [last[SHARPNESS]]
    assert last[SHARPNESS] > 0 and last[SUBSET_LOSS] == pytest.approx(last["train/loss"], rel=0.5)


def test_each_level_is_measured_once_at_the_first_epoch_reaching_it(monkeypatch):
    reports = run(monkeypatch, 3, [1e-9, 50.0, 100.0])  # 50 and 100 at epoch 1; 1e-9 never
    assert [sorted(r.get(EQ_LEVEL, [])) for r in reports] == [[50.0, 100.0], [], []]
    first = reports[0]
    assert all(len(first[k]) == 2 and first[k][0] == first[k][1] for k in EQ[1:])
    assert [SHARPNESS in r for r in reports] == [False, False, True]  # end of training only
    assert all(math.isfinite(reports[-1][k]) for k in (SHARPNESS, SUBSET_LOSS, "train/lambda_max"))


def test_a_diverged_epoch_reaches_nothing():
    data = study.load("digits")
    config = {**study.FIXED["smoke"], "label_noise": 0.2, "flood_level": 0.0, "seed": 0, "equal_loss_levels": [0.3],
              "sharpness_eps": 0.05}  # fmt: skip
    add, metrics = study.flatness(data, config, "cpu"), {"step": 7, "train/loss": math.nan}
    add(metrics, lambda: pytest.fail("a diverged epoch needs no model"))
    assert metrics == {"step": 7, "train/loss": math.nan}


def test_the_grids_carry_the_levels_to_b0_and_the_smoke_runs_fuse():
    for budget in ("smoke", "local"):
        configs = expand(study.get_study(budget).param_space)
        for c in configs:
            levels = [b for b in study.FLOOD_LEVELS[budget][c["label_noise"]] if b > 0]
            assert c["equal_loss_levels"] == (levels if c["flood_level"] == 0 else [])
            assert c["sharpness_eps"] == 0.05 and study.fusable(c)


def test_a_fused_member_measures_what_it_measures_alone(monkeypatch):
    """F-D1 on a fused member's copy equals F-D1 of the same run alone, within the fused trajectory bound of
    tests/core/test_fused.py (rel 2e-3 on float32 training metrics); the levels reached are the same."""
    base = {**study.FIXED["smoke"], "epochs": 3, "label_noise": 0.2, "sharpness_eps": study.SHARPNESS_EPS}
    configs = [base | {"flood_level": 0.0, "seed": 1, "equal_loss_levels": [1e-9, 1.5, 100.0]},
               base | {"flood_level": 0.5, "seed": 2, "equal_loss_levels": []}]  # fmt: skip
    alone = []
    for c in configs:
        alone.append([])
        monkeypatch.setattr(study.tune, "report", alone[-1].append)
        study.train(c)
    fused: list[list[dict]] = [[], []]
    study.train_fused(configs, lambda out: [fused[k].append(m) for k, m in enumerate(out) if m is not None])
    assert [len(f) for f in fused] == [len(a) for a in alone] == [3, 3]
    for a_run, f_run in zip(alone, fused, strict=True):
        for a, f in zip(a_run, f_run, strict=True):
            assert a.get(EQ_LEVEL) == f.get(EQ_LEVEL)
            for key in (SHARPNESS, SUBSET_LOSS, *EQ[1:]):
                assert (key in a) == (key in f), key
                if key in a:
                    assert f[key] == pytest.approx(a[key], rel=2e-3, abs=1e-6), key
    assert 100.0 in fused[0][0][EQ_LEVEL] and SHARPNESS in fused[1][-1]
