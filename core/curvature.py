"""Curvature of a loss at the current parameters: Hessian-vector products and the top eigenvalue.

Flatness claims (flooding F5) compare the top Hessian eigenvalue lambda_max of trained models. Power iteration
on Hessian-vector products (double backprop) finds the eigenvalue of largest magnitude, which at a trained
model is the top positive one in practice; `naive_hessian` builds the dense matrix for tests.
"""

from collections.abc import Callable, Sequence

import torch

Loss = Callable[[], torch.Tensor]


def _params(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [p for p in params if p.requires_grad]


def hessian_vector_product(loss: Loss, params: Sequence[torch.Tensor], vec: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """H v for the Hessian of `loss()` with respect to `params`, by double backprop.

    Args:
        loss (Loss):
            Closure returning the scalar loss.
        params (Sequence[torch.Tensor]):
            Parameters that require grad.
        vec (Sequence[torch.Tensor]):
            One tensor per parameter, same shapes.

    Returns:
        list[torch.Tensor]: H v, one tensor per parameter.
    """
    params = _params(params)
    grads = torch.autograd.grad(loss(), params, create_graph=True)
    return [h.detach() for h in torch.autograd.grad(grads, params, grad_outputs=list(vec))]


def top_hessian_eigenpair(
    loss: Loss, params: Sequence[torch.Tensor], iters: int = 20, seed: int = 0, init: Sequence[torch.Tensor] | None = None
) -> tuple[float, list[torch.Tensor]]:
    """Largest-magnitude Hessian eigenvalue and its unit eigenvector by power iteration on Hessian-vector products.

    The gradient graph is built once and reused by every iteration (one forward and backward pass in all,
    then one double-backward pass per iteration). Pass the previous eigenvector as `init` to track lambda_max
    along a training run: a warm start needs far fewer iterations than a random one.

    Args:
        loss (Loss):
            Closure returning the scalar loss (full batch, or a fixed subset).
        params (Sequence[torch.Tensor]):
            Parameters that require grad.
        iters (int):
            Power iterations (20 in the flooding spec).
        seed (int):
            Seed of the random start vector (ignored with `init`).
        init (Sequence[torch.Tensor] | None):
            Start vector, one tensor per parameter.

    Returns:
        tuple[float, list[torch.Tensor]]: the Rayleigh quotient v^T H v of the last unit vector v, and v.
    """
    if iters < 1:
        raise ValueError(f"power iteration needs iters >= 1, got {iters}")
    params = _params(params)
    if init is None:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        vec = [torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in params]
    else:
        vec = [v.detach().clone() for v in init]
    grads = torch.autograd.grad(loss(), params, create_graph=True)
    eig = 0.0
    for _ in range(iters):
        norm = torch.sqrt(sum((v * v).sum() for v in vec))
        vec = [v / norm for v in vec]
        hv = [h.detach() for h in torch.autograd.grad(grads, params, grad_outputs=vec, retain_graph=True)]
        eig = float(sum((h * v).sum() for h, v in zip(hv, vec, strict=True)))
        unit, vec = vec, hv
    return eig, unit


def top_hessian_eigenvalue(loss: Loss, params: Sequence[torch.Tensor], iters: int = 20, seed: int = 0) -> float:
    """Largest-magnitude Hessian eigenvalue by power iteration (see `top_hessian_eigenpair`).

    Args:
        loss (Loss):
            Closure returning the scalar loss (full batch, or a fixed subset).
        params (Sequence[torch.Tensor]):
            Parameters that require grad.
        iters (int):
            Power iterations (20 in the flooding spec).
        seed (int):
            Seed of the random start vector.

    Returns:
        float: the Rayleigh quotient v^T H v of the last unit vector v.
    """
    return top_hessian_eigenpair(loss, params, iters, seed)[0]


def naive_hessian(fn: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor) -> torch.Tensor:
    """Dense Hessian of `fn` at a flat parameter vector, column by column: the reference for tests.

    Args:
        fn (Callable[[torch.Tensor], torch.Tensor]):
            Scalar function of a flat vector.
        theta (torch.Tensor):
            Point, shape `[P]`.

    Returns:
        torch.Tensor: the Hessian, shape `[P, P]`.
    """
    return torch.autograd.functional.hessian(fn, theta.detach())
