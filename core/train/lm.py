"""One training loop for every language model and seq2seq model the studies train.

AdamW (decoupled decay 0.01 on every parameter), a learning-rate schedule with a linear warm-up, gradient clipping,
an evaluation cadence and a stop when an evaluation is not finite. What differs between studies comes in as
functions, not subclasses: `loss_of(step)` draws the step's batch and returns its loss, `after_step` sees every
step's loss (an epoch average, say), `evaluate` runs at the cadence and reports what the study measures.

Serves the causal LMs of attention_scaling (quality and recall) and embedding_dim (head size), fast_mlm's
encoders, question_generation's seq2seq generator and its extractive QA model.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from core.transformer import warmup_cosine

SCHEDULES = ("cosine", "constant", "linear")


@dataclass(frozen=True)
class LoopConfig:
    """How to train. Plain values, so that a study builds one from its config."""

    steps: int
    """Optimiser steps, numbered 1..steps."""
    lr: float
    """Peak learning rate."""
    warmup: int = 0
    """Steps of linear warm-up."""
    schedule: str = "cosine"
    """After the warm-up: `cosine` decays to 0 at `steps`, `constant` stays at `lr`, `linear` decays linearly to 0
    at `steps` (BERT's fine-tuning recipe; it starts decaying from step 0 and the warm-up caps it)."""
    weight_decay: float = 0.01
    """AdamW's decoupled weight decay."""
    clip: float = 1.0
    """Maximum global gradient norm."""
    fused: bool = False
    """torch's fused AdamW kernel (about 10% faster on CPU for these models; different rounding from the default)."""
    eval_every: int = 0
    """Evaluate at every multiple of this step (0: never)."""
    eval_at: tuple[int, ...] = ()
    """And at these steps (e.g. the last one)."""

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; expected one of {SCHEDULES}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")


def lr_factor(cfg: LoopConfig, step: int) -> float:
    """The factor on `cfg.lr` for the optimiser step after `step` earlier ones (torch's LambdaLR counts from 0)."""
    if cfg.schedule == "cosine":
        return warmup_cosine(step, cfg.steps, cfg.warmup)
    if cfg.schedule == "constant":
        return min(1.0, (step + 1) / max(1, cfg.warmup))
    return min((step + 1) / max(1, cfg.warmup), (cfg.steps - step) / cfg.steps)


@dataclass
class Progress:
    """Where a run stands, as `evaluate` sees it."""

    step: int
    loss: torch.Tensor
    """The loss of this step's batch (before the update)."""
    train_s: float
    """Seconds spent in `loss_of`, backward and the update so far, evaluations excluded."""


def fit_lm(
    model: nn.Module,
    loss_of: Callable[[int], torch.Tensor],
    cfg: LoopConfig,
    evaluate: Callable[[Progress], float | None] | None = None,
    after_step: Callable[[int, torch.Tensor], None] | None = None,
) -> bool:
    """Train `model` in place for `cfg.steps` steps.

    Args:
        model (nn.Module):
            The model, on its device, in training mode.
        loss_of (Callable[[int], Tensor]):
            `loss_of(step)`: the scalar loss of step `step` (1-based), its batch drawn inside.
        cfg (LoopConfig):
            Optimiser, schedule, clipping and evaluation cadence.
        evaluate (Callable[[Progress], float | None] | None):
            Called after the update at every evaluation step; a non-finite return value stops the run (`None`: no
            check).
        after_step (Callable[[int, Tensor], None] | None):
            Called after every update with the step and its loss, before any evaluation of that step.

    Returns:
        bool: True when every step ran, False when an evaluation was not finite and the run stopped there.
    """
    fused = {"fused": True} if cfg.fused else {}  # else torch's default implementation, as the studies had
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s))
    train_s = 0.0
    for step in range(1, cfg.steps + 1):
        t0 = time.perf_counter()
        loss = loss_of(step)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        sched.step()
        train_s += time.perf_counter() - t0
        if after_step is not None:
            after_step(step, loss)
        if evaluate is not None and ((cfg.eval_every and step % cfg.eval_every == 0) or step in cfg.eval_at):
            value = evaluate(Progress(step, loss, train_s))
            if value is not None and not math.isfinite(value):
                return False
    return True
