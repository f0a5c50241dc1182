"""Gradient flow and the modified flow of gradient descent, integrated in float64 for the exact IGR checks.

    gradient flow:   d theta/dt = -g(theta)
    modified flow:   d theta/dt = -(g + (h/2) H g) = -grad(L + (h/4) ||g||^2)

One gradient-descent step theta - h g matches the time-h map of the gradient flow to O(h^2) and that of the
modified flow to O(h^3) (backward error analysis; Barrett & Dherin, Theorem 3.1). The fields take a flat
parameter vector; H g comes from `torch.autograd.functional.hvp`, independent of the double backprop in
`core.regularizers`, and the flows are integrated by `scipy.integrate.solve_ivp` (DOP853, rtol 1e-12).
"""

from collections.abc import Callable

import numpy as np
import torch
from scipy.integrate import solve_ivp

LossFn = Callable[[torch.Tensor], torch.Tensor]
RTOL, ATOL = 1e-12, 1e-14


def gradient(loss_fn: LossFn, theta: torch.Tensor) -> torch.Tensor:
    """g(theta) of a loss of a flat vector.

    Args:
        loss_fn (LossFn):
            Scalar loss of a `[P]` vector.
        theta (torch.Tensor):
            Point, `[P]`.

    Returns:
        torch.Tensor: `[P]`.
    """
    theta = theta.detach().requires_grad_(True)
    return torch.autograd.grad(loss_fn(theta), theta)[0].detach()


def field(loss_fn: LossFn, h: float = 0.0) -> Callable[[float, np.ndarray], np.ndarray]:
    """The right-hand side of the gradient flow (h = 0) or of the modified flow of step size h, for solve_ivp.

    Args:
        loss_fn (LossFn):
            Scalar loss of a flat float64 vector.
        h (float):
            Step size whose modified flow to follow; 0 gives the plain gradient flow.

    Returns:
        Callable[[float, np.ndarray], np.ndarray]: `f(t, theta) -> dtheta/dt`.
    """

    def f(_t: float, y: np.ndarray) -> np.ndarray:
        theta = torch.from_numpy(np.array(y, dtype=np.float64))
        g = gradient(loss_fn, theta)
        if h == 0:
            return (-g).numpy()
        _, hg = torch.autograd.functional.hvp(loss_fn, theta, g)
        return (-(g + 0.5 * h * hg)).numpy()

    return f


def flow(loss_fn: LossFn, theta0: torch.Tensor, t: float, h: float = 0.0) -> torch.Tensor:
    """theta(t) of the gradient flow (h = 0) or the modified flow of step h, from theta0.

    Args:
        loss_fn (LossFn):
            Scalar loss of a flat float64 vector.
        theta0 (torch.Tensor):
            Start, `[P]` float64.
        t (float):
            Integration time (one GD step of size h corresponds to t = h).
        h (float):
            Step size of the modified flow; 0 for the plain flow.

    Returns:
        torch.Tensor: the end point, `[P]` float64.
    """
    sol = solve_ivp(field(loss_fn, h), (0.0, t), theta0.detach().double().numpy(), method="DOP853", rtol=RTOL, atol=ATOL)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return torch.from_numpy(sol.y[:, -1].copy())


def gd_step(loss_fn: LossFn, theta: torch.Tensor, h: float) -> torch.Tensor:
    """One gradient-descent step theta - h g(theta).

    Args:
        loss_fn (LossFn):
            Scalar loss of a flat vector.
        theta (torch.Tensor):
            Point, `[P]`.
        h (float):
            Step size.

    Returns:
        torch.Tensor: the next iterate.
    """
    return theta.detach() - h * gradient(loss_fn, theta)


def one_step_errors(loss_fn: LossFn, theta0: torch.Tensor, hs: list[float]) -> tuple[list[float], list[float]]:
    """||GD step - flow(h)|| and ||GD step - modified flow(h)|| for each step size h.

    Args:
        loss_fn (LossFn):
            Scalar loss of a flat float64 vector.
        theta0 (torch.Tensor):
            Start point.
        hs (list[float]):
            Step sizes.

    Returns:
        tuple[list[float], list[float]]: errors against the plain flow (O(h^2)) and the modified flow (O(h^3)).
    """
    plain, modified = [], []
    for h in hs:
        step = gd_step(loss_fn, theta0, h)
        plain.append(float((step - flow(loss_fn, theta0, h)).norm()))
        modified.append(float((step - flow(loss_fn, theta0, h, h=h)).norm()))
    return plain, modified
