"""Training and scoring word vectors on a corpus: gensim's Word2Vec (SGNS, CBOW) or the full-softmax skip-gram.

`prepare` builds everything that depends only on (corpus, N, T) from paragraphs in memory: the exact top-N
vocabulary of the first T training tokens, the training paragraphs with out-of-vocabulary tokens dropped, and a
fixed held-out sample of pairs with fixed negatives. `prepare_stream` builds the same from a corpus file too large
for memory (the training text stays on disk and is re-read on every pass). `score` reads u (centre) and v
(context) tables and returns every metric.
"""

import math
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.embeddings.corpus import (
    cooccurrence,
    encode,
    heldout_sample,
    take_tokens,
    top_vocab,
    unigram_counts,
    window_pairs,
)
from core.embeddings.evaluate import analogy, pmi_correlation, retrieval_mrr, similarity
from core.embeddings.skipgram import fit_fullsoftmax, fullsoftmax_loss, sgns_loss
from core.embeddings.stream import UNK, Stream, count_tokens, top_n

SOFTMAX_CE_MAX_N = 5000
"""The held-out full-softmax cross-entropy needs an `[N, N]` table: scored up to this N on a CPU."""


@dataclass(frozen=True)
class Prepared:
    """The training text and the fixed held-out sample at one (corpus, N, T)."""

    vocab: list[str]
    """Exact top-N words of the training tokens, most frequent first (then `<unk>` under `oov = unk`)."""
    train: Iterable[np.ndarray]
    """Training paragraphs as ids, OOV dropped (or `<unk>`): a list, or a restartable `Stream` from disk."""
    counts: np.ndarray
    """Training unigram counts `[N]` (of the ids, so `<unk>` counts every OOV token)."""
    heldout: list[np.ndarray]
    """Held-out paragraphs as ids, OOV dropped (or `<unk>`)."""
    pairs: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    """Held-out centres `[P]`, contexts `[P]`, fixed negatives `[P, K]`."""
    raw_tokens: int
    """Training tokens before OOV dropping (the T actually taken)."""


def prepare(train: list[list[str]], heldout: list[list[str]], size: int, tokens: int, window: int = 5,
            pairs: int = 200_000, negatives: int = 5) -> Prepared:  # fmt: skip
    """Vocabulary, encoded text and held-out sample for one (N, T).

    Args:
        train (list[list[str]]):
            Training paragraphs in their fixed order.
        heldout (list[list[str]]):
            Held-out paragraphs.
        size (int):
            Vocabulary size N.
        tokens (int):
            Training tokens T (a prefix of the training paragraphs).
        window (int):
            Window radius of the held-out pairs.
        pairs (int):
            Held-out pairs sampled.
        negatives (int):
            Fixed negatives per held-out pair.

    Returns:
        Prepared: the inputs of every trial at this (N, T).
    """
    text = take_tokens(train, tokens)
    vocab = top_vocab(text, size)
    enc = encode(text, vocab)
    counts = unigram_counts(enc, len(vocab))
    held = encode(heldout, vocab)
    sample = heldout_sample(held, counts, window, pairs, negatives, seed=size)
    return Prepared(vocab, enc, counts, held, sample, sum(len(p) for p in text))


Counts = tuple[dict[str, int], int, int]
"""Training word counts (the top words at least), training tokens, held-out tokens: `stream.count_tokens`."""


def prepare_stream(path: str | Path, size: int, tokens: int, oov: str = "drop", window: int = 5, pairs: int = 200_000,
                   negatives: int = 5, heldout_tokens: int = 2_000_000,
                   counts: Callable[[Path, float], Counts] | None = None,
                   parts: Callable[[Path, str, float], Path] | None = None) -> Prepared:  # fmt: skip
    """`prepare` for a corpus file read from disk: one counting pass, the training text left on disk.

    The T-token subset is a uniform hash sample of the training records (`stream.in_part`) of about `tokens`
    tokens, T / (training tokens) of them; the vocabulary is its exact top N. The held-out pairs come from a hash
    sample of about `heldout_tokens` held-out tokens.

    Args:
        path (str | Path):
            Corpus file (see `stream.records`).
        size (int):
            Vocabulary size N (without `<unk>`).
        tokens (int):
            Training tokens T (all of the training part if it holds fewer).
        oov (str):
            `drop` or `unk` (out-of-vocabulary tokens become `<unk>`, an extra id N).
        window (int):
            Window radius of the held-out pairs.
        pairs (int):
            Held-out pairs sampled.
        negatives (int):
            Fixed negatives per held-out pair.
        heldout_tokens (int):
            Held-out tokens read for the sample (about).
        counts (Callable):
            `(path, fraction) -> Counts`, e.g. a cache of `stream.count_tokens` on disk; `count_tokens` by default.
        parts (Callable):
            `(path, part, fraction) -> file` holding just that part (`stream.cached_part`), read instead of
            filtering the whole corpus on every pass; by default the corpus is filtered.

    Returns:
        Prepared: the inputs of every trial at this (corpus, N, T, oov); `train` is a `Stream`.
    """
    path = Path(path)
    count = counts or (lambda p, f: count_tokens(p, fraction=f))
    words, raw, held_total = count(path, 1.0)
    fraction = min(1.0, tokens / max(1, raw))
    if fraction < 1.0:
        words, raw, _ = count(path, fraction)
    vocab = top_n(words, size)
    unigram = np.array([words[w] for w in vocab], dtype=np.int64)
    if oov == "unk":
        vocab, unigram = vocab + [UNK], np.append(unigram, raw - unigram.sum())

    def part(name: str, f: float) -> Stream:
        if parts is None:
            return Stream(path, name, vocab, oov, fraction=f)
        return Stream(parts(path, name, f), "all", vocab, oov)

    train = part("train", fraction)
    held = list(part("heldout", min(1.0, heldout_tokens / max(1, held_total))))
    sample = heldout_sample(held, unigram, window, pairs, negatives, seed=size)
    return Prepared(vocab, train, unigram, held, sample, raw)


def _crc_hash(text: str) -> int:
    """A process-independent string hash for gensim's per-word initial vectors (Python's `hash` is salted)."""
    return zlib.crc32(text.encode())


class _Words:
    """Id arrays as word lists for gensim, restartable like the paragraphs it wraps (no second copy in memory)."""

    def __init__(self, paragraphs: Iterable[np.ndarray], vocab: list[str]) -> None:
        self.paragraphs, self.vocab = paragraphs, vocab

    def __iter__(self) -> Iterator[list[str]]:
        vocab = self.vocab
        for p in self.paragraphs:
            yield [vocab[i] for i in p]


def train_word2vec(prep: Prepared, dim: int, seed: int, algo: str = "sgns", window: int = 5, negative: int = 5,
                   sample: float = 1e-4, epochs: int = 3, alpha: float = 0.025) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """gensim Word2Vec with one worker (deterministic given the seed), returning u and v in vocabulary order.

    Args:
        prep (Prepared):
            Vocabulary and training text.
        dim (int):
            Dimension n.
        seed (int):
            gensim's seed.
        algo (str):
            `sgns` (skip-gram) or `cbow`, both with negative sampling.
        window (int):
            Window radius.
        negative (int):
            Negatives per pair.
        sample (float):
            Frequent-word down-sampling threshold.
        epochs (int):
            Passes over the text.
        alpha (float):
            Initial learning rate (gensim decays it linearly).

    Returns:
        tuple[np.ndarray, np.ndarray]: u (`wv.vectors`) and v (`syn1neg`), `[N, n]` each, float32.
    """
    from gensim.models import Word2Vec

    if algo not in ("sgns", "cbow"):
        raise ValueError(f"algo must be sgns or cbow, got {algo!r}")
    sentences = prep.train.words() if isinstance(prep.train, Stream) else _Words(prep.train, prep.vocab)
    model = Word2Vec(
        sentences=sentences, vector_size=dim, window=window, negative=negative, sample=sample,
        epochs=epochs, alpha=alpha, min_count=1, workers=1, seed=seed, sg=int(algo == "sgns"), hs=0, hashfxn=_crc_hash,
    )  # fmt: skip
    u = np.zeros((len(prep.vocab), dim), np.float32)
    v = np.zeros((len(prep.vocab), dim), np.float32)
    # Every vocabulary word occurs in the text, except `<unk>` when no token fell out of the vocabulary (it keeps
    # zero vectors then).
    for i, w in enumerate(prep.vocab):
        j = model.wv.key_to_index.get(w)
        if j is None and w != UNK:
            raise RuntimeError(f"vocabulary word {w!r} is missing from the trained model")
        if j is not None:
            u[i], v[i] = model.wv.vectors[j], model.syn1neg[j]
    return u, v


def train_fullsoftmax(prep: Prepared, dim: int, seed: int, window: int = 5, steps: int = 500, lr: float = 0.05,
                      device: str = "cpu", table: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Full-softmax skip-gram on the training co-occurrence table, full-batch Adam (GPU for N up to ~50k).

    `table` is `cooccurrence(prep.train, N, window)` when the caller already has it (it is built here otherwise).
    """
    table = cooccurrence(prep.train, len(prep.vocab), window) if table is None else table
    counts = table.to(device=device, dtype=torch.float32)
    u, v, _ = fit_fullsoftmax(counts, dim, steps, lr, seed, joint=False)
    return u.cpu().numpy(), v.cpu().numpy()


def score(prep: Prepared, u: np.ndarray, v: np.ndarray, benchmarks: dict, window: int = 5,
          max_analogies: int = 2000, chunk: int = 10_000, mrr_pairs: int = 2000) -> dict[str, float]:  # fmt: skip
    """Every metric of one trained model.

    Args:
        prep (Prepared):
            The trial's vocabulary and held-out sample.
        u (np.ndarray):
            Centre vectors `[N, n]`.
        v (np.ndarray):
            Context vectors `[N, n]`.
        benchmarks (dict):
            `name -> pairs` for similarity sets and `google -> questions` (may be empty).
        window (int):
            Window radius of the held-out co-occurrence table (full softmax metric).
        max_analogies (int):
            Covered analogy questions scored (a fixed subsample beyond that, seeded by N).
        chunk (int):
            Held-out pairs scored at a time.
        mrr_pairs (int):
            Held-out pairs ranked for the retrieval MRR.

    Returns:
        dict[str, float]: `heldout/sgns_loss` (M1), `heldout/softmax_ce` (N <= 5k), `heldout/pmi_rho` and
        `heldout/mrr` (M3), `bench/<name>` (M4), `coverage/<name>`.
    """
    ut, vt = torch.from_numpy(u).double(), torch.from_numpy(v).double()
    c, o, neg = prep.pairs
    chunks = [(float(sgns_loss(ut, vt, c[i : i + chunk], o[i : i + chunk], neg[i : i + chunk])), len(c[i : i + chunk]))
              for i in range(0, len(c), chunk)]  # fmt: skip
    sgns = sum(loss * k for loss, k in chunks) / max(1, len(c))  # chunked: [P, K, n] gathers stay small
    out = {"heldout/sgns_loss": sgns, "vocab/size": float(len(prep.vocab))}
    hc, ho = window_pairs(prep.heldout, window)  # M3, split-half: held-out PMI of frequent pairs, retrieval MRR
    out["heldout/pmi_rho"], pmi_pairs = pmi_correlation(u, v, hc, ho, len(prep.vocab))
    out["heldout/pmi_pairs"] = float(pmi_pairs)
    k = min(len(c), mrr_pairs)  # the first pairs of the fixed random sample; [B, N] scores kept to ~128 MiB
    out["heldout/mrr"] = retrieval_mrr(u, v, c[:k].numpy(), o[:k].numpy(), chunk=max(1, 2**24 // len(prep.vocab)))
    if len(prep.vocab) <= SOFTMAX_CE_MAX_N:
        table = cooccurrence(prep.heldout, len(prep.vocab), window)
        out["heldout/softmax_ce"] = float(fullsoftmax_loss(ut.float(), vt.float(), table.float()))
    index = {w: i for i, w in enumerate(prep.vocab)}
    for name, items in benchmarks.items():
        if name == "google":
            covered = [q for q in items if all(w in index for w in q)]
            coverage = len(covered) / max(1, len(items))
            if len(covered) > max_analogies:
                pick = np.random.default_rng(len(prep.vocab)).choice(len(covered), max_analogies, replace=False)
                covered = [covered[i] for i in sorted(pick)]
            acc, _, k = analogy(u, index, covered)
            out["bench/google"], out["coverage/google"], out["coverage/google_n"] = acc, coverage, float(k)
        else:
            rho, cov, k = similarity(u, index, items)
            out[f"bench/{name}"], out[f"coverage/{name}"], out[f"coverage/{name}_n"] = rho, cov, float(k)
    out["train/raw_tokens"] = float(prep.raw_tokens)
    out["train/tokens"] = float(prep.counts.sum())  # after OOV dropping (every token under `<unk>`)
    return {k: (v_ if math.isfinite(v_) else float("nan")) for k, v_ in out.items()}
