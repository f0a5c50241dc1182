"""Toy objectives with known structure, used by exact checks and tests.

Every objective takes a flat float64 parameter vector so the identities can be checked without modules.
"""

import torch


def random_spd(dim: int, seed: int, cond: float = 10.0) -> torch.Tensor:
    """A random symmetric positive-definite matrix with eigenvalues spread over [1, cond].

    Args:
        dim (int):
            Size.
        seed (int):
            Seed.
        cond (float):
            Condition number.

    Returns:
        torch.Tensor: `[dim, dim]`, float64.
    """
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    eigs = torch.logspace(0, torch.log10(torch.tensor(cond)).item(), dim, dtype=torch.float64)
    return (q * eigs) @ q.T


def quadratic(a: torch.Tensor):
    """L(theta) = theta^T A theta / 2.

    Args:
        a (torch.Tensor):
            Symmetric matrix `[P, P]`.

    Returns:
        Callable[[torch.Tensor], torch.Tensor]: the loss of a `[P]` vector.
    """
    return lambda theta: 0.5 * theta @ a @ theta


def product_loss(theta: torch.Tensor) -> torch.Tensor:
    """E(a, b) = (1 - a b)^2 / 2, the two-parameter model of the flooding and IGR articles.

    Args:
        theta (torch.Tensor):
            `[2]` = (a, b).

    Returns:
        torch.Tensor: scalar loss.
    """
    return 0.5 * (1 - theta[0] * theta[1]) ** 2


def tanh_mlp_221(x: torch.Tensor, y: torch.Tensor):
    """Mean squared error of a 2-2-1 tanh MLP on fixed data, as a function of its 9 flat parameters.

    Args:
        x (torch.Tensor):
            Inputs `[N, 2]`.
        y (torch.Tensor):
            Targets `[N]`.

    Returns:
        Callable[[torch.Tensor], torch.Tensor]: the loss of a `[9]` vector (W1 2x2, b1 2, w2 2, b2 1).
    """

    def loss(theta: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2 = theta[:4].view(2, 2), theta[4:6], theta[6:8], theta[8]
        pred = torch.tanh(x @ w1.T + b1) @ w2 + b2
        return 0.5 * ((pred - y) ** 2).mean()

    return loss


def toy_regression(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets for `tanh_mlp_221`: y = sin(x1) + x2 / 2 plus a little noise, float64.

    Args:
        n (int):
            Number of points.
        seed (int):
            Seed.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: `x [n, 2]`, `y [n]`.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    y = torch.sin(x[:, 0]) + 0.5 * x[:, 1] + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)
    return x, y


def relu2_grads(params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> tuple[float, list[torch.Tensor]]:
    """Mean squared error of a 2-layer ReLU net and its gradient, written out by hand (no autograd), so that
    20k-step gradient-descent checks run in about a second.

    Args:
        params (list[torch.Tensor]):
            `[W1 [H, D], b1 [H], W2 [1, H], b2 [1]]`.
        x (torch.Tensor):
            Inputs `[N, D]`.
        y (torch.Tensor):
            Targets `[N, 1]`.

    Returns:
        tuple[float, list[torch.Tensor]]: the loss and the gradients in the order of `params`.
    """
    w1, b1, w2, b2 = params
    pre = x @ w1.T + b1
    h = pre.clamp_min(0)
    f = h @ w2.T + b2
    df = 2 * (f - y) / len(y)
    dh = (df @ w2) * (pre > 0)
    return float(((f - y) ** 2).mean()), [dh.T @ x, dh.sum(0), df.T @ h, df.sum(0)]
