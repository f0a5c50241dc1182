"""T-TA and its baselines (`core.tta`) against references: leak tests by autograd, PLL by a loop, the HMM oracle."""

import numpy as np
import pytest
import torch

from core.attention import sdpa, softmax, softmax_additive
from core.data.sequences import hmm_pseudo_nll, hmm_pseudo_nll_brute, random_hmm, sample_hmm
from core.tta import (
    Encoder,
    corrupt,
    leak_gradient,
    next_token_nll,
    pll_masked,
    pll_masked_naive,
    pll_single,
    train_loss,
)

VOCAB, MASK = 13, 11  # words 0..10, [MASK] 11, [PAD] 12


def _model(objective, layers=2, attention="sdpa", seed=0, d=8, heads=2):
    torch.manual_seed(seed)
    return Encoder(VOCAB, 9, d, heads, layers, 2 * d, objective, MASK, attention=attention).double().eval()


def _batch(b=3, t=7, seed=0, pad=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, MASK, (b, t), generator=g)
    keep = torch.ones(b, t, dtype=torch.bool)
    if pad and b > 1:
        keep[1, -3:] = False  # padding at the end of row 1
        x[1, -3:] = 12
    scorable = keep.clone()
    scorable[0, min(2, t - 1)] = False  # a non-word (e.g. [UNK]) kept as context but not scored
    return x, keep, scorable


@pytest.mark.parametrize("layers", [1, 2, 3, 4])
def test_tta_output_i_never_depends_on_x_i_at_any_depth(layers):
    x, keep, _ = _batch()
    assert leak_gradient(_model("tta", layers), x, keep) <= 1e-12


@pytest.mark.parametrize("layers", [2, 3, 4])
def test_leaky_stacking_leaks_from_two_layers_on(layers):  # T-C1
    x, keep, _ = _batch()
    assert leak_gradient(_model("leaky", layers), x, keep) > 1e-6


def test_leaky_stacking_with_one_layer_is_still_leak_free():  # Su's "one layer only"
    x, keep, _ = _batch()
    assert leak_gradient(_model("leaky", 1), x, keep) <= 1e-12


def test_the_leak_test_sees_an_mlm_encoder_leak():  # the test is not blind: an unmasked encoder leaks
    x, keep, _ = _batch()
    assert leak_gradient(_model("mlm"), x, keep) > 1e-6


def test_a_single_real_token_gives_a_zero_row_with_minus_inf_and_leaks_with_additive_minus_10000():  # T-C2
    x = torch.tensor([[3, 12, 12, 12], [4, 5, 12, 12]])
    keep = x != 12
    assert leak_gradient(_model("tta", 2, attention="softmax"), x, keep) <= 1e-12
    assert leak_gradient(_model("tta", 2, attention="sdpa"), x, keep) <= 1e-12
    assert leak_gradient(_model("tta", 2, attention="softmax_additive"), x, keep) > 1e-6
    q, k, v = (torch.randn(1, 1, 1, 4, dtype=torch.float64) for _ in range(3))  # a length-1 sequence
    assert float(softmax(q, k, v, blind=True).abs().max()) == 0.0
    torch.testing.assert_close(softmax_additive(q, k, v, blind=True), v)  # uniform over {self}: the leak


def test_blind_sdpa_equals_the_materialised_softmax_in_outputs_and_gradients():
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 3, 6, 5, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    keep = torch.ones(2, 6, dtype=torch.bool)
    keep[1, 1:] = False  # row 1: one real key, so every query but 0 sees only key 0, and query 0 sees nothing
    outs, grads = [], []
    for fn in (softmax, sdpa):
        out = fn(q, k, v, key_padding_mask=keep, blind=True)
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), (q, k, v)))
    torch.testing.assert_close(outs[0], outs[1], atol=1e-12, rtol=0)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    assert float(outs[0][1, :, 0].detach().abs().max()) == 0.0


@pytest.mark.parametrize("t", [1, 2, 7])
def test_batched_masked_pll_equals_the_loop_over_positions(t):
    x, keep, scorable = _batch(t=t, pad=t > 3)
    model = _model("mlm")
    got, hit = pll_masked(model, x, keep, scorable, copies=5)  # copies that split rows mid-way
    ref = pll_masked_naive(model, x, keep, scorable)
    torch.testing.assert_close(got, ref, atol=1e-12, rtol=0, equal_nan=True)
    assert torch.isnan(got[~scorable]).all() and torch.isfinite(got[scorable]).all()
    assert set(hit[scorable].tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("layers", [1, 3])
def test_tta_single_pass_equals_its_pll_over_t_masked_copies(layers):
    """Output i of T-TA ignores x_i, so masking x_i first (the MLM procedure, T passes) changes nothing."""
    x, keep, scorable = _batch()
    model = _model("tta", layers)
    for a, b in zip(pll_single(model, x, keep, scorable), pll_masked(model, x, keep, scorable), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0, equal_nan=True)


def test_leaky_single_pass_and_its_masked_pll_differ():  # the identity above is not automatic
    x, keep, scorable = _batch()
    model = _model("leaky", 2)
    diff = (pll_single(model, x, keep, scorable)[0] - pll_masked(model, x, keep, scorable)[0])[scorable]
    assert float(diff.abs().max()) > 1e-6


def test_l2r_scores_depend_only_on_the_past():
    x, keep, scorable = _batch(pad=False)
    model = _model("l2r")
    base, _ = next_token_nll(model, x, keep, scorable)
    assert torch.isnan(base[:, 0]).all() and torch.isfinite(base[:, 1:][scorable[:, 1:]]).all()
    x2 = x.clone()
    x2[:, 4:] = (x2[:, 4:] + 1) % MASK  # change the future of position 3
    torch.testing.assert_close(next_token_nll(model, x2, keep, scorable)[0][:, :4], base[:, :4], equal_nan=True)


def test_corruption_is_80_10_10_on_scorable_positions_only_and_seeded():
    x = torch.randint(0, 100, (400, 50), generator=torch.Generator().manual_seed(0))
    scorable = torch.rand(400, 50, generator=torch.Generator().manual_seed(1)) < 0.9
    inp, tgt = corrupt(x, scorable, 0.4, torch.Generator().manual_seed(2), mask_id=100, n_words=100)
    chosen = tgt != -100
    assert not chosen[~scorable].any()
    assert abs(float(chosen[scorable].float().mean()) - 0.4) < 0.01
    assert torch.equal(tgt[chosen], x[chosen]) and torch.equal(inp[~chosen], x[~chosen])
    masked = float((inp[chosen] == 100).float().mean())
    kept = float((inp[chosen] == x[chosen]).float().mean())
    assert abs(masked - 0.8) < 0.01
    assert abs(kept - (0.1 + 0.1 / 100)) < 0.01  # kept, or replaced by the same word by chance
    again = corrupt(x, scorable, 0.4, torch.Generator().manual_seed(2), mask_id=100, n_words=100)
    assert torch.equal(again[0], inp) and torch.equal(again[1], tgt)


@pytest.mark.parametrize("objective", ["mlm", "tta", "leaky", "l2r"])
def test_train_loss_counts_the_objectives_targets_and_trains(objective):
    x, keep, scorable = _batch(b=8, t=8, pad=True)
    torch.manual_seed(0)
    model = Encoder(VOCAB, 9, 16, 2, 2, 32, objective, MASK)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    first, n = train_loss(model, x, keep, scorable, gen, rate=0.4, n_words=MASK)
    expected = {"tta": int(scorable.sum()), "leaky": int(scorable.sum()), "l2r": int(scorable[:, 1:].sum())}
    if objective in expected:
        assert n == expected[objective]
    else:
        assert 0 < n < int(scorable.sum())
    for _ in range(30):
        loss, _ = train_loss(model, x, keep, scorable, gen, rate=0.4, n_words=MASK)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < float(first.detach())


def test_forward_backward_oracle_equals_brute_force_enumeration():  # T-P1
    for seed in range(3):
        hmm = random_hmm(2, 3, seed=seed, concentration=0.5)
        x = sample_hmm(hmm, 6, 5, seed=seed + 10)
        np.testing.assert_allclose(hmm_pseudo_nll(hmm, x), hmm_pseudo_nll_brute(hmm, x), atol=1e-12, rtol=0)


def test_oracle_pseudo_likelihoods_sum_to_one_over_the_symbol():
    hmm = random_hmm(4, 6, seed=0, concentration=0.3)
    x = sample_hmm(hmm, 1, 4, seed=1)
    total = 0.0
    for w in range(6):  # p(x_2 = w | rest) summed over w is 1
        y = x.copy()
        y[0, 2] = w
        total += float(np.exp(-hmm_pseudo_nll(hmm, y)[0, 2]))
    assert abs(total - 1) < 1e-12


@pytest.mark.gpu
def test_cuda_scoring_and_leak_test_match_the_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x, keep, scorable = _batch()
    for objective in ("mlm", "tta"):
        cpu = _model(objective)
        gpu = _model(objective).cuda()
        fn = pll_masked if objective == "mlm" else pll_single
        want, got = fn(cpu, x, keep, scorable)[0], fn(gpu, x.cuda(), keep.cuda(), scorable.cuda())[0].cpu()
        torch.testing.assert_close(got, want, atol=1e-10, rtol=0, equal_nan=True)
    assert leak_gradient(_model("tta", 3).cuda(), x.cuda(), keep.cuda()) <= 1e-12
    inp, tgt = corrupt(x.cuda(), scorable.cuda(), 0.4, torch.Generator().manual_seed(0), MASK, MASK)
    assert inp.is_cuda and tgt.is_cuda
