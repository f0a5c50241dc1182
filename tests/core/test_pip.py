"""M5, Yin and Shen's PIP-optimal dimension: the one-pass PIP curve vs the Gram matrices, and its estimators."""

import math

import numpy as np
import pytest
import torch
from tolerance import tol

from core.embeddings import pip


def test_shifted_pmi_matches_the_definition():
    table = torch.tensor([[4.0, 1.0, 0.0], [1.0, 2.0, 3.0], [0.0, 3.0, 6.0]])
    got = pip.shifted_pmi(table, shift=5.0)
    total = float(table.sum())
    for i in range(3):
        for j in range(3):
            c = float(table[i, j])
            want = math.log(c * total / (float(table[i].sum()) * float(table[:, j].sum()))) - math.log(5) if c else 0.0
            assert float(got[i, j]) == pytest.approx(want)


@pytest.mark.parametrize(
    "size,rank,sigma,alpha,max_dim", [(30, 8, 0.1, 0.5, None), (17, 5, 0.5, 1.0, 3), (12, 12, 0.0, 0.5, 12)]
)
def test_one_pass_pip_curve_equals_the_gram_matrices(size, rank, sigma, alpha, max_dim):
    spectrum, k = np.linspace(10, 1, rank), max_dim or rank
    got = pip.pip_loss_curve(spectrum, size, sigma, alpha, max_dim, seed=3)
    want = pip.naive_pip_loss_curve(spectrum, size, sigma, alpha, max_dim, seed=3)
    assert got.shape == want.shape == (k,) and got.dtype == want.dtype == np.float64
    # Both curves are float64 square roots of ||A_k - G||_F^2, which both sides build from terms as large as
    # ||G||_F^2 + ||A_k||_F^2 = sum d^(4 alpha) + sum s^(4 alpha): the squares agree to eps times that scale, with a
    # rounding per term of the length-N products (the SVDs' backward error is O(N eps) too) and of the k-term running
    # sum, on each side. The curves themselves do not: where the loss is 0 the square root turns a round-off of
    # eps * scale into sqrt(eps * scale) (2^-22 = 2.4e-7 against 0 at k = N = 12, whatever the CPU's exact order).
    *_, y = pip._draw(spectrum, size, sigma, seed=3)
    scale = (spectrum ** (4 * alpha)).sum() + (torch.linalg.svdvals(y).numpy()[:k] ** (4 * alpha)).sum()
    assert np.abs(got**2 - want**2).max() <= tol(got.dtype, scale, ulps=2 * (size + k))


def test_without_noise_the_optimum_is_the_rank_and_noise_pulls_it_down():
    spectrum = np.array([20.0, 15.0, 10.0, 6.0, 3.0, 2.0, 1.5, 1.0])
    clean = pip.pip_loss_curve(spectrum, 40, 1e-9, seed=0)
    # Every direction is signal and recovered exactly: clean[-1]^2 cancels to round-off at the scale of the terms
    # summed, ||G||_F^2 + ||A_8||_F^2 ~ 2 sum d^2, as in the one-pass test above; the curve, its square root, is 0 to
    # the square root of that (~1e-6, so no fixed 1e-6 bound), plus the 1e-9 noise's own ~ sigma ||Z||_F ~ sigma N.
    floor = math.sqrt(tol(clean.dtype, 2 * (spectrum**2).sum(), ulps=2 * (40 + 8))) + 1e-9 * 40
    assert int(np.argmin(clean)) + 1 == 8 and clean[-1] <= floor
    noisy = pip.pip_loss_curve(spectrum, 40, 0.3, seed=0)
    assert int(np.argmin(noisy)) + 1 < 8  # the weak directions drown in noise: fitting them costs more than it gains


def test_spectrum_threshold_and_noise_estimates():
    m = torch.diag(torch.tensor([9.0, 5.0, 1.0, 0.5]))
    assert np.allclose(pip.signal_spectrum(m, 0.5), [9 - 2, 5 - 2])  # 2 sigma sqrt(N) = 2
    rng = np.random.default_rng(0)  # two halves drawn from one joint: their PMIs differ by noise only
    p = rng.dirichlet(np.ones(400)).reshape(20, 20)
    p = (p + p.T) / 2
    halves = [torch.as_tensor(rng.multinomial(20000, p.ravel()).reshape(20, 20), dtype=torch.float64) for _ in range(2)]
    quarters = [torch.as_tensor(rng.multinomial(10000, p.ravel()).reshape(20, 20), dtype=torch.float64) for _ in range(2)]
    s_half, s_quarter = pip.noise_sigma(*halves), pip.noise_sigma(*quarters)
    assert 0 < s_half < s_quarter and s_quarter / s_half == pytest.approx(math.sqrt(2), rel=0.25)  # variance ~ 1 / T


def test_pip_optimal_dimension_of_a_planted_low_rank_corpus():
    rng = np.random.default_rng(1)
    n, r = 60, 4
    f = rng.standard_normal((n, r))
    logits = f @ f.T  # a symmetric joint of log-rank ~4
    p = np.exp(logits - logits.max())
    p /= p.sum()
    draw = lambda t: torch.as_tensor(rng.multinomial(t, p.ravel()).reshape(n, n), dtype=torch.float64)  # noqa: E731
    big = pip.pip_optimal_dim(draw(2_000_000), draw(1_000_000), draw(1_000_000), draws=2)
    small = pip.pip_optimal_dim(draw(20_000), draw(10_000), draw(10_000), draws=2)
    assert small["pip/sigma"] > big["pip/sigma"] and small["pip/dim"] <= big["pip/dim"]  # more data, more dimensions
    assert (
        1 <= small["pip/dim"] <= big["pip/dim"] <= big["pip/rank"] and big["pip/dim_lo"] <= big["pip/dim"] <= big["pip/dim_hi"]
    )
