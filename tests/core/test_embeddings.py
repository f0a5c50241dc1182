"""Skip-gram losses vs per-pair loops, Su's h_n vs the article's table, the planted tree, corpus helpers, knees."""

import math
from collections import Counter

import numpy as np
import pytest
import torch
from scipy import stats

from core.embeddings import corpus as C
from core.embeddings.entropy import H_SLOPE, PHI, exact_entropy, self_probability, sphere, su_entropy_h
from core.embeddings.evaluate import analogy, similarity
from core.embeddings.knee import fit_models, knee, knee_of_curve, kneedle, non_monotone, origin_slope
from core.embeddings.skipgram import (
    fit_fullsoftmax,
    fullsoftmax_grad,
    fullsoftmax_loss,
    naive_fullsoftmax_loss,
    naive_sgns_loss,
    sgns_loss,
)
from core.embeddings.tree import entropy, naive_tree_joint, tree_joint

SU_TABLE = {32: -7.77471, 64: -15.4734, 96: -23.1726, 128: -30.8718, 256: -61.6692, 512: -123.264}


@pytest.mark.parametrize("n", sorted(SU_TABLE))
def test_h_n_reproduces_the_article_table(n):
    assert su_entropy_h(n) == pytest.approx(SU_TABLE[n], abs=1e-3)


def test_h_n_over_n_tends_to_minus_half_ln_phi():
    gaps = [abs(su_entropy_h(n) / n - H_SLOPE) for n in (32, 512, 8192)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 2e-5
    assert pytest.approx(-0.240606, abs=1e-6) == H_SLOPE and pytest.approx(8.31, abs=0.01) == 2 / -H_SLOPE
    # The Laplace point: the maximiser of log sin t + cos t is arctan sqrt(phi), where cos t = 1 / phi.
    t = np.linspace(0.5, 1.3, 800_001)
    best = t[np.argmax(np.log(np.sin(t)) + np.cos(t))]
    assert best == pytest.approx(math.atan(math.sqrt(PHI)), abs=1e-5) and math.cos(best) == pytest.approx(1 / PHI, abs=1e-5)
    with pytest.raises(ValueError, match="n >= 2"):
        su_entropy_h(1)


def test_exact_entropy_and_self_probability_match_loops():
    gen = torch.Generator().manual_seed(0)
    u, v = sphere(6, 3, gen), sphere(6, 3, gen)
    assert torch.allclose(u.norm(dim=1), torch.full((6,), math.sqrt(3), dtype=torch.float64))
    w = [[math.exp(float(u[i] @ v[j])) for j in range(6)] for i in range(6)]
    z = sum(map(sum, w))
    h = -sum(w[i][j] / z * math.log(w[i][j] / z) for i in range(6) for j in range(6))
    assert exact_entropy(u, v) == pytest.approx(h, rel=1e-12)
    self_p = [math.exp(float(u[i] @ u[i])) / sum(math.exp(float(u[i] @ u[j])) for j in range(6)) for i in range(6)]
    assert self_probability(u).tolist() == pytest.approx(self_p, rel=1e-12)


def _tables(N=10, n=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(N, n, generator=gen, dtype=torch.float64, requires_grad=True)
    v = torch.randn(N, n, generator=gen, dtype=torch.float64, requires_grad=True)
    counts = torch.randint(0, 4, (N, N), generator=gen).double()
    counts[3] = 0  # a word never seen as a centre
    return u, v, counts


@pytest.mark.parametrize("joint", [False, True], ids=["conditional", "joint"])
def test_fullsoftmax_loss_and_gradients_match_the_pair_loop(joint):
    u, v, counts = _tables()
    want, got = naive_fullsoftmax_loss(u, v, counts, joint), fullsoftmax_loss(u, v, counts, joint)
    torch.testing.assert_close(got, want)
    want_grads = torch.autograd.grad(want, (u, v))
    torch.testing.assert_close(torch.autograd.grad(got, (u, v)), want_grads)
    loss, gu, gv = fullsoftmax_grad(u.detach(), v.detach(), counts, joint)
    torch.testing.assert_close(loss, want.detach())
    torch.testing.assert_close((gu, gv), want_grads)


def test_sgns_loss_and_gradients_match_the_pair_loop():
    u, v, _ = _tables()
    gen = torch.Generator().manual_seed(1)
    centers, contexts = torch.randint(0, 10, (25,), generator=gen), torch.randint(0, 10, (25,), generator=gen)
    negatives = torch.randint(0, 10, (25, 5), generator=gen)
    want, got = naive_sgns_loss(u, v, centers, contexts, negatives), sgns_loss(u, v, centers, contexts, negatives)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, (u, v)), torch.autograd.grad(want, (u, v)))


def test_full_batch_fit_lowers_the_loss_towards_the_entropy():
    p = tree_joint(2, 4)
    _, _, losses = fit_fullsoftmax(p, 8, 200, 0.1, seed=0, joint=True)
    h = entropy(p)  # the cross-entropy's floor: the KL closes to under 1% of its start
    assert 0 <= losses[-1] - h < 0.01 * (losses[0] - h)


def test_tree_joint_matches_enumeration():
    for b, d in [(2, 3), (3, 2), (4, 2)]:
        p = tree_joint(b, d)
        torch.testing.assert_close(p, naive_tree_joint(b, d))
        assert float(p.sum()) == pytest.approx(1.0) and torch.allclose(p.sum(1), torch.full((b**d,), 1 / b**d, dtype=p.dtype))
    with pytest.raises(ValueError, match="b >= 2"):
        tree_joint(1, 3)


def test_window_pairs_match_the_position_loop_and_counts():
    enc = [np.array([0, 1, 2, 1, 3]), np.array([2]), np.array([3, 0])]
    c, o = C.window_pairs(enc, 2)
    assert Counter(zip(c.tolist(), o.tolist(), strict=True)) == Counter(C.naive_window_pairs(enc, 2))
    table = C.cooccurrence(enc, 4, 2)
    assert float(table.sum()) == len(c) and torch.equal(table, table.T)  # symmetric window


def test_vocab_encode_split_and_prefix():
    paras = [["b", "a", "c"], ["a", "b", "a"], ["d", "c"], ["a"]]
    assert C.top_vocab(paras, 3) == ["a", "b", "c"]  # b and c tie on 2: alphabetical
    assert [a.tolist() for a in C.encode(paras, ["a", "b"])] == [[1, 0], [0, 1, 0], [0]]  # OOV dropped, empty dropped
    train, held = C.split_paragraphs(paras * 5, heldout=0.2)
    assert len(held) == 4 and len(train) == 16 and C.split_paragraphs(paras * 5, heldout=0.2) == (train, held)
    assert C.take_tokens(paras, 4) == paras[:2] and C.take_tokens(paras, 100) == paras


def test_heldout_sample_is_fixed_and_follows_the_unigram_power():
    enc = [np.arange(5), np.arange(5)[::-1]]
    counts = np.array([100, 1, 1, 1, 1])
    a = C.heldout_sample(enc, counts, 1, 6, 2000, seed=3)
    b = C.heldout_sample(enc, counts, 1, 6, 2000, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True)) and a[2].shape == (6, 2000)
    share = float((a[2] == 0).double().mean())
    assert share == pytest.approx(100**0.75 / (100**0.75 + 4), abs=0.01)


def test_knee_of_a_planted_curve():
    n = np.array([8, 16, 24, 32, 48, 64, 96, 128])
    q = np.array([0.0, 0.5, 0.8, 0.93, 0.97, 0.99, 1.0, 1.0])
    # plateau 1.0, range 1.0: eps 0.05 needs q >= 0.95 -> 48; eps 0.10 -> 32; eps 0.02 -> 64.
    assert knee_of_curve(n, q, 0.05) == 48 and knee_of_curve(n, q, 0.10) == 32 and knee_of_curve(n, q, 0.02) == 64
    rng = np.random.default_rng(0)
    k = knee(n, q + 0.001 * rng.standard_normal((3, len(n))), 0.05)
    assert k.knee == 48 and not k.non_monotone and k.ci_low <= 48 <= k.ci_high
    falling = np.array([0.0, 0.6, 1.0, 0.8, 0.7, 0.7, 0.7, 0.7])  # peaks at 24, then loses 30% of the range
    assert non_monotone(n, falling, 0.05)
    kf = knee(n, np.stack([falling, falling]), 0.05, resamples=10)
    assert kf.non_monotone and kf.knee == kf.knee_raw == 24
    assert kneedle(n, q) in (24, 32)
    early = -np.array([2.97, 3.00, 2.99, 3.01, 3.01, 3.01, 3.01, 3.01])  # best at n_min, as M1 on GCIDE
    ke = knee(n, np.stack([early, early + 0.001]), 0.05, resamples=10)
    assert non_monotone(n, early, 0.05) and ke.non_monotone and ke.knee == 8


def test_model_comparison_prefers_the_true_law():
    N = np.array([1e3, 4e3, 16e3, 64e3])
    log_knees = 6.0 * np.log(N) + 2.0
    fits = fit_models(N, log_knees)
    assert fits["log"]["a"] == pytest.approx(6.0) and fits["log"]["aic"] < min(fits["power"]["aic"], fits["constant"]["aic"])
    power_knees = 3.0 * N**0.3
    fits = fit_models(N, power_knees)
    assert fits["power"]["alpha"] == pytest.approx(0.3, rel=1e-3) and fits["power"]["aic"] < fits["log"]["aic"]
    assert origin_slope(N, 8.33 * np.log(N)) == pytest.approx(8.33)


def test_similarity_and_analogy_match_loops():
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((6, 4))
    index = {w: i for i, w in enumerate("abcdef")}
    pairs = [("a", "b", 1.0), ("c", "d", 3.0), ("a", "e", 2.0), ("b", "f", 0.5), ("a", "zz", 9.0)]
    rho, cov, k = similarity(vecs, index, pairs)
    cos = [
        vecs[index[x]] @ vecs[index[y]] / np.linalg.norm(vecs[index[x]]) / np.linalg.norm(vecs[index[y]])
        for x, y, _ in pairs[:4]
    ]
    assert rho == pytest.approx(stats.spearmanr(cos, [1.0, 3.0, 2.0, 0.5]).statistic) and cov == 0.8 and k == 4
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    questions = [("a", "b", "c", "d"), ("b", "c", "d", "e"), ("a", "c", "e", "f"), ("a", "b", "c", "zz")]
    hits = 0
    for a, b, c, d in questions[:3]:
        t = unit[index[b]] - unit[index[a]] + unit[index[c]]
        best = max((w for w in index if w not in (a, b, c)), key=lambda w: t @ unit[index[w]])
        hits += best == d
    acc, cov, k = analogy(vecs, index, questions, chunk=2)
    assert acc == pytest.approx(hits / 3) and cov == 0.75 and k == 3


def test_score_is_independent_of_the_chunk_size_and_matches_the_loss():
    from core.embeddings.word2vec import prepare, score

    rng = np.random.default_rng(0)
    paras = [[f"w{i}" for i in rng.integers(0, 12, 8)] for _ in range(60)]
    prep = prepare(paras[:50], paras[50:], size=10, tokens=10_000, pairs=500, negatives=3)
    u, v = rng.standard_normal((10, 4)).astype(np.float32), rng.standard_normal((10, 4)).astype(np.float32)
    a, b = score(prep, u, v, {}, chunk=7), score(prep, u, v, {}, chunk=10**6)
    c, o, neg = prep.pairs
    want = float(naive_sgns_loss(torch.from_numpy(u).double(), torch.from_numpy(v).double(), c, o, neg))
    assert a["heldout/sgns_loss"] == pytest.approx(b["heldout/sgns_loss"], rel=1e-12) == pytest.approx(want, rel=1e-12)
    assert len(prep.vocab) == 10 and a["vocab/size"] == 10 and len(c) <= 500


def test_split_half_metrics_match_their_references():
    from core.embeddings.evaluate import naive_pmi_correlation, naive_retrieval_mrr, pmi_correlation, retrieval_mrr

    rng = np.random.default_rng(0)
    u, v = rng.standard_normal((13, 3)).astype(np.float32), rng.standard_normal((13, 3)).astype(np.float32)
    enc = [rng.integers(0, 13, int(rng.integers(1, 40))) for _ in range(60)]
    c, o = C.window_pairs(enc, 2)
    for top, min_count in ((13, 2), (7, 3), (5, 1), (2, 50)):
        got = pmi_correlation(u, v, c, o, 13, top, min_count)
        ref = naive_pmi_correlation(u, v, c, o, 13, top, min_count)
        assert got[1] == ref[1] and (got[0] == pytest.approx(ref[0]) or math.isnan(got[0]) and math.isnan(ref[0]))
    v[3] = v[4]  # a tie
    for chunk in (1, 7, 1000):
        assert retrieval_mrr(u, v, c[:50], o[:50], chunk) == pytest.approx(naive_retrieval_mrr(u, v, c[:50], o[:50]))
    same = np.ones((13, 3), np.float32)
    assert retrieval_mrr(same, same, c[:20], o[:20]) == pytest.approx(1 / 7)  # all tied: the mid-rank (13 + 1) / 2


def test_pmi_correlation_is_one_for_vectors_that_factorise_the_heldout_pmi():
    from core.embeddings.evaluate import pmi_correlation

    rng = np.random.default_rng(1)
    enc = [rng.integers(0, 6, 400) for _ in range(20)]
    c, o = C.window_pairs(enc, 2)
    table = np.bincount(c * 6 + o, minlength=36).reshape(6, 6).astype(np.float64)
    pmi = np.log(table * len(c) / np.outer(table.sum(1), table.sum(0)))
    u, v = np.eye(6), pmi.T.copy()  # u_i . v_j = pmi[i, j] exactly
    rho, pairs = pmi_correlation(u, v, c, o, 6, 6, 1)
    assert pairs == 36 and rho == pytest.approx(1.0)
    assert pmi_correlation(u, -v, c, o, 6, 6, 1)[0] == pytest.approx(-1.0)
