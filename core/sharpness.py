"""Adaptive (scale-invariant) eps-sharpness: the largest rise of a loss within a box scaled by the parameters.

ASAM (Kwon, Kim, Park and Choi, ICML 2021, arXiv:2102.11600) sizes the neighbourhood of each parameter by its
magnitude, so that rescalings which leave a ReLU network's function unchanged leave the measure unchanged too. The
neighbourhood here is the elementwise box of flooding's amendment A1 (F-D1):

    |delta_i| <= r_i = eps (|theta_i| + floor),    S = max_{delta in box} L(theta + delta) - L(theta) >= 0.

`adaptive_sharpness` finds S by projected gradient ascent with sign steps (the steepest ascent for a box, as in
Madry et al.'s PGD) in the box's own coordinates u = delta / r in [-1, 1]^P, from delta = 0, keeping the best
iterate. Every iterate lies in the box, so the result never exceeds S: it is a lower bound. Where the loss is nearly
linear over the box it reaches S (the vertex r * sign(g), in 4 steps); at a stationary point, such as the end of
unflooded training, the ascent is local and may stop at a vertex short of S (on random 9-parameter convex problems
at their minimum, 10 steps found 50-100% of S, median ~75%). `naive_adaptive_sharpness` evaluates the
loss on a grid of the box by brute force: its vertices alone give S exactly for a loss convex in theta (a convex
function attains its maximum over a box at a vertex), a finer grid a lower bound for any loss.
"""

import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

Loss = Callable[[Sequence[torch.Tensor]], torch.Tensor]
"""The loss as a function of one tensor per parameter (differentiable in them)."""


def _check(eps: float, floor: float) -> None:
    if eps <= 0 or floor < 0:
        raise ValueError(f"the box needs eps > 0 and floor >= 0, got eps={eps}, floor={floor}")


def adaptive_sharpness(
    loss: Loss, params: Sequence[torch.Tensor], eps: float = 0.05, steps: int = 10, floor: float = 1e-3, step: float = 0.25
) -> tuple[float, float]:
    """The loss at `params` and its largest rise within the adaptive box, by projected sign-gradient ascent.

    Costs `steps` forward and backward passes and one forward pass; `params` are not modified.

    Args:
        loss (Loss):
            The loss as a function of one tensor per parameter.
        params (Sequence[torch.Tensor]):
            The point theta, one tensor per parameter (any device and float dtype).
        eps (float):
            Relative size of the box (0.05 in F-D1).
        steps (int):
            Ascent steps (10 in F-D1).
        floor (float):
            Added to |theta_i| so that zero parameters may move too (1e-3 in F-D1).
        step (float):
            Step in box units: 0.25 reaches a face in 4 steps (2.5 / steps, as PGD's usual choice, at 10 steps).

    Returns:
        tuple[float, float]: L(theta), and the best rise L(theta + delta) - L(theta) found (0 if none rose).
    """
    _check(eps, floor)
    if steps < 1:
        raise ValueError(f"projected gradient ascent needs steps >= 1, got {steps}")
    theta = [p.detach() for p in params]
    radius = [eps * (t.abs() + floor) for t in theta]
    u = [torch.zeros_like(t) for t in theta]
    base: float | None = None
    best = 0.0
    for _ in range(steps):
        shifted = [(t + r * ui).requires_grad_() for t, r, ui in zip(theta, radius, u, strict=True)]
        out = loss(shifted)
        grads = torch.autograd.grad(out, shifted)
        value = float(out.detach())
        base = value if base is None else base  # the first iterate is delta = 0
        best = max(best, value - base)
        # d L / d u_i = g_i r_i has the sign of g_i: a sign step in u, then back onto the box's faces
        u = [(ui + step * g.sign()).clamp_(-1.0, 1.0) for ui, g in zip(u, grads, strict=True)]
    with torch.no_grad():
        last = float(loss([t + r * ui for t, r, ui in zip(theta, radius, u, strict=True)]))
    assert base is not None
    return base, max(best, last - base)


def naive_adaptive_sharpness(
    fn: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, eps: float = 0.05, floor: float = 1e-3, points: int = 2
) -> float:
    """The largest rise of `fn` over a grid of the adaptive box, by evaluating every grid point: the reference for tests.

    Args:
        fn (Callable[[torch.Tensor], torch.Tensor]):
            Scalar function of a flat parameter vector.
        theta (torch.Tensor):
            The point, shape `[P]` (P small: the grid has points^P points).
        eps (float):
            Relative size of the box.
        floor (float):
            Added to |theta_i|.
        points (int):
            Grid points per axis, both faces included; 2 (the vertices) is exact for a loss convex in theta.

    Returns:
        float: max over the grid of fn(theta + delta) - fn(theta).
    """
    _check(eps, floor)
    if points < 2 or points ** theta.numel() > 2**20:
        raise ValueError(f"need points >= 2 and at most 2^20 grid points, got {points}^{theta.numel()}")
    radius = eps * (theta.abs() + floor)
    axis = torch.linspace(-1.0, 1.0, points, dtype=theta.dtype).tolist()
    with torch.no_grad():
        grid = itertools.product(axis, repeat=theta.numel())
        return max(float(fn(theta + torch.tensor(u, dtype=theta.dtype) * radius)) for u in grid) - float(fn(theta))


def model_sharpness(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 0.05, steps: int = 10, floor: float = 1e-3
) -> tuple[float, float]:
    """Mean cross-entropy of `model` on `(x, y)` and its adaptive eps-sharpness (`adaptive_sharpness`), in eval mode.

    The parameters are perturbed through `torch.func.functional_call`, so the model itself is never changed; its
    train/eval mode is restored afterwards.

    Args:
        model (nn.Module):
            The classifier.
        x (torch.Tensor):
            Inputs, on the model's device.
        y (torch.Tensor):
            Labels.
        eps (float):
            Relative size of the box.
        steps (int):
            Ascent steps.
        floor (float):
            Added to |theta_i|.

    Returns:
        tuple[float, float]: the loss and the rise.
    """
    names, params = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad], strict=True)
    training = model.training
    model.eval()
    try:
        loss = lambda ps: F.cross_entropy(functional_call(model, dict(zip(names, ps, strict=True)), (x,)), y)  # noqa: E731
        return adaptive_sharpness(loss, params, eps, steps, floor)
    finally:
        model.train(training)
