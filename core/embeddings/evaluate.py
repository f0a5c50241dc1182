"""Intrinsic evaluation of word vectors: similarity Spearman and 3CosAdd analogies on the covered items (M4), and
the split-half metrics (M3): held-out PMI correlation and co-occurrence retrieval MRR."""

import numpy as np
from scipy import stats


def similarity(vectors: np.ndarray, index: dict[str, int], pairs: list[tuple[str, str, float]]) -> tuple[float, float, int]:
    """Spearman rho between cosine similarity and human scores on the pairs whose words are both in `index`.

    Args:
        vectors (np.ndarray):
            Word vectors `[N, n]`.
        index (dict[str, int]):
            Word -> row.
        pairs (list[tuple[str, str, float]]):
            Benchmark items.

    Returns:
        tuple[float, float, int]: rho (nan with fewer than 3 covered items), coverage in [0, 1], covered items.
    """
    covered = [(index[a], index[b], s) for a, b, s in pairs if a in index and b in index]
    if len(covered) < 3:
        return float("nan"), len(covered) / max(1, len(pairs)), len(covered)
    ia, ib, score = (np.array(x) for x in zip(*covered, strict=True))
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    cos = (unit[ia] * unit[ib]).sum(1)
    return float(stats.spearmanr(cos, score).statistic), len(covered) / len(pairs), len(covered)


def analogy(
    vectors: np.ndarray, index: dict[str, int], questions: list[tuple[str, str, str, str]], chunk: int = 1024
) -> tuple[float, float, int]:
    """3CosAdd accuracy (a : b :: c : ?, argmax of cos(x, b - a + c) over the vocabulary without a, b, c).

    Args:
        vectors (np.ndarray):
            Word vectors `[N, n]`.
        index (dict[str, int]):
            Word -> row.
        questions (list[tuple[str, str, str, str]]):
            `(a, b, c, d)` items.
        chunk (int):
            Questions scored per matrix product.

    Returns:
        tuple[float, float, int]: accuracy on covered items (nan if none), coverage, covered items.
    """
    q = np.array([[index[w] for w in item] for item in questions if all(w in index for w in item)], dtype=np.int64)
    if len(q) == 0:
        return float("nan"), 0.0, 0
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    correct = 0
    for s in range(0, len(q), chunk):
        a, b, c, d = q[s : s + chunk].T
        target = unit[b] - unit[a] + unit[c]
        scores = target @ unit.T  # [chunk, N]
        rows = np.arange(len(a))
        for ex in (a, b, c):
            scores[rows, ex] = -np.inf
        correct += int((scores.argmax(1) == d).sum())
    return correct / len(q), len(q) / len(questions), len(q)


def pmi_correlation(u: np.ndarray, v: np.ndarray, centers: np.ndarray, contexts: np.ndarray, size: int, top: int = 2000,
                    min_count: int = 5) -> tuple[float, int]:  # fmt: skip
    """M3, split-half: Spearman rho between u_i . v_j and the held-out PMI of the frequent pairs.

    PMI_ij = ln(C_ij C / (C_i. C_.j)) from the held-out window pairs (marginals over every id), for the pairs of the
    `top` most frequent ids (ids are in training-frequency order) seen at least `min_count` times. SGNS factorises
    PMI - ln k (Levy and Goldberg 2014), so a model that generalises ranks the held-out PMI well.

    Args:
        u (np.ndarray):
            Centre vectors `[N, n]`.
        v (np.ndarray):
            Context vectors `[N, n]`.
        centers (np.ndarray):
            Held-out window pairs' centre ids `[P]`.
        contexts (np.ndarray):
            Their context ids `[P]`.
        size (int):
            N.
        top (int):
            Frequent ids considered.
        min_count (int):
            Held-out count a pair needs.

    Returns:
        tuple[float, int]: rho (nan with fewer than 3 pairs) and the number of pairs.
    """
    top = min(top, size)
    row = np.bincount(centers, minlength=size).astype(np.float64)
    col = np.bincount(contexts, minlength=size).astype(np.float64)
    keep = (centers < top) & (contexts < top)
    table = np.bincount(centers[keep] * top + contexts[keep], minlength=top * top).reshape(top, top).astype(np.float64)
    i, j = np.nonzero(table >= min_count)
    if len(i) < 3:
        return float("nan"), len(i)
    pmi = np.log(table[i, j] * len(centers) / (row[i] * col[j]))
    dots = (u[i].astype(np.float64) * v[j]).sum(1)
    return float(stats.spearmanr(dots, pmi).statistic), len(i)


def naive_pmi_correlation(u, v, centers, contexts, size, top=2000, min_count=5) -> tuple[float, int]:
    """`pmi_correlation` by counting pairs in a dict (the reference)."""
    from collections import Counter

    pairs = Counter(zip(centers.tolist(), contexts.tolist(), strict=True))
    row, col = Counter(centers.tolist()), Counter(contexts.tolist())
    keys = sorted(k for k, c in pairs.items() if c >= min_count and k[0] < min(top, size) and k[1] < min(top, size))
    if len(keys) < 3:
        return float("nan"), len(keys)
    pmi = [np.log(pairs[k] * len(centers) / (row[k[0]] * col[k[1]])) for k in keys]
    dots = [float(np.dot(u[a].astype(np.float64), v[b])) for a, b in keys]
    return float(stats.spearmanr(dots, pmi).statistic), len(keys)


def retrieval_mrr(u: np.ndarray, v: np.ndarray, centers: np.ndarray, contexts: np.ndarray, chunk: int = 256) -> float:
    """M3, retrieval: mean reciprocal rank of each held-out pair's context among all N words by u_c . v.

    Ties count half (the mid-rank), so constant vectors score the rank of a random guess, not the best.
    """
    out = []
    for s in range(0, len(centers), chunk):
        c, o = centers[s : s + chunk], contexts[s : s + chunk]
        scores = u[c].astype(np.float64) @ v.T.astype(np.float64)  # [B, N]
        true = scores[np.arange(len(c)), o][:, None]
        rank = 1 + (scores > true).sum(1) + 0.5 * ((scores == true).sum(1) - 1)
        out.append(1.0 / rank)
    return float(np.concatenate(out).mean()) if out else float("nan")


def naive_retrieval_mrr(u, v, centers, contexts) -> float:
    """`retrieval_mrr` one pair at a time with a sort (the reference)."""
    total = 0.0
    for c, o in zip(centers.tolist(), contexts.tolist(), strict=True):
        scores = sorted(((float(np.dot(u[c].astype(np.float64), v[w])), w) for w in range(len(v))), reverse=True)
        true = float(np.dot(u[c].astype(np.float64), v[o]))
        above = sum(s > true for s, _ in scores)
        ties = sum(s == true for s, _ in scores) - 1
        total += 1.0 / (1 + above + 0.5 * ties)
    return total / len(centers)
