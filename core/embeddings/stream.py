"""Corpora too large for memory (Wikipedia, ~3B tokens): read from disk in records, split and subsampled by hash.

A corpus file is whitespace-separated tokens, one document per line (`enwiki.txt`), or one long line (`text8`).
`records` cuts it into records of at most `chunk` tokens (gensim truncates longer sentences at 10k), each named by
(line, chunk). The held-out split and the T-token subset are decided per record by a BLAKE2 hash of its name, so
they need no state, are the same in every process and every pass, and the subsets of several T are nested
(a smaller T's records are part of every larger T's). `Stream` is a restartable iterable of one part (gensim
reads it once to build the vocabulary and once per epoch); `count_tokens` is the one counting pass per (corpus, T)
that gives the exact top-N for every N.
"""

import hashlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

HELDOUT = 0.1
"""Fraction of records held out."""
UNK = "<unk>"
"""The word out-of-vocabulary tokens become under `oov = unk`."""
_SPACE = (" ", "\n", "\t", "\r")


def records(path: str | Path, chunk: int = 1000, block: int = 1 << 20) -> Iterator[tuple[str, list[str]]]:
    """Records of a whitespace-tokenised file: `(name, tokens)` with at most `chunk` tokens each, in file order.

    A line is cut into consecutive chunks (its last one may be shorter); the name is `"line:chunk"`. The file is
    read `block` characters at a time, so memory does not grow with the length of a line.

    Args:
        path (str | Path):
            UTF-8 text (undecodable bytes are replaced).
        chunk (int):
            Tokens per record at most.
        block (int):
            Characters read at a time.

    Yields:
        tuple[str, list[str]]: the record's name and its tokens (records with no token are skipped).
    """
    if chunk < 1 or block < 1:
        raise ValueError(f"chunk and block must be positive, got {chunk} and {block}")
    line, k, pending, carry = 0, 0, [], ""
    with open(path, encoding="utf8", errors="replace") as fh:
        while True:
            data = fh.read(block)
            text = carry + data
            if data:  # keep a token cut by the block boundary for the next block
                cut = max(text.rfind(c) for c in _SPACE) + 1
                text, carry = text[:cut], text[cut:]
            else:
                carry = ""
            lines = text.split("\n")
            for i, part in enumerate(lines):
                pending += part.split()
                last = i == len(lines) - 1
                at = 0  # cut by index, not by re-slicing the rest (a text8 block holds ~150k tokens)
                while len(pending) - at >= chunk or (at < len(pending) and not last):
                    yield f"{line}:{k}", pending[at : at + chunk]
                    at, k = at + chunk, k + 1
                pending = pending[at:]
                if not last:
                    line, k = line + 1, 0
            if not data:
                if pending:
                    yield f"{line}:{k}", pending
                return


def unit_hash(name: str, salt: str = "") -> float:
    """A record's place in [0, 1): 64 bits of BLAKE2b of `salt + name` (the same in every process).

    Not crc32: CRC is affine in its input, so the hashes of `"0:0"`, `"1:0"`, ... are far from uniform over a few
    hundred names, and two salts give correlated hashes.
    """
    digest = hashlib.blake2b((salt + name).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def in_part(name: str, part: str, heldout: float = HELDOUT, fraction: float = 1.0) -> bool:
    """Whether a record is in the training part (`train`) or held out (`heldout`), and in the `fraction` subset
    (`all`: every record).

    The split uses one hash (held out below `heldout`), the subset of the training part a second, salted hash
    (kept below `fraction`), so a training subset is a uniform sample of the training records whatever the file
    order. For the held-out part `fraction` keeps the records whose split hash is below `heldout * fraction`, again
    a uniform sample.
    """
    if part == "all":  # a file that already holds one part (`write_part`)
        return True
    h = unit_hash(name)
    if part == "heldout":
        return h < heldout * fraction
    if part == "train":
        return h >= heldout and (fraction >= 1.0 or unit_hash(name, "tokens:") < fraction)
    raise ValueError(f"part must be train, heldout or all, got {part!r}")


class Stream:
    """One part of a corpus file as a restartable iterable of id arrays (OOV dropped, or mapped to `<unk>`).

    Args:
        path (str | Path):
            Corpus file.
        part (str):
            `train`, `heldout`, or `all` (a file holding one part already, from `write_part`).
        vocab (list[str]):
            The vocabulary; ids are positions in it.
        oov (str):
            `drop` removes out-of-vocabulary tokens; `unk` maps them to the id of `<unk>` (which must be in `vocab`).
        heldout (float):
            Fraction of records held out.
        fraction (float):
            The subset of the part kept (see `in_part`).
        chunk (int):
            Tokens per record at most.
    """

    def __init__(self, path: str | Path, part: str, vocab: list[str], oov: str = "drop", heldout: float = HELDOUT,
                 fraction: float = 1.0, chunk: int = 1000) -> None:  # fmt: skip
        if oov not in ("drop", "unk"):
            raise ValueError(f"oov must be drop or unk, got {oov!r}")
        if oov == "unk" and UNK not in vocab:
            raise ValueError(f"oov = unk needs {UNK!r} in the vocabulary")
        self.path, self.part, self.oov = Path(path), part, oov
        self.heldout, self.fraction, self.chunk = heldout, fraction, chunk
        self.index = {w: i for i, w in enumerate(vocab)}

    def __iter__(self) -> Iterator[np.ndarray]:
        index, unk = self.index, self.index.get(UNK, -1)
        for tokens in self._records():
            ids = [index[w] for w in tokens if w in index] if self.oov == "drop" else [index.get(w, unk) for w in tokens]
            if ids:
                yield np.array(ids, dtype=np.int64)

    def _records(self) -> Iterator[list[str]]:
        for name, tokens in records(self.path, self.chunk):
            if in_part(name, self.part, self.heldout, self.fraction):
                yield tokens

    def words(self) -> "Words":
        """The same paragraphs as word lists (what gensim reads), without a round trip through ids."""
        return Words(self)


class Words:
    """A `Stream`'s paragraphs as lists of words (OOV dropped or `<unk>`), restartable like the stream."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[list[str]]:
        index, drop = self.stream.index, self.stream.oov == "drop"
        for tokens in self.stream._records():
            words = [w for w in tokens if w in index] if drop else [w if w in index else UNK for w in tokens]
            if words:
                yield words


def count_tokens(path: str | Path, heldout: float = HELDOUT, fraction: float = 1.0,
                 chunk: int = 1000) -> tuple[Counter, int, int]:  # fmt: skip
    """Word counts of the training subset, its token count, and the held-out part's token count (one pass).

    Returns:
        tuple[Counter, int, int]: training word counts, training tokens, held-out tokens (the whole held-out part).
    """
    counts: Counter = Counter()
    train = held = 0
    for name, tokens in records(path, chunk):
        if in_part(name, "heldout", heldout):
            held += len(tokens)
        elif in_part(name, "train", heldout, fraction):
            counts.update(tokens)
            train += len(tokens)
    return counts, train, held


def top_n(counts: Counter | dict[str, int], size: int) -> list[str]:
    """The exact `size` most frequent words, ties broken alphabetically (the same order as `corpus.top_vocab`)."""
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]]


def write_part(path: str | Path, out: str | Path, part: str, fraction: float = 1.0, heldout: float = HELDOUT,
               chunk: int = 1000) -> int:  # fmt: skip
    """Write one part's records to `out`, a record a line, so later passes read only them (`Stream(out, "all", ...)`
    yields exactly what `Stream(path, part, ..., fraction)` does). Written whole, then renamed.

    Returns:
        int: tokens written.
    """
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    tokens = 0
    with open(tmp, "w", encoding="utf8") as fh:
        for name, words in records(path, chunk):
            if in_part(name, part, heldout, fraction):
                fh.write(" ".join(words) + "\n")
                tokens += len(words)
    tmp.replace(out)
    return tokens


def _cached(path: Path, cache: Path, stem: str, make) -> Path:
    """`cache/<stem>-<corpus name>-<size>-<mtime>...` made once by `make(file)` under a lock file (other processes
    asking at once wait for it, then read it)."""
    import fcntl

    st = path.stat()
    file = cache / f"{stem.format(name=path.name, size=st.st_size, mtime=st.st_mtime_ns)}"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{file.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not file.exists():
            make(file)
    return file


def cached_part(path: str | Path, part: str, fraction: float, cache: str | Path) -> Path:
    """`write_part` through a cache on disk: a T subset of Wikipedia is read once, not on every pass of every run.

    A pass over the whole file costs the same whatever the fraction kept (every record is read and hashed), so
    gensim's passes over a 0.1B subset of 3B tokens would read 30x what they use.
    """
    stem = f"{part}-{{name}}-{{size}}-{{mtime}}-f{fraction:.9f}.txt"
    return _cached(Path(path), Path(cache), stem, lambda file: write_part(path, file, part, fraction))


def cached_counts(path: str | Path, fraction: float, keep: int, cache: str | Path) -> tuple[dict[str, int], int, int]:
    """`count_tokens` through a Parquet cache on disk: the first process on a machine counts, the others read.

    Only the `keep` most frequent words are stored (exact for every N <= keep: `top_n` of them is the top N of
    all). The cache file is named by the corpus file's name, size and modification time, the fraction and `keep`;
    a lock file serialises the processes that ask at once, and the file is written whole then renamed.

    Returns:
        tuple[dict[str, int], int, int]: top word counts, training tokens, held-out tokens.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    def make(file: Path) -> None:
        counts, train, held = count_tokens(path, fraction=fraction)
        words = top_n(counts, keep)
        table = pa.table({"word": words, "count": [counts[w] for w in words]})
        table = table.replace_schema_metadata({"train_tokens": str(train), "heldout_tokens": str(held)})
        tmp = file.with_name(file.name + ".partial")
        pq.write_table(table, tmp)
        tmp.replace(file)

    file = _cached(Path(path), Path(cache), f"counts-{{name}}-{{size}}-{{mtime}}-f{fraction:.9f}-k{keep}.parquet", make)
    table = pq.read_table(file)
    meta = table.schema.metadata
    words = dict(zip(table.column("word").to_pylist(), table.column("count").to_pylist(), strict=True))
    return words, int(meta[b"train_tokens"]), int(meta[b"heldout_tokens"])
