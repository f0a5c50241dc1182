"""Gradient flow and modified flow: integrator against matrix exponentials, one-step orders, the D identity."""

import numpy as np
import torch

from analysis.stats import loglog_slope
from core.flows import flow, gd_step, one_step_errors
from core.testing import product_loss, quadratic, random_spd


def test_integrated_flows_match_matrix_exponentials():
    a = random_spd(4, seed=0, cond=5.0)
    theta0 = torch.linspace(-1, 2, 4, dtype=torch.float64)
    for h in (0.3, 0.05):
        torch.testing.assert_close(
            flow(quadratic(a), theta0, h), torch.linalg.matrix_exp(-h * a) @ theta0, rtol=1e-10, atol=1e-11
        )
        want = torch.linalg.matrix_exp(-h * (a + 0.5 * h * a @ a)) @ theta0
        torch.testing.assert_close(flow(quadratic(a), theta0, h, h=h), want, rtol=1e-10, atol=1e-11)


def test_one_gd_step_has_orders_two_and_three_on_a_quadratic_and_a_nonlinear_model():
    hs = [0.0025, 0.005, 0.01, 0.02]
    for loss, theta0 in [
        (quadratic(random_spd(3, seed=2)), torch.tensor([1.0, -0.5, 0.3], dtype=torch.float64)),
        (product_loss, torch.tensor([1.4, 1.75], dtype=torch.float64)),
    ]:
        plain, modified = one_step_errors(loss, theta0, hs)
        assert abs(loglog_slope(hs, plain) - 2) < 0.1
        assert abs(loglog_slope(hs, modified) - 3) < 0.15


def test_gd_step_shrinks_a_squared_minus_b_squared_by_exactly_one_minus_h2_r2():
    rng = np.random.default_rng(5)
    for _ in range(50):
        ab = torch.tensor(rng.uniform(-3, 3, 2), dtype=torch.float64)
        h = float(rng.uniform(0.001, 0.3))
        nxt = gd_step(product_loss, ab, h)
        r = 1 - ab[0] * ab[1]
        d0, d1 = ab[0] ** 2 - ab[1] ** 2, nxt[0] ** 2 - nxt[1] ** 2
        assert abs(d1 - (1 - h**2 * r**2) * d0) <= 1e-12 * max(1.0, abs(float(d0)))
