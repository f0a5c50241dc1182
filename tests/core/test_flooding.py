import pytest
import torch
import torch.nn.functional as F

from core.curvature import naive_hessian
from core.losses.flooding import flood, two_flooded_steps, two_step_prediction
from core.testing import product_loss, quadratic, random_spd, tanh_mlp_221, toy_regression


@pytest.mark.parametrize("level", [0.0, 0.05, 0.3, 2.0])
def test_flood_matches_closed_form_value_and_gradient(level):
    logits = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (7,))
    base = F.cross_entropy(logits, y)
    got = flood(base, level)
    want = abs(base.item() - level) + level
    assert got.item() == pytest.approx(want, abs=1e-15)
    g_base = torch.autograd.grad(base, logits, retain_graph=True)[0]
    g_flood = torch.autograd.grad(got, logits)[0]
    sign = 1.0 if base.item() > level else -1.0  # descent above b, ascent below
    torch.testing.assert_close(g_flood, sign * g_base)


def test_zero_level_is_the_identity_exactly():
    loss = (torch.randn(3, dtype=torch.float64, requires_grad=True) ** 2).mean()
    assert torch.equal(flood(loss, 0.0), loss)


def test_bad_arguments_fail_early():
    with pytest.raises(ValueError, match="flood level must be >= 0"):
        flood(torch.tensor(1.0), -0.1)
    with pytest.raises(ValueError, match="mini-batch mean"):
        flood(torch.ones(3), 0.1)


@pytest.mark.parametrize("seed", range(3))
def test_two_steps_on_a_quadratic_are_exact(seed):
    a = random_spd(5, seed)
    theta = torch.randn(5, dtype=torch.float64)
    eps = 0.07
    want = (torch.eye(5, dtype=torch.float64) - eps**2 * a @ a) @ theta  # (I + eps A)(I - eps A)
    torch.testing.assert_close(two_flooded_steps(theta, quadratic(a), eps), want, rtol=0, atol=1e-13)


def test_prediction_matches_dense_hessian_route():
    x, y = toy_regression(6, seed=1)
    loss = tanh_mlp_221(x, y)
    theta = torch.randn(9, dtype=torch.float64)
    leaf = theta.clone().requires_grad_()
    g = torch.autograd.grad(loss(leaf), leaf)[0]
    want = theta - 0.03**2 * naive_hessian(loss, theta) @ g
    torch.testing.assert_close(two_step_prediction(theta, loss, 0.03), want)


def test_nonlinear_error_shrinks_as_eps_cubed():
    theta = torch.tensor([0.5, 1.5], dtype=torch.float64)
    errs = [
        (two_flooded_steps(theta, product_loss, e) - two_step_prediction(theta, product_loss, e)).norm().item()
        for e in (0.02, 0.01)
    ]
    assert errs[0] / errs[1] == pytest.approx(8.0, rel=0.05)
