"""Attacks and calibration against per-example loops and closed forms on a linear model."""

import torch
from torch import nn

from core.robustness import expected_calibration_error, fgsm, input_grad_norm, pgd


def _linear(seed=0):
    torch.manual_seed(seed)
    return nn.Linear(5, 3).double()


def _batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(17, 5, generator=gen, dtype=torch.float64), torch.randint(0, 3, (17,), generator=gen)


def test_fgsm_and_input_gradients_match_per_example_autograd():
    model, (x, y) = _linear(), _batch()
    want_adv, norms = [], []
    for i in range(len(y)):
        xi = x[i : i + 1].clone().requires_grad_(True)
        g = torch.autograd.grad(nn.functional.cross_entropy(model(xi), y[i : i + 1]), xi)[0]
        want_adv.append((x[i : i + 1] + 0.1 * g.sign()).clamp(0, 1))
        norms.append(g.norm())
    torch.testing.assert_close(fgsm(model, x, y, 0.1, 0.0, 1.0), torch.cat(want_adv))
    assert abs(input_grad_norm(model, x, y) - float(torch.stack(norms).mean())) < 1e-12


def test_one_step_pgd_without_random_start_is_fgsm_and_pgd_stays_in_the_ball():
    model, (x, y) = _linear(1), _batch(1)
    torch.testing.assert_close(pgd(model, x, y, 0.2, 1, 0.2, 0.0, 1.0), fgsm(model, x, y, 0.2, 0.0, 1.0))
    adv = pgd(model, x, y, 0.05, 10, 0.0125, 0.0, 1.0, gen=torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= 0.05 + 1e-12 and adv.min() >= 0 and adv.max() <= 1
    ce = lambda z: nn.functional.cross_entropy(model(z), y)  # noqa: E731
    assert ce(adv) >= ce(x)  # ascent


def test_ece_matches_a_loop_over_examples():
    gen = torch.Generator().manual_seed(2)
    probs = torch.softmax(3 * torch.randn(200, 4, generator=gen, dtype=torch.float64), 1)
    y = torch.randint(0, 4, (200,), generator=gen)
    conf, pred = probs.max(1)
    bins = [[] for _ in range(15)]
    for c, p, t in zip(conf.tolist(), pred.tolist(), y.tolist(), strict=True):
        b = next(i for i in range(15) if c <= (i + 1) / 15)
        bins[b].append((c, p == t))
    want = sum(len(b) / 200 * abs(sum(h for _, h in b) / len(b) - sum(c for c, _ in b) / len(b)) for b in bins if b)
    assert abs(expected_calibration_error(probs, y) - want) < 1e-12
    confident = torch.eye(4, dtype=torch.float64)[y]  # always right with confidence 1
    assert expected_calibration_error(confident, y) == 0.0
