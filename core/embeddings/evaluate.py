"""Intrinsic evaluation of word vectors: similarity Spearman and 3CosAdd analogies on the covered items."""

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
