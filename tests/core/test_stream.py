"""Streamed corpora vs the in-memory path: records, the hash split and subset, exact counts, encoded streams."""

import math
from collections import Counter

import numpy as np
import pytest
import torch
from scipy import stats

from core.embeddings import corpus as C
from core.embeddings import stream as S
from core.embeddings.word2vec import prepare_stream


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _reference_records(text: str, chunk: int) -> list[tuple[str, list[str]]]:
    """`records` by reading the whole text: each line's tokens cut into chunks."""
    out = []
    for i, line in enumerate(text.split("\n")):
        words = line.split()
        out += [(f"{i}:{k}", words[j : j + chunk]) for k, j in enumerate(range(0, len(words), chunk))]
    return out


@pytest.mark.parametrize("block", [1, 5, 7, 777, 1 << 20])
@pytest.mark.parametrize("trailing_newline", [True, False])
def test_records_match_reading_the_whole_file(tmp_path, block, trailing_newline):
    rng = np.random.default_rng(block)
    words = [f"w{int(i)}" + "x" * int(i % 5) for i in rng.integers(0, 50, 900)]
    lines, at = [], 0
    for size in [0, 1, 30, 250, 3, 0, 401, 215]:  # empty lines, a line of one chunk exactly, long lines
        lines.append(("  " if size == 3 else "") + " \t".join(words[at : at + size]) + (" " if size == 30 else ""))
        at += size
    text = "\n".join(lines) + ("\n" if trailing_newline else "")
    (tmp_path / "c.txt").write_text(text)
    got = list(S.records(tmp_path / "c.txt", chunk=100, block=block))
    assert got == _reference_records(text, 100)
    assert [w for _, r in got for w in r] == text.split()
    assert max(len(r) for _, r in got) == 100


def test_records_of_a_text8_line(tmp_path):
    (tmp_path / "text8").write_text(" " + " ".join(["anarchism", "originated"] * 1100))  # text8 starts with a space
    got = list(S.records(tmp_path / "text8", block=999))
    assert [len(r) for _, r in got] == [1000, 1000, 200] and [n for n, _ in got] == ["0:0", "0:1", "0:2"]
    with pytest.raises(ValueError, match="positive"):
        list(S.records(tmp_path / "text8", chunk=0))


def test_record_hashes_are_uniform_and_independent_across_salts():
    names = [f"{i}:0" for i in range(400)]  # short sequential names (crc32 of the first 50 lie in [0.25, 1))
    h = np.array([S.unit_hash(n) for n in names])
    g = np.array([S.unit_hash(n, "tokens:") for n in names])
    assert stats.kstest(h, "uniform").pvalue > 1e-3 and stats.kstest(g, "uniform").pvalue > 1e-3
    assert stats.spearmanr(h, g).pvalue > 1e-3


def test_split_is_deterministic_disjoint_and_about_a_tenth():
    names = [f"{i}:{k}" for i in range(2000) for k in range(3)]
    held = {n for n in names if S.in_part(n, "heldout")}
    train = {n for n in names if S.in_part(n, "train")}
    assert not held & train and held | train == set(names)
    assert abs(len(held) / len(names) - 0.1) < 4 * math.sqrt(0.09 / len(names))  # binomial, 4 sigma
    assert held == {n for n in names if S.in_part(n, "heldout")}  # no state: the same split on every call
    with pytest.raises(ValueError, match="part"):
        S.in_part("0:0", "test")


def test_token_subsets_are_nested_uniform_and_inside_the_training_part():
    names = [f"{i}:0" for i in range(20000)]
    small = {n for n in names if S.in_part(n, "train", fraction=0.1)}
    large = {n for n in names if S.in_part(n, "train", fraction=0.5)}
    train = {n for n in names if S.in_part(n, "train")}
    assert small <= large <= train
    assert abs(len(small) / len(train) - 0.1) < 0.015 and abs(len(large) / len(train) - 0.5) < 0.02
    early = sum(int(n.split(":")[0]) < 10000 for n in small) / len(small)  # not a prefix of the file
    assert abs(early - 0.5) < 0.05
    held = {n for n in names if S.in_part(n, "heldout", fraction=0.3)}
    assert held <= {n for n in names if S.in_part(n, "heldout")} and not held & train


def _corpus(tmp_path):
    rng = np.random.default_rng(0)
    topics = [[f"t{t}w{i}" for i in range(12)] for t in range(6)]
    lines = [" ".join(rng.choice(topics[rng.integers(6)], int(rng.integers(5, 700)))) for _ in range(300)]
    lines += [" ".join(f"rare{i}" for i in range(j, j + 3)) for j in range(40)]  # a long tail of rare types
    return _write(tmp_path / "enwiki.txt", lines)


def test_counts_and_top_n_equal_the_in_memory_path(tmp_path):
    path = _corpus(tmp_path)
    recs = list(S.records(path))
    for fraction in (1.0, 0.4):
        train = [r for n, r in recs if S.in_part(n, "train", fraction=fraction)]
        held = [r for n, r in recs if S.in_part(n, "heldout")]
        counts, raw, held_tokens = S.count_tokens(path, fraction=fraction)
        assert counts == Counter(w for r in train for w in r) and raw == sum(map(len, train))
        assert held_tokens == sum(map(len, held))
        for size in (1, 10, 50, 10_000):
            assert S.top_n(counts, size) == C.top_vocab(train, size)


def test_stream_is_restartable_and_encodes_like_the_list_path(tmp_path):
    path = _corpus(tmp_path)
    counts, _, _ = S.count_tokens(path)
    vocab = S.top_n(counts, 20)
    train = [r for n, r in S.records(path) if S.in_part(n, "train")]
    stream = S.Stream(path, "train", vocab)
    first, second = list(stream), list(stream)
    assert len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    expected = C.encode(train, vocab)
    assert len(first) == len(expected) and all(np.array_equal(a, b) for a, b in zip(first, expected, strict=True))
    assert list(stream.words()) == [[vocab[i] for i in a] for a in first] == list(stream.words())  # restartable too
    unk = S.Stream(path, "train", vocab + [S.UNK], oov="unk")
    assert list(unk.words()) == [[unk_vocab[i] for i in a] for a in unk for unk_vocab in [vocab + [S.UNK]]]
    ids = np.concatenate(list(unk))
    assert len(ids) == sum(map(len, train)) and (ids == len(vocab)).sum() == sum(w not in vocab for r in train for w in r)
    with pytest.raises(ValueError, match="<unk>"):
        S.Stream(path, "train", vocab, oov="unk")
    with pytest.raises(ValueError, match="oov"):
        S.Stream(path, "train", vocab, oov="keep")


def test_streamed_cooccurrence_equals_the_list_version(tmp_path):
    path = _corpus(tmp_path)
    counts, _, _ = S.count_tokens(path)
    vocab = S.top_n(counts, 30)
    stream = S.Stream(path, "train", vocab)
    whole = C.cooccurrence(list(stream), len(vocab), 3, batch=10**9)
    c, o = C.window_pairs(list(stream), 3)
    reference = torch.from_numpy(np.bincount(c * 30 + o, minlength=900).reshape(30, 30).astype(np.float64))
    assert torch.equal(whole, reference)
    for batch in (1, 37, 5000):  # one paragraph at a time, a few, and batches above the bincount/unique switch
        assert torch.equal(C.cooccurrence(stream, len(vocab), 3, batch=batch), whole)
    assert torch.equal(C.cooccurrence(S.Stream(path, "train", vocab), 1000, 2, batch=50)[:30, :30],
                       C.cooccurrence(list(stream), 30, 2))  # fmt: skip  # a sparse table: the np.unique branch


def test_prepare_stream_matches_prepare_on_the_same_records(tmp_path):
    path = _corpus(tmp_path)
    recs = list(S.records(path))
    train = [r for n, r in recs if S.in_part(n, "train")]
    held = [r for n, r in recs if S.in_part(n, "heldout")]
    prep = prepare_stream(path, 25, 10**9, pairs=500)
    ref = C.top_vocab(train, 25)
    assert prep.vocab == ref and prep.raw_tokens == sum(map(len, train))
    assert np.array_equal(prep.counts, C.unigram_counts(C.encode(train, ref), 25))
    assert all(np.array_equal(a, b) for a, b in zip(prep.heldout, C.encode(held, ref), strict=True))
    small = prepare_stream(path, 25, prep.raw_tokens // 4, pairs=500)
    assert 0.1 < small.raw_tokens / prep.raw_tokens < 0.45  # about T tokens (records are whole)
    unk = prepare_stream(path, 25, 10**9, oov="unk", pairs=500)
    assert unk.vocab == ref + [S.UNK] and unk.counts.sum() == prep.raw_tokens
    assert unk.counts[-1] == prep.raw_tokens - prep.counts.sum()


def test_cached_counts_are_the_counts_and_survive_a_new_process(tmp_path):
    path = _corpus(tmp_path)
    cache = tmp_path / "cache"
    counts, train, held = S.count_tokens(path, fraction=0.5)
    words, t, h = S.cached_counts(path, 0.5, 40, cache)
    assert (t, h) == (train, held) and list(words) == S.top_n(counts, 40)
    assert all(words[w] == counts[w] for w in words)
    (file,) = cache.glob("*.parquet")
    stamp = file.stat().st_mtime_ns
    assert S.cached_counts(path, 0.5, 40, cache) == (words, t, h) and file.stat().st_mtime_ns == stamp  # read, not recounted
    prep = prepare_stream(path, 25, 10**9, counts=lambda p, f: S.cached_counts(p, f, 40, cache), pairs=500)
    direct = prepare_stream(path, 25, 10**9, pairs=500)
    assert prep.vocab == direct.vocab and np.array_equal(prep.counts, direct.counts) and prep.raw_tokens == direct.raw_tokens


def test_a_written_part_streams_like_the_filtered_corpus(tmp_path):
    path = _corpus(tmp_path)
    vocab = S.top_n(S.count_tokens(path)[0], 20)
    for part, fraction in (("train", 1.0), ("train", 0.3), ("heldout", 1.0), ("heldout", 0.5)):
        out = tmp_path / f"{part}-{fraction}.txt"
        tokens = S.write_part(path, out, part, fraction)
        filtered = [r for n, r in S.records(path) if S.in_part(n, part, fraction=fraction)]
        assert [r for _, r in S.records(out)] == filtered and tokens == sum(map(len, filtered))
        for oov, v in (("drop", vocab), ("unk", vocab + [S.UNK])):
            a = list(S.Stream(out, "all", v, oov))
            b = list(S.Stream(path, part, v, oov, fraction=fraction))
            assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    cache = tmp_path / "cache"
    file = S.cached_part(path, "train", 0.3, cache)
    stamp = file.stat().st_mtime_ns
    assert S.cached_part(path, "train", 0.3, cache) == file and file.stat().st_mtime_ns == stamp  # made once
    assert file.read_text() == (tmp_path / "train-0.3.txt").read_text() and not list(cache.glob("*.partial"))
    direct = prepare_stream(path, 25, 3000, oov="unk", pairs=500)
    cached = prepare_stream(path, 25, 3000, oov="unk", pairs=500, parts=lambda p, part, f: S.cached_part(p, part, f, cache))
    assert cached.vocab == direct.vocab and np.array_equal(cached.counts, direct.counts)
    assert all(np.array_equal(x, y) for x, y in zip(cached.train, direct.train, strict=True))
    assert all(torch.equal(x, y) for x, y in zip(cached.pairs, direct.pairs, strict=True))


def test_word2vec_reads_a_stream_like_a_list(tmp_path):
    pytest.importorskip("gensim")
    from dataclasses import replace

    from core.embeddings.word2vec import train_word2vec

    path = _corpus(tmp_path)
    prep = prepare_stream(path, 40, 10**9, pairs=500)
    listed = replace(prep, train=list(prep.train))
    u1, v1 = train_word2vec(prep, 8, seed=3, epochs=2)
    u2, v2 = train_word2vec(listed, 8, seed=3, epochs=2)
    assert u1.shape == (40, 8) and np.array_equal(u1, u2) and np.array_equal(v1, v2)  # one worker: bitwise
    unk = prepare_stream(path, 40, 10**9, oov="unk", pairs=500)
    u, _ = train_word2vec(unk, 8, seed=3, epochs=1)
    assert u.shape == (41, 8) and np.abs(u[-1]).sum() > 0  # <unk> is trained like any word
