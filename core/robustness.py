"""Robustness and calibration metrics of a classifier: input-gradient norm, FGSM, PGD (L-infinity), ECE.

All attacks use the clean-label cross-entropy in eval mode and clip to the valid input range; epsilon is in
input units (pixels in [0, 1] for MNIST-5k, standardised units for digits).
"""

import torch
import torch.nn.functional as F
from torch import nn


def _eval_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    return torch.autograd.grad(loss, x)[0]


def input_grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean over examples of ||grad_x CE(model(x), y)||_2 (per-example loss, so each gradient is its own)."""
    was = model.training
    model.eval()
    g = _eval_grad(model, x, y)
    model.train(was)
    return float(g.flatten(1).norm(dim=1).mean())


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, lo: float, hi: float) -> torch.Tensor:
    """One signed-gradient step of size eps, clipped to [lo, hi].

    Args:
        model (nn.Module):
            Classifier (evaluated in eval mode).
        x (torch.Tensor):
            Clean inputs.
        y (torch.Tensor):
            Clean labels.
        eps (float):
            L-infinity radius in input units.
        lo (float):
            Smallest valid input value.
        hi (float):
            Largest valid input value.

    Returns:
        torch.Tensor: adversarial inputs.
    """
    was = model.training
    model.eval()
    adv = (x + eps * _eval_grad(model, x, y).sign()).clamp(lo, hi)
    model.train(was)
    return adv.detach()


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int,
    step_size: float,
    lo: float,
    hi: float,
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient ascent on the cross-entropy in the L-infinity ball of radius eps, from a random start.

    Args:
        model (nn.Module):
            Classifier (evaluated in eval mode).
        x (torch.Tensor):
            Clean inputs.
        y (torch.Tensor):
            Clean labels.
        eps (float):
            Radius.
        steps (int):
            Ascent steps.
        step_size (float):
            Size of each signed step (eps / 4 in the spec).
        lo (float):
            Smallest valid input value.
        hi (float):
            Largest valid input value.
        gen (torch.Generator | None):
            Generator of the random start; None starts at x.

    Returns:
        torch.Tensor: adversarial inputs within the ball and the valid range.
    """
    was = model.training
    model.eval()
    adv = x.detach().clone()
    if gen is not None:
        adv = adv + (2 * torch.rand(x.shape, generator=gen, dtype=x.dtype) - 1).to(x.device) * eps
        adv = adv.clamp(lo, hi)
    for _ in range(steps):
        adv = adv + step_size * _eval_grad(model, adv, y).sign()
        adv = torch.max(torch.min(adv, x + eps), x - eps).clamp(lo, hi)
    model.train(was)
    return adv.detach()


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, bins: int = 15) -> float:
    """ECE: sum over equal-width confidence bins of |accuracy - mean confidence| weighted by the bin's share.

    Args:
        probs (torch.Tensor):
            Predicted class probabilities `[N, K]`.
        y (torch.Tensor):
            Labels `[N]`.
        bins (int):
            Number of bins over (0, 1].

    Returns:
        float: the ECE.
    """
    conf, pred = probs.max(1)
    hit = (pred == y).to(probs.dtype)
    edges = torch.tensor([(b + 1) / bins for b in range(bins - 1)], dtype=conf.dtype, device=conf.device)
    idx = torch.bucketize(conf, edges)  # bin b holds confidences in (b/bins, (b+1)/bins]
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += int(m.sum()) / len(y) * float((hit[m].mean() - conf[m].mean()).abs())
    return total
