"""L2 vs WEISSI (Liu, Cui, Chan, arXiv:2008.02965; Su, kexue.fm/archives/7681): weight-scale shift invariance.

A ReLU network is positively homogeneous: scaling layer l's weight by gamma_l > 0 (and its bias by the
cumulative product prod_{k<=l} gamma_k) multiplies the output by prod_l gamma_l, so with prod gamma = 1 the
function is unchanged. L2 is not invariant under such shifts (it can be lowered by re-balancing alone, down to
the AM-GM bound L (prod_l ||W_l||)^(2/L)); WEISSI is:

    R_WEISSI = lam1 * sum_l log ||W_l||_2 + lam2 * sum_l || W_l / ||W_l||_2 ||_1

over the weight tensors of linear and convolution layers (flattened, output layer included; biases and
normalisation parameters excluded). Its first term penalises the product of layer norms; its gradient
lam1 W / ||W||^2 is a norm-adaptive decay.
"""

import math
from collections.abc import Sequence

import torch
from torch import nn

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """The linear and convolution layers of a model, in module order (the tensors WEISSI and L2 cover)."""
    return [m for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]


NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)


def unnormalised_layers(model: nn.Module) -> list[nn.Module]:
    """The weight layers not followed by a normalisation layer, in module order.

    "Followed" means the next module in registration order, which is how the architectures of `core.models`
    declare a convolution and its batch norm. After a norm layer a weight's scale does not change the function,
    so WEISSI's log term would shrink it without bound (spec gotcha 1): the W-D1 diagnostic penalises only these.
    """
    mods = [m for m in model.modules() if not list(m.children())]  # leaves, in order
    return [
        m
        for m, nxt in zip(mods, [*mods[1:], None], strict=True)
        if isinstance(m, WEIGHT_LAYERS) and not isinstance(nxt, NORM_LAYERS)
    ]


def weissi(
    model: nn.Module, lam1: float, lam2: float = 0.0, eps: float = 1e-12, layers: list[nn.Module] | None = None
) -> torch.Tensor:
    """The WEISSI penalty of a model's weight tensors.

    Args:
        model (nn.Module):
            The network.
        lam1 (float):
            Strength of sum_l log ||W_l||.
        lam2 (float):
            Strength of sum_l ||W_l / ||W_l|| ||_1 (scale-invariant sparsity).
        eps (float):
            Lower clamp of each norm: the log term is unbounded below for a layer whose scale does not matter.
        layers (list[nn.Module] | None):
            The layers to penalise; None means every weight layer.

    Returns:
        torch.Tensor: scalar, differentiable.
    """
    total = torch.zeros((), dtype=next(model.parameters()).dtype, device=next(model.parameters()).device)
    for layer in weight_layers(model) if layers is None else layers:
        w = layer.weight.flatten()
        norm = w.norm().clamp_min(eps)
        total = total + lam1 * torch.log(norm) + lam2 * w.abs().sum() / norm
    return total


def weissi_naive(model: nn.Module, lam1: float, lam2: float = 0.0) -> float:
    """The same formula by a per-layer, per-entry Python loop in float64 (the reference of control W-P1)."""
    total = 0.0
    for layer in weight_layers(model):
        entries = [float(v) for v in layer.weight.detach().double().flatten().tolist()]
        norm = math.sqrt(sum(v * v for v in entries))
        total += lam1 * math.log(norm) + lam2 * sum(abs(v) for v in entries) / norm
    return total


def l2(model: nn.Module, lam: float, biases: bool = True) -> torch.Tensor:
    """(lam / 2) sum ||theta||^2, so its gradient is lam * theta (the convention of `torch.optim.SGD(weight_decay=lam)`).

    Args:
        model (nn.Module):
            The network.
        lam (float):
            Strength.
        biases (bool):
            Include every parameter (True) or only the weight tensors of `weight_layers` (False).

    Returns:
        torch.Tensor: scalar.
    """
    params = list(model.parameters()) if biases else [m.weight for m in weight_layers(model)]
    return 0.5 * lam * sum((p * p).sum() for p in params)


@torch.no_grad()
def weissi_decay_(model: nn.Module, lr: float, lam1: float, eps: float = 1e-12) -> None:
    """Decoupled WEISSI step on the weight tensors: W <- W - lr * lam1 * W / ||W||^2 (after the optimiser step)."""
    for layer in weight_layers(model):
        w = layer.weight
        w -= lr * lam1 * w / w.norm().clamp_min(eps) ** 2


@torch.no_grad()
def shift_scales_(linears: Sequence[nn.Module], gammas: Sequence[float], cumulative_bias: bool = True) -> None:
    """Weight-scale shift in place: W_l <- gamma_l W_l and b_l <- (prod_{k<=l} gamma_k) b_l.

    With prod gamma = 1 a biased ReLU network computes the same function. `cumulative_bias=False` scales b_l by
    gamma_l alone (Su's literal text), which is exact only without biases: the sensitivity control W-C1.

    Args:
        linears (Sequence[nn.Module]):
            The layers of a chain (weight and optional bias each), input to output.
        gammas (Sequence[float]):
            One positive factor per layer.
        cumulative_bias (bool):
            The exact rule (True) or the naive one (False).
    """
    if len(linears) != len(gammas) or min(gammas) <= 0:
        raise ValueError(f"need one positive gamma per layer, got {len(gammas)} for {len(linears)} layers")
    cum = 1.0
    for layer, g in zip(linears, gammas, strict=True):
        cum *= g
        layer.weight.mul_(g)
        if layer.bias is not None:
            layer.bias.mul_(cum if cumulative_bias else g)


def balancing_gammas(linears: Sequence[nn.Module]) -> list[float]:
    """The shift (prod gamma = 1) that gives every layer the same weight norm (prod_k ||W_k||)^(1/L).

    Args:
        linears (Sequence[nn.Module]):
            The layers of a chain.

    Returns:
        list[float]: one gamma per layer.
    """
    norms = [float(layer.weight.detach().double().norm()) for layer in linears]
    target = math.exp(sum(math.log(n) for n in norms) / len(norms))
    return [target / n for n in norms]
