"""Word-vector corpora in memory vs streamed from disk: peak memory, preparation time, gensim throughput.

    python bench/embedding_stream.py [--tokens 17000000] [--size 30000] [--dim 64] [--w2v-tokens 2000000]

Writes a Zipf(1.1) corpus over 500k types in the text8 layout (one line) to a temporary directory, then runs each
arm in a fresh process and prints its peak resident memory (`ru_maxrss`) and wall time:

- `memory`: the in-memory path (read the file into paragraphs, shuffle-split, `prepare`), as local budgets do;
- `stream`: `prepare_stream` (one counting pass for the split totals, one for the T subset; the training text
  stays on disk), as the full budget does;
- `pass-filter` / `pass-part`: one pass over a 10% T subset as gensim reads it, filtering the whole file by hash
  and reading the subset written once to its own file (`stream.write_part`, the study's cache);
- `w2v-list` / `w2v-stream`: one gensim epoch (SGNS, one worker, n = `--dim`) over the first `--w2v-tokens` tokens,
  from a list in memory and from a `Stream`, in words per second (the cost of re-reading and encoding per pass).

Peak memory of the in-memory path grows with T (about 70 bytes a token); the stream's is set by the vocabulary
counts and the held-out sample, whatever T.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_corpus(path: Path, tokens: int, types: int = 500_000, seed: int = 0) -> None:
    """A Zipf(1.1) text over `types` words, one line (text8's layout), written in blocks."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, types + 1) ** 1.1
    cdf = np.cumsum(p / p.sum())
    words = np.array([f"w{i}" for i in range(types)])
    with open(path, "w") as fh:
        for start in range(0, tokens, 1_000_000):
            ids = np.searchsorted(cdf, rng.random(min(1_000_000, tokens - start)))
            fh.write(" " + " ".join(words[np.minimum(ids, types - 1)].tolist()))


def arm(name: str, path: str, size: int, tokens: int, dim: int, w2v_tokens: int) -> dict:
    from core.embeddings.corpus import split_paragraphs
    from core.embeddings.word2vec import prepare, prepare_stream

    t0 = time.perf_counter()
    out: dict = {}
    if name == "memory":
        words = Path(path).read_text().split()
        train, held = split_paragraphs([words[i : i + 1000] for i in range(0, len(words), 1000)])
        del words
        prep = prepare(train, held, size, tokens)
        out["train_tokens"] = int(prep.counts.sum())
    elif name == "stream":
        prep = prepare_stream(path, size, tokens)
        out["train_tokens"] = int(prep.counts.sum())
    elif name in ("pass-filter", "pass-part"):  # one gensim-style pass over a 10% T subset, as words
        from core.embeddings.stream import Stream, count_tokens, top_n, write_part

        vocab = top_n(count_tokens(path, fraction=0.1)[0], size)
        stream = Stream(path, "train", vocab, fraction=0.1)
        if name == "pass-part":
            write_part(path, Path(path).with_name("part.txt"), "train", 0.1)
            stream = Stream(Path(path).with_name("part.txt"), "all", vocab)
        t0 = time.perf_counter()
        out["train_tokens"] = sum(len(w) for w in stream.words())
    else:
        from dataclasses import replace

        from core.embeddings.word2vec import train_word2vec

        prep = prepare_stream(path, size, w2v_tokens)
        if name == "w2v-list":
            prep = replace(prep, train=list(prep.train))
        t0 = time.perf_counter()
        train_word2vec(prep, dim, seed=0, epochs=1)  # the study's path: a Stream is read as words, a list via ids
        out["words_per_s"] = float(prep.counts.sum()) / (time.perf_counter() - t0)
    out["seconds"] = time.perf_counter() - t0
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=17_000_000)
    p.add_argument("--size", type=int, default=30_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--w2v-tokens", type=int, default=2_000_000)
    p.add_argument("--arms", nargs="+", default=["memory", "stream", "pass-filter", "pass-part", "w2v-list", "w2v-stream"])
    p.add_argument("--arm", help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.arm:  # a child process: one arm, its result as JSON
        print(json.dumps(arm(a.arm, a.path, a.size, a.tokens, a.dim, a.w2v_tokens)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "text8"
        t0 = time.perf_counter()
        write_corpus(path, a.tokens)
        print(
            f"corpus: {a.tokens:,} tokens, {path.stat().st_size / 2**20:.0f} MiB, written in {time.perf_counter() - t0:.0f} s"
        )
        print(f"N = {a.size:,}, T = all training tokens; gensim arms: T = {a.w2v_tokens:,}, n = {a.dim}, 1 epoch")
        for name in a.arms:
            cmd = [sys.executable, __file__, "--arm", name, "--path", str(path), "--size", str(a.size),
                   "--tokens", str(a.tokens), "--dim", str(a.dim), "--w2v-tokens", str(a.w2v_tokens)]  # fmt: skip
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            extra = f", {r['words_per_s']:,.0f} words/s" if "words_per_s" in r else f", {r['train_tokens']:,} training tokens"
            print(f"{name:11s} peak {r['peak_mib']:7.0f} MiB, {r['seconds']:6.1f} s{extra}")


if __name__ == "__main__":
    main()
