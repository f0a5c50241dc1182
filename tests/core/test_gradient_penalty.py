"""Gradient-norm penalties against closed forms on quadratics and dense Hessians of small awkward networks."""

import pytest
import torch
from torch import nn

from core.curvature import naive_hessian
from core.regularizers import (
    egr_grads,
    egr_loss,
    full_batch_grad,
    grad_norm_sq,
    matching_mu,
    minibatch_modified_loss,
    modified_loss,
    penalty_grad_fd,
)
from core.testing import random_spd


def _net_and_data(seed: int = 0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 7), nn.Softplus(), nn.Linear(7, 3)).double()
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(23, 5, generator=gen, dtype=torch.float64), torch.randint(0, 3, (23,), generator=gen)
    return net, x, y


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.flatten() for t in tensors])


def _flat_loss(net, x, y):
    params = list(net.parameters())
    names, shapes = [n for n, _ in net.named_parameters()], [p.shape for p in params]

    def loss(theta):
        chunks = torch.split(theta, [s.numel() for s in shapes])
        weights = {n: c.view(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        return nn.functional.cross_entropy(torch.func.functional_call(net, weights, (x,)), y)

    return loss, _flat(p.detach() for p in params)


def test_quadratic_penalty_is_h_over_4_times_a_theta_squared():
    a = random_spd(6, seed=1)
    theta = torch.randn(6, dtype=torch.float64, requires_grad=True)
    loss = 0.5 * theta @ a @ theta
    h = 0.3
    assert torch.allclose(grad_norm_sq(loss, [theta]), (a @ theta).pow(2).sum())
    penalty = modified_loss(0.5 * theta @ a @ theta, [theta], h) - 0.5 * theta @ a @ theta
    torch.testing.assert_close(penalty, h / 4 * (a @ theta).pow(2).sum())
    # Its gradient, 2 mu A^2 theta, in closed form.
    total, g = egr_grads(0.5 * theta @ a @ theta, [theta], h / 4)
    torch.testing.assert_close(total[0], (a @ theta + h / 2 * a @ a @ theta).detach())
    torch.testing.assert_close(g[0], (a @ theta).detach())


def test_penalty_gradient_is_two_mu_hessian_times_gradient_on_an_mlp():
    net, x, y = _net_and_data()
    mu = 0.37
    total, g = egr_grads(nn.functional.cross_entropy(net(x), y), list(net.parameters()), mu)
    loss_of, flat = _flat_loss(net, x, y)
    hess = naive_hessian(loss_of, flat)
    torch.testing.assert_close(_flat(total) - _flat(g), 2 * mu * hess @ _flat(g), rtol=1e-10, atol=1e-12)
    # egr_loss(...).backward() is the same gradient (the training loop and the control use egr_grads).
    net.zero_grad()
    egr_loss(nn.functional.cross_entropy(net(x), y), list(net.parameters()), mu).backward()
    torch.testing.assert_close(_flat(p.grad for p in net.parameters()), _flat(total))


def test_finite_differences_converge_at_their_orders():
    net, x, y = _net_and_data(2)
    params = list(net.parameters())
    closure = lambda: nn.functional.cross_entropy(net(x), y)  # noqa: E731
    exact, _ = egr_grads(closure(), params, 0.5)
    _, g = egr_grads(closure(), params, 0.0)
    want = _flat(exact) - _flat(g)
    before = _flat(p.detach().clone() for p in params)
    errs = {}
    for central in (True, False):
        errs[central] = []
        for r in (1e-2, 5e-3, 2.5e-3):
            got, g_fd = penalty_grad_fd(closure, params, 0.5, r, central=central)
            errs[central].append(float((_flat(got) - want).norm() / want.norm()))
            torch.testing.assert_close(_flat(g_fd), _flat(g))
    assert torch.equal(before, _flat(p.detach() for p in params))  # restored bit for bit
    forward, central = errs[False], errs[True]
    assert 1.8 < forward[0] / forward[1] < 2.2 and 1.8 < forward[1] / forward[2] < 2.2  # O(r)
    assert 3.6 < central[0] / central[1] < 4.4  # O(r^2)
    assert central[-1] < 1e-5


def test_minibatch_modified_loss_decomposes_into_full_batch_penalty_plus_variance():
    net, x, y = _net_and_data(3)
    x, y = x[:20], y[:20]
    params = list(net.parameters())
    h, m = 0.2, 4
    batches = [nn.functional.cross_entropy(net(x[i : i + 5]), y[i : i + 5]) for i in range(0, 20, 5)]
    got = minibatch_modified_loss(batches, params, h)
    full = nn.functional.cross_entropy(net(x), y)
    g = torch.autograd.grad(full, params)
    var = sum(
        sum((gk - gf).pow(2).sum() for gk, gf in zip(torch.autograd.grad(lk, params, retain_graph=True), g, strict=True))
        for lk in batches
    )
    want = full + h / 4 * sum(gi.pow(2).sum() for gi in g) + h / (4 * m) * var
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("chunk", [1, 4, 7, 23, 100])
def test_accumulated_full_batch_gradient_equals_one_pass(chunk):
    net, x, y = _net_and_data(4)
    params = list(net.parameters())
    want = torch.autograd.grad(nn.functional.cross_entropy(net(x), y), params)
    got = full_batch_grad(lambda i, j: nn.functional.cross_entropy(net(x[i:j]), y[i:j], reduction="sum"), 23, chunk, params)
    torch.testing.assert_close(_flat(got), _flat(want), rtol=1e-12, atol=1e-14)


def test_matching_mu_and_bad_inputs():
    assert matching_mu(0.05, 0.4) == pytest.approx(0.0875) and matching_mu(0.1, 0.8) == pytest.approx(0.175)
    with pytest.raises(ValueError, match="h_big"):
        matching_mu(0.4, 0.1)
    theta = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="mu must be >= 0"):
        egr_loss((theta**2).sum(), [theta], -1.0)
