"""Adaptive eps-sharpness (flooding F-D1): projected gradient ascent against brute force over the box's vertices."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.sharpness import adaptive_sharpness, model_sharpness, naive_adaptive_sharpness
from core.testing import random_spd

FLOOR = 1e-3


def logistic(seed: int, n: int = 200):
    """A linear softmax classifier 2 -> 3 on random labels (9 parameters): cross-entropy is convex in them, so its
    maximum over a box lies at a vertex; and M, a bound on its Hessian's top eigenvalue anywhere."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=gen)

    def fn(theta):
        return F.cross_entropy(x @ theta[:6].view(3, 2).T + theta[6:], y)

    # H = mean_n (diag p - p p^T) (x) x~ x~^T with diag p - p p^T <= I / 2 and x~ = [x, 1]: M <= lambda_max(x~^T x~ / n) / 2
    xt = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], 1)
    return fn, 0.5 * float(torch.linalg.eigvalsh(xt.T @ xt / n)[-1]), torch.randn(9, generator=gen, dtype=torch.float64)


def minimum(fn, start: torch.Tensor) -> torch.Tensor:
    theta = start.clone().requires_grad_()
    opt = torch.optim.LBFGS([theta], max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure():
        opt.zero_grad()
        loss = fn(theta)
        loss.backward()
        return loss

    opt.step(closure)
    return theta.detach()


def test_a_linear_loss_rises_by_the_closed_form():
    gen = torch.Generator().manual_seed(0)
    g, theta = torch.randn(7, generator=gen, dtype=torch.float64), torch.randn(7, generator=gen, dtype=torch.float64)
    theta[2] = 0.0  # a zero parameter still moves, by eps * floor
    for eps in (0.05, 0.3):
        want = float((g.abs() * eps * (theta.abs() + FLOOR)).sum())  # at the vertex r * sign(g)
        base, got = adaptive_sharpness(lambda ps: g @ ps[0], [theta], eps=eps)
        assert base == pytest.approx(float(g @ theta), rel=1e-14)
        assert got == pytest.approx(want, rel=1e-12)
        assert naive_adaptive_sharpness(lambda t: g @ t, theta, eps=eps) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("eps", [0.05, 0.3])
@pytest.mark.parametrize("where", ["random", "minimum"])
def test_ascent_is_bounded_by_the_vertex_maximum_and_close_to_it(seed, eps, where):
    fn, m, theta = logistic(seed)
    theta = minimum(fn, theta) if where == "minimum" else theta
    exact = naive_adaptive_sharpness(fn, theta, eps=eps)
    base, got = adaptive_sharpness(lambda ps: fn(ps[0]), [theta], eps=eps)
    assert base == pytest.approx(float(fn(theta)), rel=1e-14)
    # Every iterate lies in the box: never above the true maximum (rounding of values of order 1 aside).
    assert 0.0 <= got <= exact + 1e-12 * abs(base)
    # The first step alone rises by >= g . delta_1 = 0.25 sum |g_i| r_i (convexity), while the maximum is at most
    # sum |g_i| r_i + M ||r||^2 / 2 (Taylor): the ascent misses by at most the difference.
    t = theta.clone().requires_grad_()
    g = torch.autograd.grad(fn(t), t)[0]
    r = eps * (theta.abs() + FLOOR)
    assert exact - got <= 0.75 * float(g.abs() @ r) + 0.5 * m * float(r @ r)


@pytest.mark.parametrize("seed", range(4))
def test_where_the_gradient_keeps_its_sign_over_the_box_the_ascent_reaches_the_maximum(seed):
    """L = g . theta + theta^T A theta / 2 with |g_i| > lambda_max(A) ||r||: every partial derivative keeps its sign
    over the box, so the maximum is the vertex r * sign(g), which sign steps of 1/4 reach exactly in 4 steps."""
    a = random_spd(6, seed, cond=5.0)
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(6, generator=gen, dtype=torch.float64)
    r = 0.05 * (theta.abs() + FLOOR)
    m = float(torch.linalg.eigvalsh(a)[-1])
    grad = torch.where(torch.rand(6, generator=gen) < 0.5, -1.5, 1.5).double() * m * float(r.norm())  # at theta
    g = grad - a @ theta
    fn = lambda t: g @ t + 0.5 * t @ a @ t  # noqa: E731
    exact = naive_adaptive_sharpness(fn, theta, eps=0.05)
    want = float(fn(theta + r * grad.sign()) - fn(theta))
    assert exact == pytest.approx(want, rel=1e-12)
    assert adaptive_sharpness(lambda ps: fn(ps[0]), [theta], eps=0.05)[1] == pytest.approx(exact, rel=1e-12)


def test_a_finer_grid_never_beats_the_vertices_of_a_convex_loss():
    fn, _, theta = logistic(0)
    theta = minimum(fn, theta)
    sub = lambda t: fn(torch.cat([t, theta[4:]]))  # noqa: E731 - 4 free parameters: 5^4 grid points
    vertices = naive_adaptive_sharpness(sub, theta[:4], eps=0.3)
    assert naive_adaptive_sharpness(sub, theta[:4], eps=0.3, points=5) <= vertices + 1e-15


def relu_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)).double()


def test_model_sharpness_is_the_flat_functions_and_leaves_the_model_alone():
    net = relu_net().train()
    x, y = torch.randn(30, 2, dtype=torch.float64), torch.randint(0, 2, (30,))
    before = [p.detach().clone() for p in net.parameters()]
    shapes = [p.shape for p in net.parameters()]
    flat = torch.cat([p.detach().flatten() for p in net.parameters()])

    def fn(theta):
        w1, b1, w2, b2 = (c.view(s) for c, s in zip(theta.split([s.numel() for s in shapes]), shapes, strict=True))
        return F.cross_entropy(torch.relu(x @ w1.T + b1) @ w2.T + b2, y)

    base, got = model_sharpness(net, x, y, eps=0.1)
    want = adaptive_sharpness(lambda ps: fn(ps[0]), [flat], eps=0.1)
    assert (base, got) == pytest.approx(want, rel=1e-12)
    assert net.training and all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_scale_invariant_under_a_relu_rescaling():
    """Layer 1 times 3, layer 2 divided by 3: the same function. With floor = 0 the box rescales with it, so the
    ascent's iterates in box units, and the sharpness, are the same; a box of fixed size would not be."""
    net, scaled = relu_net(), relu_net()
    with torch.no_grad():
        scaled[1].weight.mul_(3.0), scaled[1].bias.mul_(3.0), scaled[3].weight.div_(3.0)
    x, y = torch.randn(30, 2, dtype=torch.float64), torch.randint(0, 2, (30,))
    torch.testing.assert_close(scaled(x), net(x))
    a, b = model_sharpness(net, x, y, floor=0.0), model_sharpness(scaled, x, y, floor=0.0)
    assert a[1] > 0 and a == pytest.approx(b, rel=1e-10)


def test_bad_arguments_fail_early():
    theta = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="eps > 0"):
        adaptive_sharpness(lambda ps: ps[0].sum(), [theta], eps=0.0)
    with pytest.raises(ValueError, match="steps >= 1"):
        adaptive_sharpness(lambda ps: ps[0].sum(), [theta], steps=0)
    with pytest.raises(ValueError, match="2\\^20 grid points"):
        naive_adaptive_sharpness(lambda t: t.sum(), torch.zeros(30, dtype=torch.float64))
