"""Zeroth-order and policy-gradient estimators against closed forms, exact identities and autograd."""

import math

import pytest
import torch
from tolerance import tol
from torch import nn

from core.estimators.policy_gradient import gaussian_policy_term, gumbel_noise_score, optimal_baseline, reinforce_surrogate
from core.estimators.zeroth_order import batched, directions, flat_params, perturb_, zo_grad, zo_terms


def _quadratic(d: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    a = (q * torch.linspace(0.5, 3, d, dtype=torch.float64)) @ q.T
    b = torch.randn(d, generator=gen, dtype=torch.float64)
    F = lambda th: 0.5 * ((th @ a) * th).sum(-1) + th @ b  # noqa: E731  batched
    theta = torch.randn(d, generator=gen, dtype=torch.float64)
    return F, theta, a @ theta + b


def test_central_difference_on_a_quadratic_is_exactly_the_directional_derivative():
    F, theta, g = _quadratic(7)
    u = directions(3, 5, 7)
    torch.testing.assert_close(zo_terms(F, theta, 0.3, u), (u @ g)[:, None] * u, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("d", [4, 16])
def test_single_direction_estimator_is_unbiased_with_variance_d_plus_one(d):
    F, theta, g = _quadratic(d, seed=d)
    n = 20_000
    terms = zo_terms(F, theta, 0.1, directions(7, n, d))
    bias = (terms.mean(0) - g).norm() / g.norm()
    assert bias < 3 * math.sqrt((d + 1) / n)
    var = ((terms - g) ** 2).sum(1).mean() / g.pow(2).sum()
    assert abs(var / (d + 1) - 1) < 0.05


def test_q_directions_average_and_chunking_does_not_change_the_estimate():
    F, theta, _ = _quadratic(9)
    whole = zo_grad(F, theta, 0.2, 16, seed=5, chunk=64)
    torch.testing.assert_close(zo_grad(F, theta, 0.2, 16, seed=5, chunk=3), whole)
    torch.testing.assert_close(whole, zo_terms(F, theta, 0.2, directions(5, 16, 9)).mean(0))


def test_directions_regenerate_exactly_and_in_place_perturbation_restores_within_rounding():
    assert torch.equal(directions(11, 4, 50), directions(11, 4, 50))
    for dtype in (torch.float64, torch.float32):
        params = [torch.randn(3, 4, dtype=dtype), torch.randn(5, dtype=dtype)]
        before = [p.clone() for p in params]
        for scale in (1e-3, -2e-3, 1e-3):
            perturb_(params, seed=4, scale=scale)
        drift = max(float((p - b).abs().max()) for p, b in zip(params, before, strict=True))
        # +d, -2d, +d cancel exactly (2e-3 z is 2 x 1e-3 z in binary); each of the three in-place additions rounds
        # by at most half an ulp of theta, eps |theta| / 2: 3 eps max|theta| leaves a factor 2 for the excursions.
        assert drift <= tol(dtype, max(float(b.abs().max()) for b in before), ulps=3)


def test_gaussian_policy_reinforce_equals_the_forward_difference_sample_by_sample():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 5, generator=gen, dtype=torch.float64), torch.randint(0, 3, (64,), generator=gen)

    def acc(theta):
        return ((x @ theta.view(3, 5).T).argmax(1) == y).double().mean()

    F = lambda ths: torch.stack([acc(t) for t in ths])  # noqa: E731
    for _ in range(20):
        theta = torch.randn(15, generator=gen, dtype=torch.float64)
        u = torch.randn(15, generator=gen, dtype=torch.float64)
        pg = gaussian_policy_term(acc, theta, u, 0.3, baseline=float(acc(theta)))
        zo = zo_terms(F, theta, 0.3, u[None], antithetic=False)[0]
        assert float((pg - zo).abs().max()) <= 1e-12


def _linear_policy_terms(w, x, a, y, b):
    """Per-sample (r - b) grad_W log softmax(W x)_a for a linear policy, in closed form: (onehot(a) - p) x^T."""
    p = torch.softmax(x @ w.T, 1)
    r = (a == y).double()
    score = (nn.functional.one_hot(a, w.shape[0]).double() - p)[:, :, None] * x[:, None, :]
    return (r - b)[:, None, None] * score


@pytest.mark.parametrize(("baseline", "factor"), [("loo", 1.0), ("mean", 0.75), ("none", 1.0)])
def test_reinforce_baselines_against_the_exact_gradient(baseline, factor):
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(3, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    x0, y0 = torch.tensor([[0.5, -1.0]], dtype=torch.float64), torch.tensor([2])
    exact = torch.autograd.grad(torch.softmax(x0 @ w.T, 1)[0, 2], w)[0]  # R = p(y_t | x) for a 0/1 reward
    batches, bsz = 20_000, 4
    x, y = x0.expand(batches * bsz, 2), y0.expand(batches * bsz)
    sampler = torch.Generator().manual_seed(2)
    grads = []
    for i in range(0, batches * bsz, bsz * 500):  # 500 batches of 4 per call; the baseline stays within each batch of 4
        xs, ys = x[i : i + bsz * 500], y[i : i + bsz * 500]
        logits = xs @ w.T
        probs = torch.softmax(logits, 1)
        a = torch.multinomial(probs.detach(), 1, generator=sampler).squeeze(1)
        r = (a == ys).double().view(-1, bsz)
        b = {"loo": (r.sum(1, keepdim=True) - r) / (bsz - 1), "mean": r.mean(1, keepdim=True).expand_as(r), "none": 0 * r}
        grads.append(_linear_policy_terms(w.detach(), xs, a, ys, b[baseline].reshape(-1)))
    terms = torch.cat(grads)
    mean, se = terms.mean(0), terms.std(0) / math.sqrt(len(terms))
    z = ((mean - factor * exact) / se).abs().max()
    assert z < 4  # unbiased for the expected reward (scaled by 1 - 1/B for the self-inclusive mean)
    if baseline == "mean":
        assert ((mean - exact) / se).abs().max() > 4  # and that shrinkage is detectable


def test_reinforce_surrogate_gradient_is_the_mean_of_the_closed_form_terms():
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    x, y = torch.randn(32, 3, generator=gen, dtype=torch.float64), torch.randint(0, 4, (32,), generator=gen)
    surrogate, r = reinforce_surrogate(x @ w.T, y, torch.Generator().manual_seed(9), baseline="loo")
    got = torch.autograd.grad(surrogate, w)[0]
    probs = torch.softmax(x @ w.T, 1).detach()
    a = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(9)).squeeze(1)
    assert torch.equal((a == y).double(), r)
    b = (r.sum() - r) / (len(r) - 1)
    torch.testing.assert_close(got, _linear_policy_terms(w.detach(), x, a, y, b).mean(0))
    with pytest.raises(ValueError, match="baseline"):
        reinforce_surrogate(x @ w.T, y, gen, baseline="median")


def test_gumbel_noise_induces_softmax_and_its_score_gives_the_softmax_gradient():
    z = torch.tensor([0.3, -1.0, 1.2, 0.0, 0.5], dtype=torch.float64, requires_grad=True)
    freq, grad, se = gumbel_noise_score(z.detach(), 2, 200_000, torch.Generator().manual_seed(0))
    p = torch.softmax(z, 0)
    exact = torch.autograd.grad(p[2], z)[0]
    assert (freq - p.detach()).abs().max() < 5e-3
    assert (grad - exact).abs().max() < 5e-3 and (((grad - exact) / se).abs().max() < 4)


def test_optimal_baseline_minimises_the_variance_over_a_grid():
    F, theta, _ = _quadratic(16, seed=3)
    sigma, u = 0.5, directions(1, 20_000, 16)
    vals = F(theta + sigma * u) + 10.0
    sq = u.pow(2).sum(1)
    best = optimal_baseline(vals, sq)
    grid = torch.linspace(best - 5, best + 5, 21, dtype=torch.float64)
    traces = [float((((vals - b) / sigma)[:, None] * u).var(0).sum()) for b in grid]
    assert int(torch.tensor(traces).argmin()) == 10


def test_batched_model_objective_matches_a_loop():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    x, y = torch.randn(20, 4, dtype=torch.float64), torch.randint(0, 3, (20,))
    F = batched(net, lambda fwd: nn.functional.cross_entropy(fwd(x), y))
    theta = flat_params(net)
    thetas = theta + 0.1 * directions(0, 3, theta.numel())
    want = []
    for t in thetas:
        twin = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()
        torch.nn.utils.vector_to_parameters(t, twin.parameters())
        want.append(nn.functional.cross_entropy(twin(x), y))
    torch.testing.assert_close(F(thetas), torch.stack(want))
