"""Gradient-norm penalties: implicit gradient regularisation (IGR) made explicit (EGR).

Barrett & Dherin (ICLR 2021, arXiv:2009.11162) and Su (kexue.fm/archives/7787): one gradient-descent step of
size h follows, to O(h^3), the gradient flow of the *modified loss*

    L~ = L + (h/4) ||grad L||^2                                  (full batch: L is the whole training loss)

so a finite step size carries a penalty on the squared gradient norm that vanishes as h -> 0. Smith et al.
(ICLR 2021, arXiv:2101.12176) give the SGD version over the m mini-batches L_1 .. L_m of an epoch (m counts
mini-batches here, not parameters as in Barrett & Dherin):

    L_SGD = mean_k L_k + (h / 4m) sum_k ||grad L_k||^2
          = L + (h/4) ||grad L||^2 + (h / 4m) sum_k ||grad L_k - grad L||^2.

Explicit gradient regularisation adds mu ||grad L||^2 (mu always multiplies the *sum* of squares over
parameters; Barrett & Dherin's lambda multiplies the mean, lambda = mu * m_params). Training at step h with
mu = (h_big - h) / 4 mimics the implicit penalty of h_big. The penalty's gradient is 2 mu H g: by double
backprop (`egr_grads`), or by a finite difference of gradients without double backprop (`penalty_grad_fd`;
the forward variant is Karakida et al.'s F-GR, arXiv:2210.02720).
"""

from collections.abc import Callable, Sequence

import torch

Loss = Callable[[], torch.Tensor]


def _params(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [p for p in params if p.requires_grad]


def _sq(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((g * g).sum() for g in grads)


def grad_norm_sq(loss: torch.Tensor, params: Sequence[torch.Tensor], create_graph: bool = True) -> torch.Tensor:
    """||grad_params loss||^2, the sum of squares over every parameter entry.

    Args:
        loss (torch.Tensor):
            Scalar loss built from `params`.
        params (Sequence[torch.Tensor]):
            Parameters; those without `requires_grad` are skipped.
        create_graph (bool):
            Keep the graph so the result can be differentiated again (double backprop).

    Returns:
        torch.Tensor: scalar, differentiable in `params` when `create_graph`.
    """
    grads = torch.autograd.grad(loss, _params(params), create_graph=create_graph)
    return _sq(grads)


def egr_loss(loss: torch.Tensor, params: Sequence[torch.Tensor], mu: float) -> torch.Tensor:
    """loss + mu ||grad loss||^2, to call `.backward()` on (double backprop, about 3x a plain step).

    The penalty is on the gradient of the loss you pass: pass the full training loss for the full-batch
    form of Barrett & Dherin, a mini-batch loss for the per-batch form (see `minibatch_modified_loss`).

    Args:
        loss (torch.Tensor):
            Scalar loss.
        params (Sequence[torch.Tensor]):
            Parameters.
        mu (float):
            Penalty strength on the sum of squares, at least 0.

    Returns:
        torch.Tensor: the penalised scalar.
    """
    if mu < 0:
        raise ValueError(f"gradient-penalty strength mu must be >= 0, got {mu}")
    return loss + mu * grad_norm_sq(loss, params, create_graph=True)


def modified_loss(loss: torch.Tensor, params: Sequence[torch.Tensor], h: float) -> torch.Tensor:
    """Barrett & Dherin's full-batch modified loss L + (h/4) ||grad L||^2 for step size h.

    Args:
        loss (torch.Tensor):
            The full training loss L.
        params (Sequence[torch.Tensor]):
            Parameters.
        h (float):
            Gradient-descent step size.

    Returns:
        torch.Tensor: the modified loss, differentiable.
    """
    return egr_loss(loss, params, h / 4)


def minibatch_modified_loss(batch_losses: Sequence[torch.Tensor], params: Sequence[torch.Tensor], h: float) -> torch.Tensor:
    """Smith et al.'s SGD modified loss over one epoch: mean_k L_k + (h / 4m) sum_k ||grad L_k||^2.

    Args:
        batch_losses (Sequence[torch.Tensor]):
            The m mini-batch mean losses of an epoch (equal-sized batches, so their mean is L).
        params (Sequence[torch.Tensor]):
            Parameters.
        h (float):
            SGD step size.

    Returns:
        torch.Tensor: the modified loss, differentiable.
    """
    m = len(batch_losses)
    penalty = sum(grad_norm_sq(lk, params, create_graph=True) for lk in batch_losses)
    return sum(batch_losses) / m + h / (4 * m) * penalty


def egr_grads(loss: torch.Tensor, params: Sequence[torch.Tensor], mu: float) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Gradient of loss + mu ||grad loss||^2 by double backprop, and the plain gradient beside it.

    The penalty term is always built, also for mu = 0, so the mu = 0 arm runs this code path (control I-P1).

    Args:
        loss (torch.Tensor):
            Scalar loss.
        params (Sequence[torch.Tensor]):
            Parameters.
        mu (float):
            Penalty strength on the sum of squares.

    Returns:
        tuple[list[torch.Tensor], list[torch.Tensor]]: (total gradient g + 2 mu H g, plain gradient g), detached.
    """
    params = _params(params)
    g = torch.autograd.grad(loss, params, create_graph=True)
    hg2 = torch.autograd.grad(_sq(g), params)  # = 2 H g
    return [gi.detach() + mu * pi for gi, pi in zip(g, hg2, strict=True)], [gi.detach() for gi in g]


def penalty_grad_fd(
    loss_fn: Loss, params: Sequence[torch.Tensor], mu: float, radius: float, central: bool = True
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Gradient of mu ||grad L||^2 = 2 mu H g by a finite difference of gradients along g (no double backprop).

    With u = g / ||g|| and a step of `radius` along u: central, 2 mu ||g|| (grad L(theta + r u) -
    grad L(theta - r u)) / (2r), error O(r^2); forward (F-GR), 2 mu ||g|| (grad L(theta + r u) - grad L(theta)) / r,
    error O(r). The parameters are restored bit for bit afterwards.

    Args:
        loss_fn (Loss):
            Closure computing the loss at the current parameter values.
        params (Sequence[torch.Tensor]):
            Parameters (perturbed in place, then restored).
        mu (float):
            Penalty strength.
        radius (float):
            Length r of the parameter perturbation.
        central (bool):
            Central difference (two extra gradients) or forward F-GR (one).

    Returns:
        tuple[list[torch.Tensor], list[torch.Tensor]]: (penalty gradient 2 mu H g, plain gradient g).
    """
    params = _params(params)
    g = [gi.detach() for gi in torch.autograd.grad(loss_fn(), params)]
    norm = torch.sqrt(_sq(g))
    if norm == 0:
        return [torch.zeros_like(p) for p in params], g
    saved = [p.detach().clone() for p in params]

    def grad_at(step: float) -> list[torch.Tensor]:
        with torch.no_grad():
            for p, s, gi in zip(params, saved, g, strict=True):
                p.copy_(s + (step / norm) * gi)
        out = [gi.detach() for gi in torch.autograd.grad(loss_fn(), params)]
        with torch.no_grad():
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)
        return out

    plus = grad_at(radius)
    minus, span = (grad_at(-radius), 2 * radius) if central else (g, radius)
    return [2 * mu * norm * (a - b) / span for a, b in zip(plus, minus, strict=True)], g


def full_batch_grad(loss_sum_fn: Callable[[int, int], torch.Tensor], n: int, chunk: int, params: Sequence[torch.Tensor]):
    """The full-training-set gradient of the mean loss, accumulated over chunks of examples.

    `R_IG = ||full_batch_grad||^2` is the evaluation quantity of the IGR claims: square the accumulated
    gradient, never average per-batch squared norms (that is the SGD-type quantity of Smith et al.).

    Args:
        loss_sum_fn (Callable[[int, int], torch.Tensor]):
            `loss_sum_fn(start, stop)`: the *summed* loss of examples `start:stop`.
        n (int):
            Number of training examples.
        chunk (int):
            Examples per chunk.
        params (Sequence[torch.Tensor]):
            Parameters.

    Returns:
        list[torch.Tensor]: gradient of (1/n) sum_i loss_i, one tensor per parameter.
    """
    params = _params(params)
    total = [torch.zeros_like(p) for p in params]
    for start in range(0, n, chunk):
        grads = torch.autograd.grad(loss_sum_fn(start, min(start + chunk, n)), params)
        for t, gi in zip(total, grads, strict=True):
            t += gi
    return [t / n for t in total]


def matching_mu(h: float, h_big: float) -> float:
    """The EGR strength mu = (h_big - h) / 4 that gives step h the implicit penalty of step h_big.

    Args:
        h (float):
            The small step size actually used.
        h_big (float):
            The large step size to mimic.

    Returns:
        float: mu, so that h/4 + mu = h_big/4.
    """
    if h_big < h:
        raise ValueError(f"h_big ({h_big}) must be at least h ({h})")
    return (h_big - h) / 4
