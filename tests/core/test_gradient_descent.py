"""The GD/SGD loop of the learning-rate study against naive loops written out by hand."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from core.data.classification import Splits
from core.regularizers import egr_loss
from core.train.gradient_descent import GDConfig, fit_gd, noise_drop


def _data(n: int = 37, d: int = 6, k: int = 3, seed: int = 0) -> Splits:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n + 20, d))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return Splits(x[:n], y[:n], x[n : n + 10], y[n : n + 10], x[n + 10 :], y[n + 10 :], k, "synthetic")


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 9), nn.Softplus(), nn.Linear(9, 3)).double()


def _run(cfg: GDConfig, seed: int = 0) -> tuple[nn.Module, list[dict]]:
    net, out = _net(seed), []
    fit_gd(net, _data(), cfg, out.append)
    return net, out


def _flat(net: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in net.parameters()])


@pytest.mark.parametrize("mu", [0.0, 0.3])
def test_full_batch_gd_with_and_without_egr_equals_a_naive_loop(mu):
    cfg = GDConfig(lr=0.4, egr_mu=mu, max_steps=12, target_loss=0.0, eval_every=5, power_iters=2, final_power_iters=2)
    got, reports = _run(cfg)
    ref, data = _net(), _data()
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    for _ in range(12):
        ref.zero_grad()
        egr_loss(nn.functional.cross_entropy(ref(x), y), list(ref.parameters()), mu).backward()
        with torch.no_grad():
            for p in ref.parameters():
                p -= 0.4 * p.grad
    torch.testing.assert_close(_flat(got), _flat(ref), rtol=1e-10, atol=1e-12)
    assert [r["step"] for r in reports] == [0, 5, 10, 12] and reports[-1]["train/steps"] == 12
    assert reports[-1]["train/reached"] == 1  # equal-steps protocol (target_loss = 0): its endpoint is the last step


def test_fgr_approaches_double_backprop_as_the_radius_shrinks():
    base = GDConfig(lr=0.3, egr_mu=0.5, max_steps=5, target_loss=0.0, eval_every=100, power_iters=1, final_power_iters=1)
    exact = _flat(_run(base)[0])
    errs = [
        float((_flat(_run(dataclasses.replace(base, egr_impl="fgr", fgr_radius=r))[0]) - exact).norm()) for r in (1e-2, 1e-3)
    ]
    assert 7 < errs[0] / errs[1] < 13  # forward difference: the trajectory error is O(radius)


def test_sgd_follows_seeded_epoch_shuffles_like_a_naive_loop():
    cfg = GDConfig(
        lr=0.2, batch_size=10, max_steps=9, target_loss=0.0, eval_every=4, power_iters=1, final_power_iters=1, seed=3
    )
    got, _ = _run(cfg)
    ref, data = _net(), _data()
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    gen = torch.Generator().manual_seed(3)
    order, cursor = torch.randperm(37, generator=gen), 0
    for _ in range(9):
        if cursor + 10 > 37:  # 37 = 3 full batches + 7 left over: a new shuffle, the remainder dropped
            order, cursor = torch.randperm(37, generator=gen), 0
        idx = order[cursor : cursor + 10]
        cursor += 10
        ref.zero_grad()
        nn.functional.cross_entropy(ref(x[idx]), y[idx]).backward()
        with torch.no_grad():
            for p in ref.parameters():
                p -= 0.2 * p.grad
    torch.testing.assert_close(_flat(got), _flat(ref), rtol=1e-10, atol=1e-12)


def test_matched_loss_stop_and_crossings_record_the_full_batch_gradient_norm():
    levels = (0.9, 0.6, 0.45)
    cfg = GDConfig(
        lr=0.5, max_steps=2000, target_loss=0.45, loss_levels=levels, eval_every=50, power_iters=2, final_power_iters=2
    )
    _, reports = _run(cfg)
    final = reports[-1]
    ref, data = _net(), _data()
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    seen, step = {}, 0
    while True:
        loss = nn.functional.cross_entropy(ref(x), y)
        g = torch.autograd.grad(loss, list(ref.parameters()))
        for lv in levels:
            if lv not in seen and loss.item() <= lv:
                seen[lv] = (step, float(sum((gi * gi).sum() for gi in g)))
        if loss.item() <= 0.45:
            break
        with torch.no_grad():
            for p, gi in zip(ref.parameters(), g, strict=True):
                p -= 0.5 * gi
        step += 1
    assert final["train/reached"] == 1 and final["train/steps"] == step and final["train/loss"] <= 0.45
    for lv in levels:
        assert final[f"steps_at/{lv:g}"] == seen[lv][0]
        assert final[f"rig_at/{lv:g}"] == pytest.approx(seen[lv][1], rel=1e-10)
    assert final["train/spiked"] == 0 and final["train/diverged"] == 0
    assert {"val/acc", "test/acc", "test/loss", "noise/acc_drop", "train/lambda_max"} <= set(final)


def test_a_blow_up_is_reported_as_diverged_and_a_nan_loss_as_nan():
    cfg = GDConfig(lr=60.0, max_steps=3000, target_loss=1e-4, patience=50, eval_every=1000, power_iters=1, final_power_iters=1)
    _, reports = _run(cfg)
    last = reports[-1]
    assert last["train/spiked"] == 1 or not math.isfinite(last["train/loss"])
    assert last.get("train/diverged", 0) == 1 or not math.isfinite(last["train/loss"])
    assert "test/acc" not in last


def test_noise_drop_is_zero_without_noise_and_leaves_the_parameters_unchanged():
    net, data = _net(), _data()
    before = _flat(net).clone()
    x, y = torch.as_tensor(data.x_test), torch.as_tensor(data.y_test)
    assert noise_drop(net, x, y, 0.0, 5, seed=0, batch=4) == 0.0
    noise_drop(net, x, y, 0.5, 5, seed=0, batch=4)
    assert torch.equal(before, _flat(net))


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="egr_impl"):
        GDConfig(lr=0.1, max_steps=1, egr_impl="sam")
    with pytest.raises(ValueError, match="lr > 0"):
        GDConfig(lr=0.0, max_steps=1)
