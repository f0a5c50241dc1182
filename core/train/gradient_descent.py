"""Plain gradient descent (full batch or SGD, no momentum) to a matched training loss, with optional EGR.

The learning-rate study compares step sizes h at equal training loss: a run stops when the full training loss
first reaches `target_loss` (or after `max_steps`). Along the way it records, at each level of
`loss_levels` the first time the training loss crosses it, R_IG = ||grad L_train||^2 of the full training
set, so step sizes are compared at matched loss, not at matched step count (that would favour large h).

Full batch (`batch_size = 0`): every step's gradient is the full training gradient, so the loss and R_IG are
exact at every step (a batch-norm model then normalises each chunk of `chunk` examples by its own statistics).
SGD (`batch_size > 0`): steps use seeded per-epoch shuffles; the full training loss and R_IG are evaluated every
`eval_every` steps in eval mode, and crossings are detected there. lambda_max is always measured in eval mode.

Stability (the spec's stable range: runs that reach the target without a spike above 2x the running
minimum): a spike is recorded (`train/spiked = 1`) and training goes on, since a transient spike (a catapult)
may recover. A run stops as diverged when its loss becomes NaN/inf (`train/loss = nan`) or when, after a
spike, its running minimum has not improved for `patience` steps (`train/diverged = 1`; e.g. a ReLU net
killed by a too-large step, stuck near ln K).

Reports: every `eval_every` steps `train/loss`, `train/rig`, `train/lambda_max` (warm-started power
iteration, `power_iters` steps) and `train/h_lambda_max`; at the end also `val/*`, `test/acc`, `test/loss`
(NLL), `noise/acc_drop` (test-accuracy drop under Gaussian parameter noise of standard deviation
`noise_scale * ||theta|| / sqrt(m)`, mean of `noise_draws` draws), `rig_at/<level>`, `steps_at/<level>`,
`train/reached`, `train/spiked`, `train/diverged`, `train/steps` and `model/params`.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.curvature import top_hessian_eigenpair
from core.data.classification import Splits
from core.regularizers import egr_grads, full_batch_grad, penalty_grad_fd
from core.train.classifier import evaluate

Report = Callable[[dict], None]
EGR_IMPLS = ("double_backprop", "fgr")


@dataclass(frozen=True)
class GDConfig:
    """How to run gradient descent. Every field is a plain value so it can come from a Ray Tune config."""

    lr: float
    """Step size h."""
    max_steps: int
    """Cap on the number of steps (the equal-steps protocol uses `target_loss = 0`)."""
    egr_mu: float = 0.0
    """Explicit gradient-penalty strength mu on ||grad L||^2 (sum over parameters); 0 is plain GD."""
    egr_impl: str = "double_backprop"
    """`"double_backprop"` (exact) or `"fgr"` (forward finite difference of gradients, no double backprop)."""
    fgr_radius: float = 1e-2
    """Length of the parameter perturbation along g for `"fgr"`."""
    batch_size: int = 0
    """0 for full-batch GD, else the SGD mini-batch size (the penalty is then per mini-batch)."""
    target_loss: float = 0.05
    """Stop when the full training loss is at most this (matched loss); 0 runs `max_steps` steps (equal steps), and
    a run that completes them counts as having reached its endpoint (`train/reached = 1`)."""
    loss_levels: tuple[float, ...] = (0.5, 0.2, 0.1, 0.05)
    """Training-loss levels at which R_IG is recorded on the first crossing."""
    eval_every: int = 100
    """Steps between curve reports (and, for SGD, full-training-set evaluations)."""
    power_iters: int = 20
    """Power iterations per lambda_max estimate along the run (warm-started from the previous eigenvector)."""
    final_power_iters: int = 20
    """Power iterations for the final lambda_max (warm-started)."""
    curvature_examples: int = 0
    """Training examples for lambda_max; 0 uses all of them."""
    spike_factor: float = 2.0
    """A training loss above this multiple of its running minimum is a spike: the run leaves the stable range."""
    patience: int = 1000
    """After a spike, a run whose running minimum does not improve for this many steps stops as diverged."""
    noise_scale: float = 0.01
    """Parameter-noise standard deviation, as a fraction of ||theta|| / sqrt(m)."""
    noise_draws: int = 20
    """Noise draws averaged for `noise/acc_drop`."""
    chunk: int = 4096
    """Examples per forward pass when accumulating full-training-set gradients and in evaluation."""
    seed: int = 0
    """Initialisation is seeded by the caller; this seeds data order, power iteration and parameter noise."""

    def __post_init__(self):
        if self.egr_impl not in EGR_IMPLS:
            raise ValueError(f"unknown egr_impl {self.egr_impl!r}; expected one of {EGR_IMPLS}")
        if self.lr <= 0 or self.egr_mu < 0 or self.max_steps < 1:
            raise ValueError(f"need lr > 0, egr_mu >= 0, max_steps >= 1; got {self.lr}, {self.egr_mu}, {self.max_steps}")


def _sq(grads) -> float:
    return float(sum((g * g).sum() for g in grads))


def _mean_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def full_train_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int) -> tuple[float, list[torch.Tensor]]:
    """Full training loss and its gradient, accumulated over chunks (the R_IG evaluation of gotcha 4).

    Args:
        model (nn.Module):
            The classifier.
        x (torch.Tensor):
            Training inputs.
        y (torch.Tensor):
            Training labels.
        chunk (int):
            Examples per forward pass.

    Returns:
        tuple[float, list[torch.Tensor]]: mean loss and its gradient.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    total = 0.0

    def loss_sum(a: int, b: int) -> torch.Tensor:
        nonlocal total
        out = F.cross_entropy(model(x[a:b]), y[a:b], reduction="sum")
        total += float(out.detach())
        return out

    grads = full_batch_grad(loss_sum, len(y), chunk, params)
    return total / len(y), grads


def noise_drop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, scale: float, draws: int, seed: int, batch: int) -> float:
    """Mean test-accuracy drop when every parameter gets N(0, sigma^2) noise, sigma = scale ||theta|| / sqrt(m).

    Args:
        model (nn.Module):
            The trained classifier (restored afterwards).
        x (torch.Tensor):
            Test inputs.
        y (torch.Tensor):
            Test labels.
        scale (float):
            Noise scale relative to the root-mean-square parameter.
        draws (int):
            Noise draws.
        seed (int):
            Seed of the draws.
        batch (int):
            Evaluation batch size.

    Returns:
        float: clean accuracy minus mean noisy accuracy.
    """
    params = list(model.parameters())
    saved = [p.detach().clone() for p in params]
    m = sum(p.numel() for p in params)
    sigma = scale * math.sqrt(sum(float((p * p).sum()) for p in saved)) / math.sqrt(m)
    gen = torch.Generator().manual_seed(seed)
    clean = evaluate(model, x, y, batch)[1]
    noisy = []
    with torch.no_grad():
        for _ in range(draws):
            for p, s in zip(params, saved, strict=True):
                p.copy_(s + sigma * torch.randn(s.shape, generator=gen, dtype=s.dtype).to(s.device))
            noisy.append(evaluate(model, x, y, batch)[1])
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    return clean - float(np.mean(noisy))


def fit_gd(model: nn.Module, data: Splits, cfg: GDConfig, report: Report, device: str | torch.device = "cpu") -> None:
    """Train `model` by plain GD/SGD (no momentum) with optional EGR until the matched loss, reporting as above.

    Args:
        model (nn.Module):
            Freshly initialised classifier (seed it before building it). Batch norm, if any, stays in train mode.
        data (Splits):
            Clean splits (the whole training split is the training set).
        cfg (GDConfig):
            Settings.
        report (Report):
            Called with a dict of metrics, e.g. `ray.tune.report`.
        device (str | torch.device):
            Where to train.
    """
    t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    x, y = t(data.x_train), t(data.y_train)
    model = model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    n = len(y)
    full = cfg.batch_size == 0 or cfg.batch_size >= n
    gen = torch.Generator().manual_seed(cfg.seed)
    order, cursor = torch.randperm(n, generator=gen), 0
    n_curv = n if cfg.curvature_examples == 0 else min(n, cfg.curvature_examples)
    eig_vec = None
    crossed: dict[float, tuple[int, float]] = {}
    running_min, best_step = math.inf, 0
    reached = diverged = spiked = False

    def lambda_max(iters: int) -> float:
        nonlocal eig_vec
        model.eval()  # a fixed function: batch norm, if any, on running statistics (as in classifier.curvature)
        eig, eig_vec = top_hessian_eigenpair(
            lambda: _mean_loss(model, x[:n_curv], y[:n_curv]), params, iters, seed=cfg.seed, init=eig_vec
        )
        model.train()
        return eig

    def batch_grads(xb: torch.Tensor, yb: torch.Tensor) -> tuple[float, list[torch.Tensor], list[torch.Tensor]]:
        """Loss, plain gradient g and update direction (g plus the penalty gradient) on one batch."""
        if cfg.egr_mu > 0 and cfg.egr_impl == "fgr":
            closure = lambda: _mean_loss(model, xb, yb)  # noqa: E731
            pen, g = penalty_grad_fd(closure, params, cfg.egr_mu, cfg.fgr_radius, central=False)
            loss = float(closure().detach())
            return loss, g, [gi + pi for gi, pi in zip(g, pen, strict=True)]
        loss = _mean_loss(model, xb, yb)
        if cfg.egr_mu > 0:
            total, g = egr_grads(loss, params, cfg.egr_mu)
        else:
            g = [gi.detach() for gi in torch.autograd.grad(loss, params)]
            total = g
        return float(loss.detach()), g, total

    step = 0
    while True:
        # 1. The full training loss and R_IG at the current parameters (exact every step for full batch).
        if full:
            if cfg.egr_mu == 0 and n > cfg.chunk:
                loss, g = full_train_grad(model, x, y, cfg.chunk)
                update = g
            else:
                loss, g, update = batch_grads(x, y)
            rig = _sq(g)
            measured = True
        else:
            measured = step % cfg.eval_every == 0 or step == cfg.max_steps
            if measured:
                model.eval()  # measure a fixed function; batch statistics of the chunks would depend on the chunk size
                loss, g_full = full_train_grad(model, x, y, cfg.chunk)
                model.train()
                rig = _sq(g_full)
        if measured:
            if not math.isfinite(loss) or not math.isfinite(rig):
                report({"step": step, "train/loss": float("nan"), "train/steps": step})
                return
            spiked = spiked or loss > cfg.spike_factor * running_min
            if loss < running_min:
                running_min, best_step = loss, step
            if spiked and step - best_step >= cfg.patience:
                diverged = True
                break
            for level in cfg.loss_levels:
                if level not in crossed and loss <= level:
                    crossed[level] = (step, rig)
            if cfg.target_loss > 0 and loss <= cfg.target_loss:
                reached = True
                break
        if step % cfg.eval_every == 0:
            lam = lambda_max(cfg.power_iters)
            report(
                {
                    "step": step,
                    "train/loss": loss,
                    "train/rig": rig,
                    "train/lambda_max": lam,
                    "train/h_lambda_max": cfg.lr * lam,
                }
            )
        if step == cfg.max_steps:
            reached = cfg.target_loss == 0  # the equal-steps protocol's endpoint is its last step
            break
        # 2. One step.
        if not full:
            if cursor + cfg.batch_size > n:
                order, cursor = torch.randperm(n, generator=gen), 0
            idx = order[cursor : cursor + cfg.batch_size].to(device)
            cursor += cfg.batch_size
            _, _, update = batch_grads(x[idx], y[idx])
        with torch.no_grad():
            for p, u in zip(params, update, strict=True):
                p -= cfg.lr * u
        step += 1

    final = {"step": step, "train/loss": loss, "train/rig": rig, "train/steps": step, "model/params": n_params}
    final["train/reached"] = float(reached)
    final["train/diverged"] = float(diverged)
    final["train/spiked"] = float(spiked)
    if not diverged:
        lam = lambda_max(cfg.final_power_iters)
        final |= {"train/lambda_max": lam, "train/h_lambda_max": cfg.lr * lam}
        for split in ("val", "test"):
            xs, ys = t(getattr(data, f"x_{split}")), t(getattr(data, f"y_{split}"))
            final[f"{split}/loss"], final[f"{split}/acc"] = evaluate(model, xs, ys, cfg.chunk)
        xt, yt = t(data.x_test), t(data.y_test)
        final["noise/acc_drop"] = noise_drop(model, xt, yt, cfg.noise_scale, cfg.noise_draws, cfg.seed, cfg.chunk)
    for level in cfg.loss_levels:
        s, r = crossed.get(level, (math.nan, math.nan))
        final[f"rig_at/{level:g}"], final[f"steps_at/{level:g}"] = r, s
    report(final)
