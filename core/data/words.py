"""Word-level text in fixed-length windows, for the masked-language-model study (spec 03).

| name         | source                                                                          | size               |
|--------------|---------------------------------------------------------------------------------|--------------------|
| wiki_excerpt | gensim test data (`text.GENSIM_FILES`), read by `WikiCorpus` (lower-cased, no punctuation) | 452,944 tokens |
| wikitext     | `$CLAIMBENCH_DATA/wikitext-103-raw/wiki.{train,valid,test}.raw` (full budget's data stage) | ~103 M tokens |

Ids: the vocabulary's words are 0 ... n-1 (most frequent first), then [UNK] = n, [MASK] = n + 1, [PAD] = n + 2.
Windows are non-overlapping and never cross a document boundary; a document's last partial window is padded
(kept if it has at least 2 tokens). Only words are scored: [UNK] and padding are context at most.
"""

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data import data_root
from core.data.text import _gensim_file, sha256

SPLIT_SEED = 7661  # the article's number on kexue.fm: a fixed document split, independent of every run seed
HEADING = re.compile(r"^ = [^=].*[^=] = $")  # WikiText's article titles; sections use == ... ==
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class Windows:
    """`x [n, length]` int64 ids, `keep` (not padding) and `scorable` (a vocabulary word) bool masks."""

    x: np.ndarray
    keep: np.ndarray
    scorable: np.ndarray


@dataclass(frozen=True)
class WordText:
    """Train, validation and test windows over one vocabulary."""

    train: Windows
    val: Windows
    test: Windows
    vocab: list[str]
    source: str

    @property
    def unk(self) -> int:
        return len(self.vocab)

    @property
    def mask(self) -> int:
        return len(self.vocab) + 1

    @property
    def pad(self) -> int:
        return len(self.vocab) + 2

    @property
    def size(self) -> int:
        """Embedding rows: the words plus [UNK], [MASK], [PAD]."""
        return len(self.vocab) + 3


def split_documents(docs: list, val: int, test: int, seed: int = SPLIT_SEED) -> tuple[list, list, list]:
    """A fixed random split by document: (train, validation, test) with `val` and `test` documents."""
    if val + test >= len(docs):
        raise ValueError(f"{len(docs)} documents cannot give {val} validation and {test} test documents and a training set")
    order = np.random.default_rng(seed).permutation(len(docs))
    pick = [[docs[i] for i in sorted(order[a:b])] for a, b in ((val + test, len(docs)), (0, val), (val, val + test))]
    return pick[0], pick[1], pick[2]


def top_words(docs: list[list[str]], size: int) -> list[str]:
    """The `size` most frequent words (ties broken alphabetically, so the vocabulary is deterministic)."""
    counts = Counter(w for d in docs for w in d)
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]]


def windows(docs: list[list[str]], vocab: list[str], length: int) -> Windows:
    """Non-overlapping `length`-token windows inside each document; the last partial one padded (>= 2 tokens)."""
    index = {w: i for i, w in enumerate(vocab)}
    unk, pad = len(vocab), len(vocab) + 2
    rows = []
    for doc in docs:
        ids = [index.get(w, unk) for w in doc]
        for start in range(0, len(ids), length):
            part = ids[start : start + length]
            if len(part) >= 2:
                rows.append(part + [pad] * (length - len(part)))
    x = np.array(rows, dtype=np.int64).reshape(-1, length)
    return Windows(x, x != pad, x < unk)


def word_text(docs: list[list[str]], vocab_size: int, length: int, val: int, test: int, source: str) -> WordText:
    """Split documents, take the vocabulary from the training documents only, and cut every split into windows."""
    train, v, t = split_documents(docs, val, test)
    vocab = top_words(train, vocab_size)
    return WordText(windows(train, vocab, length), windows(v, vocab, length), windows(t, vocab, length), vocab, source)


def load_wiki_excerpt(path: Path | None = None) -> tuple[list[list[str]], str]:
    """gensim's English Wikipedia excerpt as documents of lower-cased tokens, and its `name: path sha256` line."""
    from gensim.corpora.wikicorpus import WikiCorpus

    path = Path(path or _gensim_file("wiki_excerpt"))
    docs = [list(doc) for doc in WikiCorpus(str(path), dictionary={}, processes=1).get_texts()]
    return docs, f"wiki_excerpt: {path} sha256 {sha256(path)}"


def read_wikitext_docs(path: Path) -> list[list[str]]:
    """One WikiText file as articles (split at ` = Title = ` lines), lower-cased word tokens."""
    docs: list[list[str]] = []
    for line in path.read_text(encoding="utf8").splitlines():
        if HEADING.match(line):
            docs.append([])
        words = WORD.findall(line.lower().replace("@-@", "-"))
        if words:
            if not docs:
                docs.append([])
            docs[-1].extend(words)
    return [d for d in docs if d]


def load_wikitext_words(vocab_size: int, length: int, root: Path | None = None, name: str = "wikitext-103-raw") -> WordText:
    """WikiText's published train/valid/test articles as word windows (the full budget; the vocabulary from train)."""
    folder = Path(root or data_root()) / name
    files = {split: folder / f"wiki.{split}.raw" for split in ("train", "valid", "test")}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{missing[0]} is missing: the full budget's data stage puts {name} under $CLAIMBENCH_DATA")
    docs = {k: read_wikitext_docs(p) for k, p in files.items()}
    vocab = top_words(docs["train"], vocab_size)
    digest = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in files.values())).hexdigest()
    return WordText(*(windows(docs[k], vocab, length) for k in ("train", "valid", "test")), vocab, f"{name} sha256:{digest}")
