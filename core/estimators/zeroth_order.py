"""Gaussian-smoothing zeroth-order (ZO) gradient estimation (Nesterov & Spokoiny 2017; MeZO, arXiv:2305.17333).

    grad f_sigma(theta) = E_u[ (f(theta + sigma u) - b) / sigma * u ],   u ~ N(0, I),   f_sigma = E_u f(theta + sigma u)

with any baseline b that does not depend on u (b = f(theta) is the forward difference); the antithetic form
(f(theta + sigma u) - f(theta - sigma u)) / (2 sigma) u needs no baseline. For one direction on a quadratic
the central difference is exactly u^T grad f, and E ||g_hat - grad f||^2 = (d + 1) ||grad f||^2.

Objectives are *batched*: `F(thetas [n, d]) -> [n]`, so many perturbations are evaluated in one call (use
`batched` for an `nn.Module`). Directions are regenerated from a seed by a dedicated `torch.Generator`, never
stored and never drawn from the global RNG.
"""

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, vmap

Batched = Callable[[torch.Tensor], torch.Tensor]


def directions(seed: int, q: int, d: int, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """q standard-normal directions in R^d, regenerated bit for bit from `seed`.

    Args:
        seed (int):
            Seed of a dedicated CPU generator.
        q (int):
            Number of directions.
        d (int):
            Dimension.
        dtype (torch.dtype):
            Floating type.
        device (str | torch.device):
            Where to put them.

    Returns:
        torch.Tensor: `[q, d]`.
    """
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(q, d, generator=gen, dtype=dtype).to(device)


def zo_terms(
    F: Batched, theta: torch.Tensor, sigma: float, u: torch.Tensor, antithetic: bool = True, baseline=None
) -> torch.Tensor:
    """Single-direction ZO estimates, one row per direction.

    Args:
        F (Batched):
            Batched objective, `[n, d] -> [n]`, evaluated without gradients.
        theta (torch.Tensor):
            Point, `[d]`.
        sigma (float):
            Smoothing radius.
        u (torch.Tensor):
            Directions `[q, d]`.
        antithetic (bool):
            Central difference; otherwise the forward difference against `baseline`.
        baseline (float | torch.Tensor | None):
            b of the forward difference; None uses f(theta).

    Returns:
        torch.Tensor: `[q, d]` estimates.
    """
    with torch.no_grad():
        if antithetic:
            both = F(torch.cat([theta + sigma * u, theta - sigma * u]))
            coef = (both[: len(u)] - both[len(u) :]) / (2 * sigma)
        else:
            b = F(theta[None])[0] if baseline is None else baseline
            coef = (F(theta + sigma * u) - b) / sigma
    return coef[:, None] * u


def zo_grad(
    F: Batched, theta: torch.Tensor, sigma: float, q: int, seed: int, antithetic: bool = True, chunk: int = 64
) -> torch.Tensor:
    """The q-direction average of `zo_terms`, directions from `seed`, evaluated `chunk` directions at a time.

    Args:
        F (Batched):
            Batched objective.
        theta (torch.Tensor):
            Point, `[d]`.
        sigma (float):
            Smoothing radius.
        q (int):
            Directions.
        seed (int):
            Seed of the directions.
        antithetic (bool):
            Central (True) or forward difference.
        chunk (int):
            Directions per batched evaluation (memory: 2 chunk d numbers).

    Returns:
        torch.Tensor: the estimate, `[d]`.
    """
    u = directions(seed, q, theta.numel(), theta.dtype, theta.device)
    total = torch.zeros_like(theta)
    for i in range(0, q, chunk):
        total += zo_terms(F, theta, sigma, u[i : i + chunk], antithetic).sum(0)
    return total / q


def flat_params(model: nn.Module) -> torch.Tensor:
    """The model's parameters as one detached vector."""
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def batched(model: nn.Module, objective: Callable[[torch.Tensor], torch.Tensor]) -> Batched:
    """A batched objective of flat parameter vectors for `model`: `F(thetas [n, d]) -> [n]`.

    Args:
        model (nn.Module):
            The network (its own parameters are not touched).
        objective (Callable[[torch.Tensor], torch.Tensor]):
            Maps the network's output on the caller's batch to a scalar, e.g. the batch 0/1 accuracy; it closes
            over the inputs through `inputs` below.

    Returns:
        Batched: evaluates `objective(model_theta(x))` for every row theta, with `torch.func.vmap`.
    """
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [s.numel() for s in shapes]

    def one(theta: torch.Tensor) -> torch.Tensor:
        weights = {n: c.view(s) for n, c, s in zip(names, torch.split(theta, sizes), shapes, strict=True)}
        return objective(lambda x: functional_call(model, weights, (x,)))

    return vmap(one)


@torch.no_grad()
def perturb_(params: list[torch.Tensor], seed: int, scale: float) -> None:
    """MeZO's in-place move theta <- theta + scale z, with z regenerated from `seed` (one generator, parameters in order).

    The sequence +sigma, -2 sigma, +sigma restores theta up to rounding: exactly representable only when the
    additions are; tests bound the drift (see control Z-P2).

    Args:
        params (list[torch.Tensor]):
            Parameters, changed in place.
        seed (int):
            Seed of z.
        scale (float):
            Multiple of z to add.
    """
    gen = torch.Generator().manual_seed(seed)
    for p in params:
        p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device))
