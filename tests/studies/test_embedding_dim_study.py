"""The embedding_dim study: grids per budget, and the word-vector trainable on a tiny corpus (the full paths too)."""

import math

import numpy as np
import pytest

from core.data import text
from core.data.text import CORPUS_FILES
from studies import embedding_dim as ed
from studies import expand, validate


def test_grids_match_the_spec():
    smoke = validate(ed.get_study("smoke"))
    assert {c["task"] for c in smoke} == {"tree"} and max(c["vocab_size"] for c in smoke) <= 256
    local = validate(ed.get_study("local"))
    w2v = [c for c in local if c["task"] == "w2v"]
    main = [c for c in w2v if c["algo"] == "sgns" and c["tokens"] == 2_000_000]
    assert sorted({c["vocab_size"] for c in main}) == [1000, 4000, 16000] and {c["seed"] for c in main} == {0, 1, 2}
    assert len(main) == 3 * 8 * 3 and {c["epochs"] for c in w2v} == {3}
    assert sorted({c["dim"] for c in main if c["vocab_size"] == 1000}) == [8, 15, 16, 32, 58, 64, 128, 256]
    assert sorted({c["dim"] for c in main if c["vocab_size"] == 4000}) == [8, 16, 18, 32, 64, 70, 128, 256]
    assert sorted({c["dim"] for c in main if c["vocab_size"] == 16000}) == [8, 16, 21, 32, 64, 81, 128, 256]
    zh = [c for c in w2v if c["corpus"] == "pku"]
    assert len(zh) == 2 * 8 * 2 and {c["vocab_size"] for c in zh} == {1000, 4000} and {c["tokens"] for c in zh} == {900_000}
    d5 = [c for c in w2v if c not in main and c not in zh]
    assert len(d5) == 2 * 8 * 2 and {(c["algo"], c["tokens"]) for c in d5} == {("sgns", 500_000), ("cbow", 2_000_000)}
    assert {c["algo"] for c in w2v} == {"sgns", "cbow"} and {c["vocab_size"] for c in w2v if c["algo"] == "cbow"} == {4000}
    assert max(c["vocab_size"] for c in local if c["task"] == "tree") == 1024
    full = [c for c in expand(ed.get_study("full").param_space) if c["task"] == "w2v"]
    assert {c["corpus"] for c in full} == {"enwiki", "zhwiki"} and {c["epochs"] for c in full} == {5}
    zh = [c for c in full if c["corpus"] == "zhwiki"]
    assert {c["vocab_size"] for c in zh} == {1000, 3000, 10000, 30000, 100_000, 300_000} and {c["algo"] for c in zh} == {
        "sgns"
    }
    assert ed._benchmarks("zhwiki") == {} and ed._benchmarks("pku") == {}  # held-out metrics only, no file read
    full = [c for c in full if c["corpus"] == "enwiki"]
    main = [c for c in full if c["algo"] == "sgns" and c["tokens"] == 500_000_000 and c["oov"] == "drop"]
    Ns = [1000, 3000, 10000, 30000, 100_000, 300_000, 1_000_000]  # spec 5.3
    assert sorted({c["vocab_size"] for c in main}) == Ns and {c["seed"] for c in main} == {0, 1, 2}
    assert len(main) == sum(3 * len(ed.grid_dims(N, "full")) for N in Ns)
    assert {c["tokens"] for c in full if c["algo"] == "sgns" and c["vocab_size"] == 30000} == {10**8, 5 * 10**8, 2 * 10**9}
    assert {c["vocab_size"] for c in full if c["oov"] == "unk"} == {1000, 30000, 1_000_000}
    soft = [c for c in full if c["algo"] == "fullsoftmax"]
    assert max(c["vocab_size"] for c in soft) == 30000 and {c["tokens"] for c in soft} == {10**8}
    assert all("oov" in c for c in expand(ed.get_study("full").param_space))
    assert "oov" in ed.get_study("full").scientific and "oov" not in ed.get_study("local").scientific


def test_su_dims():
    assert ed.su_dims(1000) == [58, 15] and ed.su_dims(16000) == [81, 21]
    assert ed.su_dims(100_000) == [math.ceil(8.33 * math.log(1e5)), math.ceil(8.33 * math.log(1e5) / 4)]


def test_smallest_dimension_by_bisection():
    assert ed._smallest(lambda n: 1.0 if n >= 13 else 0.0) == 13
    assert math.isnan(ed._smallest(lambda n: 0.0))


def _tiny_corpus(tmp_path, monkeypatch):
    """A text8-format file and an enwiki.txt-format one (a document a line) with a few topics, so words co-occur
    non-uniformly."""
    rng = np.random.default_rng(0)
    topics = [[f"w{t}x{i}" for i in range(8)] for t in range(5)]
    words = [w for _ in range(2500) for w in rng.choice(topics[rng.integers(5)], 6)]
    (tmp_path / "text8").write_text(" ".join(words))
    (tmp_path / "enwiki.txt").write_text("".join(" ".join(words[i : i + 300]) + "\n" for i in range(0, len(words), 300)))
    monkeypatch.setenv("CLAIMBENCH_DATA", str(tmp_path))
    monkeypatch.setattr(text, "load_gcide", lambda: [words[i : i + 50] for i in range(0, len(words), 50)])  # in memory
    _clear()
    benchmarks = {"ws353": [("w0x0", "w0x1", 9.0), ("w0x0", "w3x1", 1.0), ("w1x2", "w1x3", 8.0), ("w2x0", "w4x4", 0.5)],
                  "google": [("w0x0", "w0x1", "w1x0", "w1x1")]}  # fmt: skip
    monkeypatch.setattr(ed, "_benchmarks", lambda corpus: benchmarks)


def _clear():
    for f in (ed._corpus, ed._prepared, ed._cooccurrence):
        f.cache_clear()


@pytest.mark.parametrize(
    "algo,corpus,oov",
    [("fullsoftmax", "enwiki", "drop"), ("sgns", "enwiki", "drop"), ("cbow", "enwiki", "drop"), ("sgns", "enwiki", "unk"),
     ("fullsoftmax", "text8", "unk"), ("sgns", "text8", "drop"), ("sgns", "gcide", "drop"), ("fullsoftmax", "gcide", "drop")],
)  # fmt: skip
def test_word_vector_trial_on_a_tiny_corpus(tmp_path, monkeypatch, algo, corpus, oov):
    if algo != "fullsoftmax":
        pytest.importorskip("gensim")
    _tiny_corpus(tmp_path, monkeypatch)
    full = [c for c in expand(ed.get_study("full").param_space) if c["task"] == "w2v" and c["algo"] == algo]
    cfg = {**full[0], "corpus": corpus, "oov": oov, "vocab_size": 40, "tokens": 3000, "dim": 4, "steps": 50, "epochs": 2}
    reports = []
    try:
        ed.word_vectors(cfg, reports.append)
    finally:
        _clear()
    r = reports[-1]
    assert (
        r["vocab/size"] == 40 + (oov == "unk") and 0 < r["heldout/sgns_loss"] < 20 and math.isfinite(r["heldout/softmax_ce"])
    )
    assert r["coverage/ws353"] == 1.0 and -1 <= r["bench/ws353"] <= 1 and r["coverage/google"] == 1.0
    assert 1 / (r["vocab/size"] + 1) < r["heldout/mrr"] <= 1 and -1 <= r["heldout/pmi_rho"] <= 1 and r["heldout/pmi_pairs"] > 3
    if corpus in CORPUS_FILES:
        assert 3000 <= r["train/raw_tokens"] < 6000  # a hash sample of whole records of about T tokens
        name = CORPUS_FILES[corpus]
        assert list((tmp_path / "cache").glob(f"counts-{name}-*.parquet"))  # counted once, kept
        assert list((tmp_path / "cache").glob(f"train-{name}-*.txt")) and list((tmp_path / "cache").glob(f"heldout-{name}-*"))
    else:
        assert 3000 <= r["train/raw_tokens"] < 3050  # the first T tokens of the shuffled paragraphs


@pytest.mark.parametrize("corpus", ["gcide", "enwiki"])
def test_pip_trial_on_a_tiny_corpus(tmp_path, monkeypatch, corpus):
    _tiny_corpus(tmp_path, monkeypatch)
    local = [c for c in expand(ed.get_study("local").param_space) if c["task"] == "pip"]
    assert {(c["vocab_size"], c["tokens"]) for c in local} == {(1000, 2_000_000), (4000, 2_000_000), (4000, 500_000)}
    assert {(c["vocab_size"], c["tokens"]) for c in expand(ed.get_study("full").param_space) if c["task"] == "pip"} == {
        (1000, 5 * 10**8), (3000, 5 * 10**8), (10000, 5 * 10**8), (10000, 10**8), (10000, 2 * 10**9)}  # fmt: skip
    reports = []
    try:
        ed.pip_fit({**local[0], "corpus": corpus, "vocab_size": 40, "tokens": 10_000, "draws": 2}, reports.append)
    finally:
        _clear()
    r = reports[-1]
    assert r["vocab/size"] == 40 and 1 <= r["pip/dim_lo"] <= r["pip/dim"] <= r["pip/dim_hi"] <= r["pip/rank"] <= 40
    assert r["pip/sigma"] > 0


def test_oov_needs_a_streamed_corpus(tmp_path, monkeypatch):
    _tiny_corpus(tmp_path, monkeypatch)
    with pytest.raises(ValueError, match="streamed corpus"):
        ed._prepared("gcide", 40, 3000, "unk")


def test_tree_trial_reports_kl_per_dimension():
    reports = []
    ed.tree_fit({"b": 2, "depth": 3, "dims": [1, 2, 4], "steps": 50, "lr": 0.1, "seed": 0}, reports.append)
    kls = [r["tree/kl"] for r in reports if "tree/kl" in r]
    assert [r["step"] for r in reports[:3]] == [1, 2, 4] and all(k >= -1e-9 for k in kls) and kls[2] < kls[0]


def test_embedding_dim_smoke_runs_and_reports(tmp_path, ray_session):
    from analysis.report import report_all
    from analysis.schema import read_verdicts
    from studies import load
    from studies._runner import run

    summary = run(load("embedding_dim", "smoke"), tmp_path / "results")
    assert summary["ok"] == 5 and summary["failed"] == 0
    report_all(tmp_path / "results", tmp_path / "reports")
    verdicts = read_verdicts(tmp_path / "reports" / "embedding_dim").set_index("claim_id")
    assert verdicts.loc["D-P1", "verdict"] == "PASS" and verdicts.loc["D-P2", "verdict"] == "PASS", verdicts["reason"]
    assert verdicts["controls_ok"].all()
    for claim in ("D1", "D2", "D3", "D4", "D5"):
        assert verdicts.loc[claim, "verdict"] == "INCONCLUSIVE" and "not_run_at_budget" in verdicts.loc[claim, "reason"]
    figures = {p.stem for p in (tmp_path / "reports" / "embedding_dim" / "smoke").glob("*.png")}
    assert {"derivation", "tree_control", "capacity", "trial_status"} <= figures


def test_d4_head_size_grid_at_full_only():
    assert not ed.head_cells("smoke") and not ed.head_cells("local")
    full = [c for c in expand(ed.get_study("full").param_space) if c["task"] == "head"]
    assert len(full) == 3 * 2 * 4 * 7  # seeds x arms x L x head_dim (spec 5.3)
    assert {c["context"] for c in full} == {128, 512, 2048, 8192} and {c["arm"] for c in full} == {"d_model", "heads"}
    assert all(384 % c["head_dim"] == 0 for c in full)  # d_model fixed: every head size divides it
    assert ed.get_study("full").resources == {"cpu": 1, "gpu": 0.25}


@pytest.mark.parametrize("arm", ["d_model", "heads"])
def test_d4_trainable_on_tiny_wikitext_bytes(tmp_path, monkeypatch, arm):
    folder = tmp_path / "wikitext-103-raw"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, size in (("train", 20_000), ("valid", 2_000), ("test", 2_000)):
        (folder / f"wiki.{split}.raw").write_bytes(bytes(rng.choice(list(b"abcd efgh\n"), size).tolist()))
    monkeypatch.setenv("CLAIMBENCH_DATA", str(tmp_path))
    cfg = [c for c in ed.head_cells("full") if c["arm"] == arm and c["context"] == 128 and c["head_dim"] == 32][0]
    cfg = cfg | {
        "context": 16,
        "head_dim": 8,
        "d_model": 32,
        "heads": 2,
        "layers": 1,
        "batch_tokens": 128,
        "steps": 60,
        "lr": 1e-2,
    }
    reports = []
    ed.head_lm(cfg, reports.append)
    final = reports[-1]
    assert (final["head/d_model"], final["head/heads"]) == ((32.0, 4.0) if arm == "d_model" else (16.0, 2.0))
    # 10 symbols, uniform: the model starts near ln 256 (byte vocabulary) and must learn the alphabet.
    assert math.log(10) - 0.3 < final["head/val_nats"] < reports[0]["val/nats"] - 0.5
    with pytest.raises(FileNotFoundError, match="missing/wiki.train.raw is missing"):
        ed.head_lm(cfg | {"wikitext": "missing"}, reports.append)
