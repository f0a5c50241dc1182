import torch
from torch import nn

from core.curvature import hessian_vector_product, naive_hessian, top_hessian_eigenpair, top_hessian_eigenvalue
from core.testing import random_spd


def test_hvp_matches_dense_hessian():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(11, 3, dtype=torch.float64), torch.randint(0, 2, (11,))
    params = list(net.parameters())
    shapes = [p.shape for p in params]
    flat = torch.cat([p.detach().flatten() for p in params])

    def loss_of(theta):
        chunks, i = [], 0
        for s in shapes:
            chunks.append(theta[i : i + s.numel()].view(s))
            i += s.numel()
        w1, b1, w2, b2 = chunks
        return nn.functional.cross_entropy(torch.tanh(x @ w1.T + b1) @ w2.T + b2, y)

    v = torch.randn_like(flat)
    want = naive_hessian(loss_of, flat) @ v
    vs = list(torch.split(v, [s.numel() for s in shapes]))
    got = hessian_vector_product(
        lambda: nn.functional.cross_entropy(net(x), y), params, [c.view(s) for c, s in zip(vs, shapes, strict=False)]
    )
    torch.testing.assert_close(torch.cat([g.flatten() for g in got]), want)


def test_power_iteration_finds_the_top_eigenvalue():
    a = random_spd(8, seed=3, cond=50.0)
    theta = torch.zeros(8, dtype=torch.float64, requires_grad=True)
    got = top_hessian_eigenvalue(lambda: 0.5 * theta @ a @ theta, [theta], iters=200)
    assert abs(got - torch.linalg.eigvalsh(a)[-1].item()) < 1e-6 * got


def test_eigenpair_vector_and_warm_start():
    a = random_spd(7, seed=4, cond=30.0)
    theta = torch.zeros(7, dtype=torch.float64, requires_grad=True)
    loss = lambda: 0.5 * theta @ a @ theta  # noqa: E731
    eig, vec = top_hessian_eigenpair(loss, [theta], iters=300)
    evals, evecs = torch.linalg.eigh(a)
    assert abs(eig - evals[-1].item()) < 1e-9 * eig
    assert abs(abs(float(vec[0] @ evecs[:, -1])) - 1) < 1e-6
    # Started on the eigenvector, one iteration is exact.
    warm, _ = top_hessian_eigenpair(loss, [theta], iters=1, init=[evecs[:, -1]])
    assert abs(warm - evals[-1].item()) < 1e-12 * eig
