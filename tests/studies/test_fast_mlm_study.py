"""fast_mlm: the grids per budget, every trainable path on tiny inputs without Ray, and the word-window data."""

import importlib.util
import math

import numpy as np
import pytest

from core.data import words
from studies import expand, validate
from studies import fast_mlm as st

HAS_GENSIM = importlib.util.find_spec("gensim") is not None


def _cells(budget: str) -> list[dict]:
    return expand(st.get_study(budget).param_space)


def test_grids_per_budget():
    smoke = _cells("smoke")
    assert len(validate(st.get_study("smoke"))) == len(smoke) == 8
    arms = sorted((c["objective"], c["mask_rate"], c["seed"]) for c in smoke if c["task"] == "lm")
    assert arms == [("leaky", 0.0, 0), ("mlm", 0.15, 0), ("mlm", 0.15, 1), ("mlm", 0.4, 0), ("mlm", 0.4, 1),
                    ("tta", 0.0, 0), ("tta", 0.0, 1)]  # fmt: skip
    assert smoke[0]["objective"] == "leaky"  # the longest run first
    local = _cells("local")
    text = [c for c in local if c["task"] == "lm" and c["data"] == "wiki_excerpt"]
    hmm = [c for c in local if c["task"] == "lm" and c["data"] == "hmm"]
    assert len(text) == 3 * 3 + 1 and {c["depth"] for c in text} == {3}
    assert len(hmm) == 3 * 2 * 3 + 2 and {c["depth"] for c in hmm} == {2, 4}
    assert all(c["seed"] in (0, 1, 2) for c in local)
    assert [c["task"] for c in local].count("timing") == 1
    full = st.get_study("full")
    assert full.resources == {"cpu": 8, "gpu": 1} and full.tuning is not None
    deep = [c for c in expand(full.param_space) if c["data"] == "wikitext" and c["depth"] == 12 and c["objective"] == "tta"]
    assert sorted(c["seed"] for c in deep) == [0, 1]  # 1-2 seeds at depth 12 (spec 5.3)
    assert st.nuisance({"task": "lm", "data": "wikitext", "objective": "tta"})
    assert st.nuisance({"task": "lm", "data": "hmm", "objective": "tta"}) == {}
    assert st.nuisance({"task": "timing", "data": "wikitext", "objective": "both"}) == {}
    leaky = [c for c in expand(full.param_space) if c["data"] == "wikitext" and c["objective"] == "leaky"]
    assert len(leaky) == 1 and leaky[0]["lr"] == st.TRAIN["full"]["lr"]


def _tiny(objective: str, rate: float = 0.0, **over) -> dict:
    base = next(c for c in _cells("smoke") if c["task"] == "lm")
    return base | {"objective": objective, "mask_rate": rate, "steps": 4, "eval_every": 2, "val_windows": 8,
                   "test_windows": 16, "batch": 8, "d_model": 16, "heads": 2, "ffn": 32, "seed": 3} | over  # fmt: skip


@pytest.mark.parametrize("objective,rate", [("mlm", 0.15), ("tta", 0.0), ("leaky", 0.0), ("l2r", 0.0)])
def test_language_model_reports_curves_windows_and_the_oracle(objective, rate):
    rows: list[dict] = []
    st.language_model(_tiny(objective, rate), rows.append)
    evals = [r for r in rows if "val/pnll" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert evals[1]["time/train_s"] >= evals[0]["time/train_s"] > 0
    windows = [r for r in rows if "val/window_pnll" in r]
    assert [r["step"] for r in windows] == [2, 4]  # a series per evaluation, at its step
    assert len(windows[0]["val/window_pnll"]) == 8
    final = rows[-1]
    assert final["step"] == 5 and final["test/windows"] == 16
    series = final  # the test windows' series come with the last report
    assert len(series["test/window_pnll"]) == len(series["test/window_oracle"]) == 16
    assert math.isclose(final["test/pnll"], np.mean(series["test/window_pnll"]), rel_tol=1e-9)
    assert math.isclose(final["test/excess_pnll"], final["test/pnll"] - final["test/oracle_pnll"], rel_tol=1e-9, abs_tol=1e-12)
    assert 0 < final["test/unigram_pnll"] < math.log(48) + 0.5


def test_runs_are_reproducible_per_seed():
    a, b = [], []
    st.language_model(_tiny("mlm", 0.4), a.append)
    st.language_model(_tiny("mlm", 0.4), b.append)
    assert a[-1]["test/pnll"] == b[-1]["test/pnll"]


def test_timing_reports_paired_repeats_and_lengths():
    cell = next(c for c in _cells("smoke") if c["task"] == "timing") | {"windows": 4, "reps": 2, "lengths": [4, 8],
                                                                          "d_model": 16, "heads": 2, "ffn": 32}  # fmt: skip
    rows: list[dict] = []
    st.timing(cell, rows.append)
    assert rows[0]["time/mean_length"] == 24 and rows[0]["time/windows"] == 4
    reps = [r for r in rows if "time/mlm_b1_s" in r]
    assert [r["step"] for r in reps] == [0, 1] and all(r["time/mlm_b1_s"] > 0 and r["time/tta_b1_s"] > 0 for r in reps)
    (lengths,) = [r for r in rows if st.fa.LENGTHS in r]  # one report after the repeats: a series per objective
    assert lengths["step"] == 2 and lengths[st.fa.LENGTHS] == [4, 8]
    assert len(lengths["time/mlm_len_s"]) == len(lengths["time/tta_len_s"]) == 2


def test_exact_checks_pass_where_they_must_and_the_controls_leak():
    out = st.exact_checks()
    assert len(out["leak/tta"]) == 4 and max(out["leak/tta"]) <= 1e-12
    assert out["leak/leaky"][0] <= 1e-12 and min(out["leak/leaky"][1:]) > 1e-6
    assert out["tc2/leak/softmax_additive"][0] > 1e-6 and out["tc2/leak/sdpa"][0] <= 1e-12
    assert out["tp1/oracle_vs_brute"][0] <= 1e-12


# Word windows (core.data.words).


def test_windows_stay_inside_documents_pad_the_tail_and_score_words_only():
    docs = [["a", "b", "c", "d", "e"], ["b", "zz"], ["q"]]
    w = words.windows(docs, ["a", "b", "c"], length=3)
    unk, mask, pad = 3, 4, 5
    assert w.x.tolist() == [[0, 1, 2], [unk, unk, pad], [1, unk, pad]]  # ["q"] alone is dropped (< 2 tokens)
    assert w.keep.tolist() == [[True] * 3, [True, True, False], [True, True, False]]
    assert w.scorable.tolist() == [[True] * 3, [False, False, False], [True, False, False]]
    assert mask not in w.x


def test_split_is_fixed_by_document_and_the_vocabulary_comes_from_training_documents():
    docs = [[f"w{i}", f"w{i}", "common", f"v{i}"] for i in range(12)]
    a = words.word_text(docs, vocab_size=5, length=4, val=2, test=3, source="t")
    b = words.word_text(docs, vocab_size=5, length=4, val=2, test=3, source="t")
    assert a.vocab == b.vocab and np.array_equal(a.test.x, b.test.x)
    train, val, test = words.split_documents(docs, 2, 3)
    assert len(train) == 7 and len(val) == 2 and len(test) == 3
    assert sorted(map(tuple, train + val + test)) == sorted(map(tuple, docs))
    assert a.vocab[0] == "common" and all(w in {t for d in train for t in d} for w in a.vocab)
    assert (a.size, a.unk, a.mask, a.pad) == (8, 5, 6, 7)
    with pytest.raises(ValueError, match="cannot give"):
        words.split_documents(docs, 6, 6)


def test_top_words_breaks_ties_alphabetically():
    assert words.top_words([["b", "a", "c", "c"]], 3) == ["c", "a", "b"]


def test_wikitext_words_loader_on_tiny_files(tmp_path):
    folder = tmp_path / "wikitext-103-raw"
    folder.mkdir()
    text = " = Alpha = \n\n The cat sat on the mat . \n = = Part = = \n The dog @-@ house . \n = Beta = \n\n A cat ran . \n"
    for split in ("train", "valid", "test"):
        (folder / f"wiki.{split}.raw").write_text(text, encoding="utf8")
    wt = words.load_wikitext_words(vocab_size=4, length=4, root=tmp_path)
    assert words.read_wikitext_docs(folder / "wiki.train.raw")[0][:3] == ["alpha", "the", "cat"]
    assert len(words.read_wikitext_docs(folder / "wiki.train.raw")) == 2  # == Part == is a section, not an article
    assert wt.vocab[:2] == ["the", "cat"] and wt.train.x.shape[1] == 4 and wt.source.startswith("wikitext-103-raw sha256:")
    (folder / "wiki.test.raw").unlink()
    with pytest.raises(FileNotFoundError, match="wiki.test.raw is missing"):
        words.load_wikitext_words(4, 4, root=tmp_path)


@pytest.mark.skipif(not HAS_GENSIM, reason="gensim (the data extra) is not installed")
def test_wikipedia_excerpt_matches_the_spec_counts():
    docs, source = words.load_wiki_excerpt()
    assert len(docs) == 106 and sum(map(len, docs)) == 452_944
    assert source.startswith("wiki_excerpt: ") and " sha256 " in source
    wt = words.word_text(docs, 4000, 32, 5, 5, source)
    assert wt.size == 4003 and len(wt.test.x) > 100 and len(wt.val.x) > 256
