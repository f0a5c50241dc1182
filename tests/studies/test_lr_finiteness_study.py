"""The lr_finiteness study's grids follow the spec, and its full-budget code paths run on tiny CIFAR files."""

import math
import sys
from pathlib import Path

import pytest

from core.data.classification import load
from studies import expand
from studies import lr_finiteness as lr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_loaders import write_fake_cifar  # noqa: E402


def test_local_grid_matches_the_spec():
    configs = expand(lr.get_study("local").param_space)
    assert len(configs) == 80  # (2 activations x 6 step sizes + 2 x 2 EGR arms) x 5 seeds
    plain = [c for c in configs if c["egr_mu"] == 0]
    assert sorted({c["lr"] for c in plain}) == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6]
    egr = [c for c in configs if c["egr_mu"] > 0]
    assert {c["lr"] for c in egr} == {0.1} and sorted({c["egr_mu"] for c in egr}) == [0.075, 0.175]
    assert sorted({round(c["lr"] + 4 * c["egr_mu"], 12) for c in egr}) == [0.4, 0.8]  # mu = (h_big - h) / 4
    assert {c["dataset"] for c in configs} == {"mnist_5k"} and {c["n_train"] for c in configs} == {2000}
    assert {c["batch_size"] for c in configs} == {0} and not any("momentum" in c for c in configs)
    assert {c["seed"] for c in configs} == set(range(5)) and {c["activation"] for c in configs} == {"softplus", "relu"}


def test_smoke_grid_matches_the_spec():
    configs = expand(lr.get_study("smoke").param_space)
    assert len(configs) == 28 and {c["dataset"] for c in configs} == {"digits"}
    assert sorted({c["egr_mu"] for c in configs if c["lr"] == 0.05}) == [0.0, 0.0875, 0.35]


def test_full_budget_declares_gpus_models_protocols_and_both_egr_implementations():
    study = lr.get_study("full")
    configs = expand(study.param_space)
    assert study.resources["gpu"] > 0
    assert {c["model"] for c in configs} == {"resnet18", "vgg11"} and {c["activation"] for c in configs} == {"relu", "gelu"}
    assert {c["protocol"] for c in configs} == {"P1", "P2"} and {c["dataset"] for c in configs} == {"cifar10", "cifar100"}
    assert {c["egr_impl"] for c in configs if c["egr_mu"] > 0} == {"double_backprop", "fgr"}
    assert {c["batch_size"] for c in configs} == {0, 128}
    # I5 compares EGR at h with plain GD at h + 4 mu: every full-budget mu lands on a step size of the grid.
    egr = {round(c["lr"] + 4 * c["egr_mu"], 12) for c in configs if c["egr_mu"] > 0}
    assert egr <= set(lr.STEP_SIZES["full"]) and 0.01 not in egr


@pytest.mark.parametrize(
    "override",
    [
        {"model": "resnet18", "activation": "gelu", "batch_size": 8, "egr_mu": 0.01, "egr_impl": "fgr"},
        {"model": "vgg11", "activation": "relu", "batch_size": 0, "n_train": 40, "egr_mu": 0.01},
        {"model": "resnet18", "activation": "relu", "batch_size": 0, "n_train": 40, "chunk": 16},
    ],
)
def test_full_budget_trainable_runs_on_tiny_cifar(tmp_path, monkeypatch, override):
    write_fake_cifar(tmp_path, "cifar10")
    monkeypatch.setenv("CLAIMBENCH_DATA", str(tmp_path))
    load.cache_clear()
    config = next(c for c in expand(lr.get_study("full").param_space) if c["dataset"] == "cifar10")
    config = {**config, "width": 4, "max_steps": 3, "eval_every": 2, "power_iters": 1, "final_power_iters": 1}
    config |= {"n_train": 0, "target_loss": 0.0, "noise_draws": 2, **override}
    reports = []
    monkeypatch.setattr(lr.tune, "report", reports.append)
    try:
        lr.train(config)
    finally:
        load.cache_clear()
    final = reports[-1]
    assert final["train/steps"] == 3 and math.isfinite(final["test/acc"]) and math.isfinite(final["train/lambda_max"])
    assert [r["step"] for r in reports[:-1]] == [0, 2]
