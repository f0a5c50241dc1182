"""core.train.lm: the one loop against a loop written out by hand (as the studies had it), the schedules against
their closed forms, and the cadence, stop and hook order."""

import math

import pytest
import torch
from torch import nn

from core.train.lm import LoopConfig, Progress, fit_lm, lr_factor
from core.transformer import warmup_cosine


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    return torch.randn(11, 5, generator=g), torch.randint(0, 3, (11,), generator=g)


def _loss(model: nn.Module, step: int) -> torch.Tensor:
    x, y = _batch(step)
    return nn.functional.cross_entropy(model(x), y) * 50  # large gradients: clipping is active


def _by_hand(model: nn.Module, steps: int, lr: float, factor, fused: bool) -> list[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, **({"fused": True} if fused else {}))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    losses = []
    for step in range(1, steps + 1):
        loss = _loss(model, step)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize(
    ("schedule", "warmup", "factor"),
    [
        ("cosine", 3, lambda s: warmup_cosine(s, 17, 3)),
        ("cosine", 0, lambda s: warmup_cosine(s, 17, 0)),
        ("constant", 4, lambda s: min(1.0, (s + 1) / 4)),
        ("linear", 1, lambda s: min((s + 1) / 1, (17 - s) / 17)),
    ],
)
@pytest.mark.parametrize("fused", [False, True])
def test_the_loop_is_the_hand_written_loop_bit_for_bit(schedule, warmup, factor, fused):
    mine, theirs = _model(), _model()
    losses = []
    fit_lm(mine, lambda step: _loss(mine, step), LoopConfig(17, 3e-2, warmup, schedule, fused=fused),
           after_step=lambda step, loss: losses.append(float(loss.detach())))  # fmt: skip
    assert losses == _by_hand(theirs, 17, 3e-2, factor, fused)
    for a, b in zip(mine.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)


def test_schedules_closed_forms():
    cos = LoopConfig(100, 1.0, warmup=10)
    assert [lr_factor(cos, s) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]  # linear warm-up
    assert lr_factor(cos, 10) == 1.0 and lr_factor(cos, 55) == pytest.approx(0.5) and lr_factor(cos, 100) == 0.0
    const = LoopConfig(100, 1.0, warmup=4, schedule="constant")
    assert [lr_factor(const, s) for s in (0, 3, 50, 99)] == [0.25, 1.0, 1.0, 1.0]
    lin = LoopConfig(100, 1.0, warmup=10, schedule="linear")
    assert [lr_factor(lin, s) for s in (0, 9, 50, 99)] == [0.1, 0.91, 0.5, 0.01]


def test_cadence_hooks_and_stop():
    model = _model()
    seen = []

    def evaluate(at: Progress) -> float:
        seen.append(("eval", at.step, float(at.loss.detach())))
        assert at.train_s > 0
        return math.nan if at.step == 8 else 1.0

    done = fit_lm(model, lambda step: _loss(model, step), LoopConfig(12, 1e-3, eval_every=4, eval_at=(3, 12)), evaluate,
                  after_step=lambda step, loss: seen.append(("step", step, float(loss.detach()))))  # fmt: skip
    assert not done  # evaluated at 3 (eval_at), 4 and 8 (every 4); not finite at 8, so 12 never came
    order = [(kind, step) for kind, step, _ in seen]
    steps = [("step", s) for s in range(1, 9)]
    assert order == [*steps[:3], ("eval", 3), steps[3], ("eval", 4), *steps[4:], ("eval", 8)]  # each after its step
    assert all(seen[i][2] == seen[i - 1][2] for i, (kind, _) in enumerate(order) if kind == "eval")  # the step's own loss
    model = _model()
    assert fit_lm(model, lambda step: _loss(model, step), LoopConfig(5, 1e-3, eval_every=2), lambda at: None)


def test_a_stop_needs_a_finite_check_only_when_evaluate_returns_a_value():
    model = _model()
    calls = []
    assert fit_lm(model, lambda step: _loss(model, step), LoopConfig(4, 1e-3, eval_every=1), calls.append)
    assert [at.step for at in calls] == [1, 2, 3, 4]


@pytest.mark.parametrize(("kw", "match"), [({"schedule": "step"}, "unknown schedule 'step'"), ({"steps": 0}, "at least 1")])
def test_bad_settings_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        LoopConfig(**({"steps": 5, "lr": 1e-3} | kw))
