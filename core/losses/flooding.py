"""Flooding (Ishida et al., ICML 2020, arXiv:2002.08709): keep the training loss near a level b.

    L_flood = |L - b| + b,        grad L_flood = sign(L - b) grad L

Above b the optimiser descends L; below b it climbs back. b = 0 returns L unchanged, so the baseline arm is
b = 0, not a separate code path. Flood the mini-batch *mean* loss: flooding per-example losses is iFlood.

Su's analysis (kexue.fm/archives/7643): near L = b a descent step and an ascent step on the same batch compose to

    theta_{n+1} = theta_{n-1} - eps^2 H g + O(eps^3) = theta_{n-1} - (eps^2 / 2) grad ||g||^2 + O(eps^3),

one gradient step on the penalty ||grad L||^2; for a quadratic L = theta^T A theta / 2 it is exact.
"""

from collections.abc import Callable

import torch

LossFn = Callable[[torch.Tensor], torch.Tensor]


def flood(loss: torch.Tensor, level: float) -> torch.Tensor:
    """Flood a scalar mini-batch loss.

    Args:
        loss (torch.Tensor):
            Mean loss of the mini-batch, shape `[]`.
        level (float):
            Flood level b, at least 0. `0.0` turns flooding off.

    Returns:
        torch.Tensor: `|loss - level| + level`, shape `[]`.
    """
    if level < 0:
        raise ValueError(f"flood level must be >= 0, got {level}")
    if loss.dim() != 0:
        raise ValueError(f"flood the mini-batch mean (a scalar), got a loss of shape {tuple(loss.shape)}")
    return (loss - level).abs() + level


def two_flooded_steps(
    theta: torch.Tensor, descent_loss: LossFn, eps: float, ascent_loss: LossFn | None = None
) -> torch.Tensor:
    """One descent step then one ascent step of plain gradient descent, as flooding does at L = b.

    Args:
        theta (torch.Tensor):
            Parameters, shape `[P]`.
        descent_loss (LossFn):
            Loss of the first (descent) step.
        eps (float):
            Learning rate.
        ascent_loss (LossFn | None):
            Loss of the second (ascent) step; `None` uses `descent_loss` (the same batch). A different batch
            leaves an O(eps) term eps (g_B2 - g_B1) behind.

    Returns:
        torch.Tensor: theta after both steps, shape `[P]`.
    """
    ascent_loss = descent_loss if ascent_loss is None else ascent_loss
    theta = theta.detach().requires_grad_()
    g1 = torch.autograd.grad(descent_loss(theta), theta)[0]
    th1 = (theta - eps * g1).detach().requires_grad_()
    g2 = torch.autograd.grad(ascent_loss(th1), th1)[0]
    return (th1 + eps * g2).detach()


def two_step_prediction(theta: torch.Tensor, loss: LossFn, eps: float) -> torch.Tensor:
    """Su's prediction for two flooded steps: `theta - eps^2 H(theta) g(theta)`, by double backprop.

    Args:
        theta (torch.Tensor):
            Parameters, shape `[P]`.
        loss (LossFn):
            Full-batch loss.
        eps (float):
            Learning rate.

    Returns:
        torch.Tensor: predicted parameters, shape `[P]`.
    """
    theta = theta.detach().requires_grad_()
    g = torch.autograd.grad(loss(theta), theta, create_graph=True)[0]
    hg = torch.autograd.grad(g, theta, grad_outputs=g.detach())[0]
    return (theta - eps**2 * hg).detach()
