"""Corpus preparation for skip-gram: held-out split, exact top-N vocabulary, windowed pairs and counts.

The split and every sample here depend on fixed seeds only, never on a trial's seed, so all dimensions and
seeds at one vocabulary size see the same training text, held-out pairs and negatives.
"""

from collections import Counter
from collections.abc import Iterable

import numpy as np
import torch

SPLIT_SEED = 0


def split_paragraphs(paragraphs: list[list[str]], heldout: float = 0.1, seed: int = SPLIT_SEED):
    """A fixed random split of paragraphs; the training part comes back in a fixed shuffled order.

    Args:
        paragraphs (list[list[str]]):
            Tokenised paragraphs.
        heldout (float):
            Fraction of paragraphs held out.
        seed (int):
            Seed of the permutation.

    Returns:
        tuple[list, list]: training paragraphs (shuffled), held-out paragraphs.
    """
    order = np.random.default_rng(seed).permutation(len(paragraphs))
    cut = int(round(heldout * len(paragraphs)))
    return [paragraphs[i] for i in order[cut:]], [paragraphs[i] for i in order[:cut]]


def take_tokens(paragraphs: list[list[str]], tokens: int) -> list[list[str]]:
    """The shortest prefix of paragraphs holding at least `tokens` tokens (all of them if there are fewer)."""
    out, total = [], 0
    for p in paragraphs:
        if total >= tokens:
            break
        out.append(p)
        total += len(p)
    return out


def top_vocab(paragraphs: list[list[str]], size: int) -> list[str]:
    """The exact `size` most frequent words (ties broken alphabetically, so the list is deterministic)."""
    counts = Counter(w for p in paragraphs for w in p)
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]]


def encode(paragraphs: list[list[str]], vocab: list[str]) -> list[np.ndarray]:
    """Paragraphs as id arrays with out-of-vocabulary tokens dropped (the local budget's OOV policy)."""
    index = {w: i for i, w in enumerate(vocab)}
    out = [np.array([index[w] for w in p if w in index], dtype=np.int64) for p in paragraphs]
    return [a for a in out if len(a)]


def window_pairs(encoded: list[np.ndarray], window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (centre, context) pair at distance 1..window within a paragraph, both directions.

    Returns:
        tuple[np.ndarray, np.ndarray]: centre ids and context ids, `[P]` each.
    """
    centers, contexts = [], []
    for a in encoded:
        for d in range(1, window + 1):
            if len(a) > d:
                centers += [a[:-d], a[d:]]
                contexts += [a[d:], a[:-d]]
    if not centers:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(centers), np.concatenate(contexts)


def naive_window_pairs(encoded: list[np.ndarray], window: int) -> list[tuple[int, int]]:
    """`window_pairs` by a loop over positions (the reference; order differs)."""
    out = []
    for a in encoded:
        for i in range(len(a)):
            for j in range(max(0, i - window), min(len(a), i + window + 1)):
                if j != i:
                    out.append((int(a[i]), int(a[j])))
    return out


def cooccurrence(encoded: Iterable[np.ndarray], size: int, window: int, batch: int = 1_000_000) -> torch.Tensor:
    """Windowed co-occurrence counts `[size, size]` (float64; row centre, column context).

    Paragraphs are read `batch` tokens at a time, so `encoded` may be a stream larger than memory; only the table
    and one batch's pairs are held.
    """
    table = np.zeros(size * size, np.float64)
    held: list[np.ndarray] = []
    tokens = 0

    def add(part: list[np.ndarray]) -> None:
        c, o = window_pairs(part, window)
        keys = c * size + o
        if size * size <= 4 * len(keys):  # a small table: one bincount over it is cheaper than sorting the keys
            table[:] += np.bincount(keys, minlength=size * size)
        else:
            unique, k = np.unique(keys, return_counts=True)
            table[unique] += k

    for a in encoded:
        held.append(a)
        tokens += len(a)
        if tokens >= batch:
            add(held)
            held, tokens = [], 0
    add(held)
    return torch.from_numpy(table.reshape(size, size))


def unigram_counts(encoded: list[np.ndarray], size: int) -> np.ndarray:
    """Token counts per id `[size]`."""
    return np.bincount(np.concatenate(encoded), minlength=size) if encoded else np.zeros(size, np.int64)


def heldout_sample(
    encoded: list[np.ndarray], counts: np.ndarray, window: int, pairs: int, negatives: int, seed: int = SPLIT_SEED
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed sample of held-out pairs with fixed negatives from the unigram^0.75 of the training counts.

    Args:
        encoded (list[np.ndarray]):
            Held-out paragraphs as ids.
        counts (np.ndarray):
            Training unigram counts `[N]`.
        window (int):
            Window radius.
        pairs (int):
            Pairs to keep (all of them if fewer).
        negatives (int):
            Negatives per pair, K.
        seed (int):
            Seed of the sample (one per vocabulary size, shared across dimensions and seeds).

    Returns:
        tuple: centres `[P]`, contexts `[P]`, negatives `[P, K]`, int64 tensors.
    """
    c, o = window_pairs(encoded, window)
    rng = np.random.default_rng(seed)
    if len(c) > pairs:
        keep = np.sort(rng.choice(len(c), pairs, replace=False))
        c, o = c[keep], o[keep]
    w = counts.astype(np.float64) ** 0.75
    neg = rng.choice(len(counts), size=(len(c), negatives), p=w / w.sum())
    return torch.from_numpy(c), torch.from_numpy(o), torch.from_numpy(neg)
