"""question_generation: the grids per budget, the trainable on tiny inputs without Ray (synthetic and a tiny
WordNet file), and the exact checks."""

import math

import numpy as np
import pytest

from core.data.facts import WORDNET
from studies import expand, validate
from studies import question_generation as st
from tests.data.test_facts import DATA_NOUN


def _cells(budget: str) -> list[dict]:
    return expand(st.get_study(budget).param_space)


def test_grids_per_budget():
    smoke = _cells("smoke")
    assert len(validate(st.get_study("smoke"))) == len(smoke)
    main = sorted((c["order"], c["mask"], c["seed"]) for c in smoke if c["mask"] != "bidirectional")
    assert main == sorted((o, m, s) for o in ("AQ", "QA") for m in st.MASKS["smoke"] for s in (0, 1))
    control = [c for c in smoke if c["mask"] == "bidirectional"]
    assert len(control) == 1 and control[0]["seed"] == 0 and control[0]["decodes"] == "su"
    local = _cells("local")
    assert len(local) == 2 * 3 + 1 and {c["data"] for c in local} == {"wordnet"}  # calibrated: 3 seeds
    assert {c["steps"] for c in local if c["mask"] == "unilm"} == {3000} and control[0]["order"] == "AQ"
    assert local[-1]["mask"] == "bidirectional"  # the short control last
    assert [c["steps"] for c in local if c["mask"] == "bidirectional"] == [400]
    assert all("su_span" in c["decodes"] for c in local if c["mask"] == "unilm")
    full = _cells("full")
    assert {c["init"] for c in full} == {"pretrained", "random"}
    assert st.get_study("full").resources == {"cpu": 8, "gpu": 1}


def _tiny(**over) -> dict:
    base = next(c for c in _cells("smoke") if c["mask"] == "unilm")
    return base | {"steps": 4, "eval_every": 2, "batch": 8, "d_model": 16, "heads": 2, "ffn": 32, "layers": 1,
                   "train_passages": 50, "test_passages": 6, "samples": 2} | over  # fmt: skip


def _check_rows(rows: list[dict], passages: int, decodes: list[str]) -> dict:
    evals = [r for r in rows if "val/tf_nll" in r]
    assert [r["step"] for r in evals] == [2, 4]
    final = rows[-1]
    series = {k: v for r in rows if r["step"] == final["step"] for k, v in r.items() if isinstance(v, list)}  # at the end
    assert len(series["test/tf_nll"]) == passages
    assert math.isclose(final["test/tf_nll_mean"], float(np.mean(series["test/tf_nll"])), rel_tol=1e-9)
    for name in decodes:
        for metric in ("validity", "span_rate", "coverage", "distinct_pair", "distinct_2"):
            values = series[f"test/{name}/{metric}"]
            assert len(values) == passages
            want = float(np.nanmean(values)) if not np.isnan(values).all() else math.nan  # distinct_2: nan without bigrams
            assert np.isclose(final[f"final/{name}/{metric}"], want, rtol=1e-9, equal_nan=True)
            assert all(0 <= v <= 1 for v in values if not math.isnan(v))
    return final


@pytest.mark.parametrize("order,mask", [("AQ", "unilm"), ("QA", "causal"), ("AQ", "bidirectional")])
def test_trainable_reports_curves_series_and_finals(order, mask):
    rows: list[dict] = []
    cfg = _tiny(order=order, mask=mask)
    st.qg(cfg, rows.append)
    final = _check_rows(rows, 6, cfg["decodes"].split(","))
    greedy = [r for r in rows if "test/greedy_both/distinct_pair" in r][0]["test/greedy_both/distinct_pair"]
    assert greedy == [0.5] * 6  # one greedy pair counted K = 2 times
    assert final["time/decode_s"] > 0


def test_every_run_evaluates_at_the_controls_step():
    rows: list[dict] = []
    st.qg(_tiny(control_steps=3), rows.append)
    assert [r["step"] for r in rows if "val/tf_nll" in r] == [2, 3, 4]


def test_runs_are_reproducible_per_seed():
    a, b = [], []
    st.qg(_tiny(), a.append)
    st.qg(_tiny(), b.append)
    same = {k: v for k, v in a[-1].items() if k != "time/decode_s"}
    assert same.keys() == {k for k in b[-1] if k != "time/decode_s"}
    assert all(np.isclose(v, b[-1][k], rtol=0, atol=0, equal_nan=True) for k, v in same.items())


def test_wordnet_data_from_a_tiny_file(tmp_path, monkeypatch):
    """The local budget's data path on a planted data.noun: 12 topics with 4 facts each."""
    names = [a + b + c for a in "bcdfghjk" for b in "aeiou" for c in "lnr"][:60]  # letters only: gloss words are [a-z]+
    gloss = " ".join(names)
    lines = [line for line in DATA_NOUN.splitlines() if line.startswith("  ")]
    off = 1
    for t in range(12):
        topic = off
        lines.append(f"{topic:08d} 03 n 01 {names[t]} 0 000 | {gloss}")
        off += 1
        for k in range(4):
            lines.append(f"{off:08d} 03 n 01 {names[12 + 4 * t + k]} 0 001 @ {topic:08d} n 0000 | {gloss}")
            off += 1
    path = tmp_path / WORDNET
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("CLAIMBENCH_DATA", str(tmp_path))
    cells = _cells("local")
    cfg = next(c for c in cells if c["mask"] == "unilm") | {"steps": 4, "eval_every": 2, "batch": 8, "d_model": 16,
                                                               "heads": 2, "ffn": 32, "layers": 1, "test_passages": 5,
                                                               "samples": 2}  # fmt: skip
    rows: list[dict] = []
    st.qg(cfg, rows.append)
    _check_rows(rows, 5, cfg["decodes"].split(","))
    data = st.Data(cfg)
    assert all(len(p.words) <= cfg["max_p"] for p in data.test)
    train_topics = {f[2] for fs in data.train_facts for f in fs}
    test_topics = {f[2] for p in data.test for f in p.facts}
    assert not train_topics & test_topics  # disjoint topics


def test_exact_checks():
    out = st.exact_checks()
    for name in ("future", "padding", "passage_on_target"):
        assert out[f"leak/unilm/{name}"] == [0.0, 0.0, 0.0]
    assert min(out["leak/bidirectional/future"]) > 1e-6
    assert min(out["leak/unilm_nopad/padding"]) > 1e-6
    assert max(out["leak/causal/future"]) == 0.0


def test_decoding_arms_by_name():
    from core.seq2seq import DECODINGS, Decoding

    assert st.decoding_of("su_p80_b3") == Decoding("sample", "beam", top_p=0.8, beam=3)
    assert st.decoding_of("su_p95_b1") == DECODINGS["su"]  # width 1 is greedy: Su's own decoding
    assert st.decoding_of("beam_both") == Decoding("beam", "beam", beam=3)
    with pytest.raises(ValueError, match="unknown decoding 'su_p8'"):
        st.decoding_of("su_p8")
