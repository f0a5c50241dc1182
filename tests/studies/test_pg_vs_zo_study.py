"""The pg_vs_zo study: grids, tuning spaces, matched budgets, and the full-budget code paths on tiny CIFAR."""

import math
import sys
from pathlib import Path

import pytest
import torch

from core.data.classification import load
from studies import expand, validate
from studies import pg_vs_zo as pz

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_loaders import write_fake_cifar  # noqa: E402


def test_local_cells_tuning_and_budgets():
    study = pz.get_study("local")
    configs = validate(study)
    stats = [c for c in configs if c["task"] == "stats"]
    runs = [c for c in configs if c["task"] == "optimise"]
    assert len(stats) == 18 and len(runs) == 60  # 3 models x 3 sigmas x 2 dtypes; 4 methods x 3 models x 5 seeds
    assert {c["budget_forwards"] for c in runs} == {3_000_000} and {c["batch_size"] for c in configs} == {256}
    assert all(study.tuning.space(c) == {} for c in stats)
    zo = study.tuning.space({"task": "optimise", "method": "zo_acc"})
    assert set(zo) == {"lr", "sigma", "q"} and zo["lr"].upper == 3.0
    assert set(study.tuning.space({"task": "optimise", "method": "pg_reinforce"})) == {"lr", "tau", "lam_entropy"}


@pytest.mark.parametrize(("name", "d"), [("softmax_pool14", 1970), ("softmax", 7850), ("mlp32", 25450)])
def test_model_sizes_match_the_spec(name, d):
    assert sum(p.numel() for p in pz.build_model(name, 784, 10).parameters()) == d


def test_optimisation_spends_the_matched_forward_budget(monkeypatch):
    reports = []
    for method, extra in [("ce_backprop", {}), ("zo_ce", {"sigma": 0.05, "q": 4})]:
        config = {"task": "optimise", "method": method, "model": "softmax", "dataset": "digits", "seed": 0, "lr": 0.05}
        pz.optimise({**config, **extra, "budget_forwards": 40_000, "batch_size": 64}, reports.append)
        final = reports[-1]
        per_step = 3 * 64 if method == "ce_backprop" else 2 * 4 * 64
        assert final["train/n_forward"] == math.ceil(40_000 / per_step) * per_step
        assert 0 <= final["val/auc_acc"] <= 1 and final["test/acc"] > final["test/acc_init"]
    assert len([r for r in reports if "val/acc" in r and "test/acc" not in r]) == 2 * 21  # 20 budget points + the start


def test_macro_f1_matches_a_hand_count():
    pred, y = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 2, 0])
    # class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 1, fp 0, fn 1 -> 2/3; class 2: tp 2, fp 1, fn 0 -> 0.8
    assert pz.macro_f1(pred, y, 3) == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)


def test_full_budget_paths_run_on_tiny_cifar(tmp_path, monkeypatch):
    write_fake_cifar(tmp_path, "cifar10")
    monkeypatch.setenv("CLAIMBENCH_DATA", str(tmp_path))
    load.cache_clear()
    configs = expand(pz.get_study("full").param_space)
    assert pz.get_study("full").resources["gpu"] > 0 and {c["model"] for c in configs} == {"softmax", "mlp256", "resnet18"}
    reports = []
    monkeypatch.setattr(pz.tune, "report", reports.append)
    try:
        stats = next(c for c in configs if c["task"] == "stats" and c["model"] == "mlp256")
        pz.train({**stats, "q_grid": [1, 4], "points": 1, "reps": 2, "steps_per_point": 2})
        assert reports[-1]["stats/d"] == 3072 * 256 + 256 + 256 * 10 + 10
        run = next(
            c for c in configs if c["task"] == "optimise" and c["method"] == "pg_reinforce" and c["model"] == "resnet18"
        )
        pz.train({**run, "budget_forwards": 3 * 16 * 2, "batch_size": 16, "lr": 1e-3, "tau": 1.0, "lam_entropy": 0.01})
        assert math.isfinite(reports[-1]["test/acc"])
        zo = next(c for c in configs if c["task"] == "optimise" and c["method"] == "zo_ce" and c["model"] == "resnet18")
        pz.train({**zo, "budget_forwards": 2 * 2 * 16 * 2, "batch_size": 16, "lr": 0.1, "sigma": 1e-2, "q": 2})
        assert reports[-1]["train/steps"] == 2  # batch norm in eval mode inside vmap
        bn_stats = next(c for c in configs if c["task"] == "stats" and c["model"] == "resnet18")
        pz.train({**bn_stats, "q_grid": [1], "points": 1, "reps": 1, "steps_per_point": 1})
        assert math.isfinite(reports[-1]["stats/cos@1"])
    finally:
        load.cache_clear()
