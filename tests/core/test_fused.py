"""Fused trials against the same configs trained alone (`fit_classifier`, `torch.optim`, `weissi`)."""

import math

import pytest
import torch

from core.data.classification import load
from core.models import mlp, resnet18_cifar
from core.regularizers.weissi import weissi
from core.train.classifier import FitConfig, fit_classifier
from core.train.fused import fit_fused, forward, fusable, member, optimizer_step, stack, weissi_stacked

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
"""Every equivalence below holds on each device: fused and alone both on the CPU, or both on the GPU."""


def _alone_and_fused(cfgs, sizes=(64, 32, 24, 10), activation="relu", device="cpu"):
    data = load("digits")

    def build(c):
        torch.manual_seed(c.seed)
        return mlp(list(sizes), activation)

    alone = []
    for c in cfgs:
        rows = []
        fit_classifier(build(c), data, c, rows.append, device=device)
        alone.append(rows)
    fused = [[] for _ in cfgs]

    def report(out):
        assert len(out) == len(cfgs)
        for j, m in enumerate(out):
            if m is not None:
                fused[j].append(m)

    fit_fused([build(c) for c in cfgs], data, cfgs, report, device=device)
    return alone, fused


def _assert_same(alone, fused, n_train):
    for a, f in zip(alone, fused, strict=True):
        assert [r["step"] for r in a] == [r["step"] for r in f]
        for ra, rf in zip(a, f, strict=True):
            assert ra.keys() == rf.keys()
            for key, want in ra.items():
                got = rf[key]
                if math.isnan(want):
                    assert math.isnan(got), key
                elif "acc" in key or "flood_prop" in key:
                    # An accuracy counts examples: float rounding may move an example across the decision boundary.
                    assert abs(got - want) <= 3 / min(n_train, 300) + 1e-9, (key, want, got)
                else:
                    assert got == pytest.approx(want, rel=2e-3, abs=1e-6), (key, want, got)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adamw"])
def test_each_member_follows_the_trajectory_it_has_alone_with_every_per_member_option(optimizer, device):
    common = {"epochs": 3, "batch_size": 100, "optimizer": optimizer, "curvature_examples": 200, "log_weight_norms": True}
    cfgs = [
        FitConfig(**common, lr=1e-3 if optimizer != "sgd" else 0.05, seed=0),
        FitConfig(**common, lr=3e-3 if optimizer != "sgd" else 0.1, seed=1, momentum=0.9, flood_level=0.3, label_noise=0.2,
                  weight_decay=1e-3),
        FitConfig(**common, lr=2e-3 if optimizer != "sgd" else 0.02, seed=2, momentum=0.5, decoupled_weight_decay=0.1,
                  weissi_lam1=1e-3, weissi_lam2=1e-4, label_noise=0.4),
    ]  # fmt: skip
    alone, fused = _alone_and_fused(cfgs, device=device)
    _assert_same(alone, fused, len(load("digits").y_train))
    assert "train/lambda_max" in fused[0][-1] and "weights/norm_0" in fused[0][0]


@pytest.mark.parametrize("device", DEVICES)
def test_cosine_schedule_robustness_metrics_and_other_activations_match_too(device):
    common = {"epochs": 2, "batch_size": 64, "schedule": "cosine", "attack_eps": (0.1,), "curvature_examples": 0}
    cfgs = [FitConfig(**common, lr=2e-3, seed=5), FitConfig(**common, lr=1e-3, seed=6, label_noise=0.1)]
    alone, fused = _alone_and_fused(cfgs, sizes=(64, 17, 10), activation="softplus", device=device)
    _assert_same(alone, fused, len(load("digits").y_train))
    assert "test/fgsm_acc@0.1" in fused[1][-1]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_diverging_member_is_recorded_nan_and_frozen_while_the_others_go_on_unchanged(optimizer, device):
    common = {"epochs": 3, "batch_size": 100, "optimizer": optimizer, "curvature_examples": 0}
    scale = 1.0 if optimizer == "sgd" else 0.02  # Adam's step is ~lr, SGD's ~lr x gradient
    good = [FitConfig(**common, lr=0.05 * scale, seed=0), FitConfig(**common, lr=0.02 * scale, seed=1, flood_level=0.2)]
    bad = FitConfig(**common, lr=1e4 if optimizer == "sgd" else 1e30, seed=2)
    alone, fused = _alone_and_fused([good[0], bad, good[1]], device=device)
    assert math.isnan(alone[1][-1]["train/loss"]), "the control config must diverge alone"
    assert fused[1] == [] or fused[1][-1]["step"] == alone[1][-1]["step"]
    assert len(fused[1]) == len(alone[1]) and math.isnan(fused[1][-1]["train/loss"])
    _assert_same([alone[0], alone[2]], [fused[0], fused[2]], len(load("digits").y_train))
    # and exactly what the two good members give in a bundle without the diverging one
    _, pair = _alone_and_fused(good, device=device)
    # a bundle of two and one of three may run different batched-matmul kernels: the same trajectory bound as alone
    _assert_same(pair, [fused[0], fused[2]], len(load("digits").y_train))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["adam", "sgd", "adamw"])
@pytest.mark.parametrize("same_hp", [True, False])
def test_the_stacked_optimisers_equal_torch_optim_per_member_and_freeze_inactive_members(kind, same_hp, device):
    gen = torch.Generator().manual_seed(0)
    k = 3
    params = [torch.randn(k, 5, 4, generator=gen).to(device), torch.randn(k, 4, generator=gen).to(device)]
    hp = {"lr": [1e-3, 3e-3, 1e-2], "weight_decay": [0.0, 1e-2, 1e-1], "momentum": [0.0, 0.9, 0.5],
          "decoupled_weight_decay": [0.0, 0.0, 0.1]}  # fmt: skip
    if same_hp:  # one kernel call over the whole stack until a member freezes
        hp = {key: [v[1]] * k for key, v in hp.items()}
    singles = [[p[j].clone().requires_grad_() for p in params] for j in range(k)]
    make = {
        "adam": lambda s, j: torch.optim.Adam(s, lr=hp["lr"][j], weight_decay=hp["weight_decay"][j]),
        "adamw": lambda s, j: torch.optim.AdamW(s, lr=hp["lr"][j], weight_decay=hp["weight_decay"][j]),
        "sgd": lambda s, j: torch.optim.SGD(s, lr=hp["lr"][j], momentum=hp["momentum"][j], weight_decay=hp["weight_decay"][j]),
    }[kind]
    opts = [make(s, j) for j, s in enumerate(singles)]
    state, fused = {}, [p.clone() for p in params]
    active = [True, True, True]
    for it in range(30):
        grads = [(torch.randn(p.shape, generator=gen) * 10.0 ** -(it % 4)).to(device) for p in params]
        if it == 20:
            active = [True, False, True]  # member 1 freezes: its params and state must stay put
            frozen = (
                [p[1].clone() for p in fused],
                {key: [t[1].clone() for t in v] for key, v in state.items() if key != "steps"},
            )
        for j in range(k):
            if not active[j]:
                continue
            with torch.no_grad():
                for p in singles[j]:
                    p.mul_(1 - hp["lr"][j] * hp["decoupled_weight_decay"][j])  # as fit_classifier
            for p, g in zip(singles[j], grads, strict=True):
                p.grad = g[j].clone()
            opts[j].step()
        optimizer_step(kind, fused, grads, state, hp, active)
    for j in range(k):
        for p, s in zip(fused, singles[j], strict=True):
            torch.testing.assert_close(p[j], s.detach(), rtol=1e-5, atol=1e-5)
    for p, want in zip(fused, frozen[0], strict=True):
        assert torch.equal(p[1], want)
    for key, want in frozen[1].items():
        for t, w in zip(state[key], want, strict=True):
            assert torch.equal(t[1], w)
    assert state["steps"] == [30, 20, 30]


def test_stacked_forward_and_weissi_equal_each_member_module_on_awkward_shapes():
    for k, sizes, act in [(1, [7, 3], "relu"), (4, [13, 5, 1, 9], "tanh"), (3, [6, 11, 2], "gelu")]:
        models = []
        for j in range(k):
            torch.manual_seed(j)
            models.append(mlp(sizes, act).double())
        params = stack(models)
        x = torch.randn(k, 5, sizes[0], dtype=torch.float64)
        logits = forward(models[0], params, x)
        lam1 = torch.linspace(0.1, 1.0, k, dtype=torch.float64)
        lam2 = torch.linspace(0.0, 0.3, k, dtype=torch.float64)
        pen = weissi_stacked(params, lam1, lam2)
        grads = torch.autograd.grad((logits.sum(dim=(1, 2)) + pen).sum(), params)
        for j, m in enumerate(models):
            out = m(x[j])
            torch.testing.assert_close(logits[j], out, rtol=1e-12, atol=1e-12)
            ref = weissi(m, float(lam1[j]), float(lam2[j]))
            torch.testing.assert_close(pen[j], ref, rtol=1e-12, atol=1e-12)
            ref_grads = torch.autograd.grad(out.sum() + ref, [p for lin in m if isinstance(lin, torch.nn.Linear) for p in
                                                               (lin.weight, lin.bias)])  # fmt: skip
            for i, g in enumerate(ref_grads):
                want = g.t() if i % 2 == 0 else g
                torch.testing.assert_close(grads[i][j], want, rtol=1e-10, atol=1e-12)
            back = member(models[0], params, j)
            torch.testing.assert_close(back(x[j]), out)


def test_bundles_that_cannot_be_fused_are_refused_in_one_line():
    data = load("digits")
    c = FitConfig(epochs=1)
    assert not fusable(resnet18_cifar(10, width=4)) and fusable(mlp([64, 10]))
    with pytest.raises(ValueError, match="share 'epochs'"):
        fit_fused([mlp([64, 10]), mlp([64, 10])], data, [c, FitConfig(epochs=2)], lambda out: None)
    with pytest.raises(ValueError, match="only MLPs"):
        fit_fused([mlp([64, 10])], data, [FitConfig(epochs=1, augment=True)], lambda out: None)
    with pytest.raises(ValueError, match="one config per model"):
        fit_fused([mlp([64, 10])], data, [c, c], lambda out: None)


def test_on_cpu_only_models_small_enough_to_gain_are_fused():
    from core.train.fused import CPU_MAX_PARAMS, worth_fusing

    small, large = mlp([64, 128, 128, 10]), mlp([784, 256, 256, 10])
    assert sum(p.numel() for p in small.parameters()) <= CPU_MAX_PARAMS < sum(p.numel() for p in large.parameters())
    assert worth_fusing(small, gpu=False) and not worth_fusing(large, gpu=False) and worth_fusing(large, gpu=True)
    assert not worth_fusing(resnet18_cifar(10, width=4), gpu=True)


def test_every_fit_config_field_is_either_shared_by_a_bundle_or_per_member():
    from dataclasses import fields

    from core.train.fused import PER_MEMBER, SHARED

    # A new FitConfig field must be handled by fit_fused (and named here) before runs with it can be fused.
    assert {f.name for f in fields(FitConfig)} == set(SHARED) | set(PER_MEMBER) | {"augment"}
    assert not set(SHARED) & set(PER_MEMBER)
