"""The weissi study's arms, tuning spaces and full-budget code paths."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from core.data.classification import load
from studies import expand, validate
from studies import weissi as w

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_loaders import write_fake_cifar  # noqa: E402


def test_local_arms_and_equal_tuning_budgets():
    study = w.get_study("local")
    configs = validate(study)
    assert len(configs) == 50  # 2 optimisers x 5 regularisers x 5 confirmation seeds
    assert study.tuning.trials_per_arm == 8 and study.tuning.seed == 100 and study.tuning.metric == "val/acc"
    spaces = {(c["optimizer"], c["reg"]): study.tuning.space(c) for c in configs}
    assert set(spaces[("sgd", "none")]) == {"lr"} and set(spaces[("adam", "weissi12")]) == {"lr", "lam1", "lam2"}
    assert spaces[("sgd", "none")]["lr"].upper == 0.3 and spaces[("adam", "none")]["lr"].upper == 3e-3
    # 06 A1: the decoupled arms tune the per-step decay rho = lr * lambda_WD in [1e-7, 1e-3], for SGDW and AdamW
    for opt in ("sgd", "adam"):
        assert set(spaces[(opt, "wd_decoupled")]) == {"lr", "rho"}
        assert (spaces[(opt, "wd_decoupled")]["rho"].lower, spaces[(opt, "wd_decoupled")]["rho"].upper) == (1e-7, 1e-3)
    assert spaces[("adam", "l2_coupled")]["lam"].lower == 1e-6


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_decoupled_decay_shrinks_by_rho_a_step(optimizer):
    """06 A1: whatever the tuned lr, a step of decoupled decay alone multiplies every weight by 1 - rho."""
    rho, lr = 1e-3, {"sgd": 0.2, "adam": 3e-4}[optimizer]
    fc = w.fit_config({"reg": "wd_decoupled", "optimizer": optimizer, "budget": "local", "epochs": 1, "lr": lr,
                       "seed": 0, "rho": rho})  # fmt: skip
    assert fc.decoupled_weight_decay * fc.lr == pytest.approx(rho, rel=4 * np.finfo(float).eps)


@pytest.mark.parametrize("reg", w.REGS)
def test_each_arm_maps_to_its_regulariser(reg):
    cfg = {"reg": reg, "optimizer": "adam", "budget": "local", "epochs": 1, "lr": 1e-3, "seed": 0, "lam": 0.1, "rho": 1e-4}
    cfg |= {"lam1": 0.2, "lam2": 0.3}
    fc = w.fit_config(cfg)
    assert fc.weight_decay == (0.1 if reg == "l2_coupled" else 0.0)
    assert fc.decoupled_weight_decay == pytest.approx(0.1 if reg == "wd_decoupled" else 0.0)  # rho / lr
    assert fc.weissi_lam1 == (0.2 if reg.startswith("weissi") else 0.0)
    assert fc.weissi_lam2 == (0.3 if reg == "weissi12" else 0.0)
    assert fc.momentum == 0.0 and fc.pgd_eps == (0.1,)


def test_full_budget_cells_and_the_bn_diagnostic():
    configs = expand(w.get_study("full").param_space)
    assert {(c["model"], c["dataset"]) for c in configs} == {
        ("vgg11", "cifar10"),
        ("vgg11", "cifar100"),
        ("resnet18", "cifar10"),
    }
    assert {c["weissi_layers"] for c in configs if c["model"] == "resnet18"} == {"unnormalised"}
    assert w.get_study("full").resources["gpu"] > 0


@pytest.mark.parametrize("model", ["vgg11", "resnet18"])
def test_full_budget_trainable_runs_on_tiny_cifar(tmp_path, monkeypatch, model):
    write_fake_cifar(tmp_path, "cifar10")
    monkeypatch.setenv("CLAIMBENCH_DATA", str(tmp_path))
    load.cache_clear()
    config = next(c for c in expand(w.get_study("full").param_space) if c["model"] == model and c["reg"] == "weissi12")
    config = {**config, "width": 8, "epochs": 1, "batch_size": 16, "lr": 1e-3, "lam1": 1e-3, "lam2": 1e-5}
    reports = []
    monkeypatch.setattr(w.tune, "report", reports.append)
    try:
        w.train(config)
    finally:
        load.cache_clear()
    final = reports[-1]
    assert math.isfinite(final["test/acc"]) and any(k.startswith("test/pgd_acc@") for k in final)
