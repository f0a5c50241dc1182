"""WEISSI, L2 and the weight-scale shift against direct evaluation, AM-GM, and torch's optimisers."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from core.regularizers.weissi import balancing_gammas, l2, shift_scales_, weight_layers, weissi, weissi_decay_, weissi_naive


def _relu_mlp(sizes=(7, 11, 5, 3), seed=0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    net = nn.Sequential(*layers).double()
    with torch.no_grad():
        for m in weight_layers(net):
            m.bias.normal_()  # non-zero biases, so the bias rule matters
    return net


def _gammas(n: int, rng) -> list[float]:
    logs = rng.normal(0, 0.7, n)
    logs -= logs.mean()  # prod gamma = 1
    return np.exp(logs).tolist()


def test_shift_keeps_the_function_and_weissi_but_not_l2():
    rng = np.random.default_rng(0)
    x = torch.randn(13, 7, dtype=torch.float64)
    for _ in range(10):
        net = _relu_mlp()
        shifted = copy.deepcopy(net)
        shift_scales_(weight_layers(shifted), _gammas(3, rng))
        torch.testing.assert_close(shifted(x), net(x), rtol=1e-9, atol=1e-12)
        assert abs(float((weissi(shifted, 0.3, 0.01) - weissi(net, 0.3, 0.01)).detach())) < 1e-9
        assert abs(float((l2(shifted, 1.0) - l2(net, 1.0)).detach())) > 1e-3


def test_naive_bias_rule_changes_the_function():
    net = _relu_mlp()
    shifted = copy.deepcopy(net)
    shift_scales_(weight_layers(shifted), [2.0, 0.25, 2.0], cumulative_bias=False)
    x = torch.randn(13, 7, dtype=torch.float64)
    assert (shifted(x) - net(x)).norm() / net(x).norm() > 1e-6


def test_balancing_reaches_the_am_gm_bound_without_changing_the_function():
    net = _relu_mlp()
    x = torch.randn(13, 7, dtype=torch.float64)
    before = net(x)
    norms = [float(m.weight.detach().norm()) for m in weight_layers(net)]
    shift_scales_(weight_layers(net), balancing_gammas(weight_layers(net)))
    bound = 3 * math.prod(norms) ** (2 / 3)
    assert float(2 * l2(net, 1.0, biases=False).detach()) == pytest.approx(bound, rel=1e-9)
    assert bound < sum(n * n for n in norms)
    torch.testing.assert_close(net(x), before, rtol=1e-9, atol=1e-12)


def test_weissi_matches_a_python_loop_and_switches_off():
    net = _relu_mlp()
    assert float(weissi(net, 0.37, 0.011).detach()) == pytest.approx(weissi_naive(net, 0.37, 0.011), rel=1e-12)
    assert float(weissi(net, 0.0, 0.0).detach()) == 0.0


def test_weissi_gradient_is_a_norm_adaptive_decay_and_the_decoupled_step_applies_it():
    net = _relu_mlp()
    weissi(net, 0.5).backward()
    for m in weight_layers(net):
        torch.testing.assert_close(m.weight.grad, 0.5 * m.weight.detach() / m.weight.detach().norm() ** 2)
        assert m.bias.grad is None
    twin = copy.deepcopy(net)
    weissi_decay_(twin, lr=0.1, lam1=0.5)
    for a, b in zip(weight_layers(twin), weight_layers(net), strict=True):
        torch.testing.assert_close(a.weight, b.weight - 0.1 * b.weight.grad)


def _fixed_batch():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(16, 7, generator=gen, dtype=torch.float64), torch.randint(0, 3, (16,), generator=gen)


def _train(make_opt, lam_in_loss: float, steps: int = 50, decoupled: tuple | None = None) -> torch.Tensor:
    net = _relu_mlp(seed=3)
    x, y = _fixed_batch()
    opt = make_opt(net.parameters())
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y) + l2(net, lam_in_loss)
        loss.backward()
        if decoupled:
            lr, lam = decoupled
            with torch.no_grad():
                for p in net.parameters():
                    p.mul_(1 - lr * lam)
        opt.step()
    return torch.cat([p.detach().flatten() for p in net.parameters()])


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_weight_decay_is_l2_in_the_loss(momentum):
    a = _train(lambda p: torch.optim.SGD(p, lr=0.05, momentum=momentum, weight_decay=0.01), 0.0)
    b = _train(lambda p: torch.optim.SGD(p, lr=0.05, momentum=momentum), 0.01)
    assert float((a - b).abs().max()) < 1e-10


def test_adam_weight_decay_is_l2_in_the_loss_and_adamw_is_decoupled():
    adam_wd = _train(lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.1), 0.0)
    adam_l2 = _train(lambda p: torch.optim.Adam(p, lr=1e-2), 0.1)
    adamw = _train(lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1), 0.0)
    by_hand = _train(lambda p: torch.optim.Adam(p, lr=1e-2), 0.0, decoupled=(1e-2, 0.1))
    assert float((adam_wd - adam_l2).abs().max()) < 1e-10
    assert float((adamw - adam_l2).abs().max()) > 1e-6
    assert float((adamw - by_hand).abs().max()) < 1e-10
