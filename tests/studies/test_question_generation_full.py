"""question_generation's full-budget path (SQuAD, BERT, round-trip QA) on tiny local files, without Ray or a GPU:
a tiny SQuAD in the official format, a vocab.txt and a random BERT checkpoint in the Hugging Face layout."""

import json
import random

import numpy as np
import pytest
import torch

from core.data import qg as qg_data
from core.seq2seq import Seq2Seq, _bert_names
from studies import expand
from studies import question_generation as st

pytest.importorskip("tokenizers")

PEOPLE = ["alma", "boris", "cleo", "dario", "elin", "farid", "greta", "hugo", "ines", "jonas", "kira", "lars"]
CITIES = ["oslo", "lima", "quito", "riga", "sofia", "tunis", "vaduz", "minsk"]
WORDS = ["was", "born", "in", "lives", "works", "at", "the", "museum", "of", "where", "who", "is", "a", "painter",
         "city", "and", "famous", "for", "art", "which", "did"]  # fmt: skip
ZH_PEOPLE, ZH_CITIES = ["张三", "李四", "王五", "赵六"], ["北京", "上海", "广州", "深圳", "成都"]
VOCAB = ["[PAD]", *WORDS, "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "?", ",", *PEOPLE, *CITIES, "##s"]


def _article(i: int, rng: random.Random) -> dict:
    person, city, other = rng.choice(PEOPLE), rng.choice(CITIES), rng.choice(CITIES)
    first = f"{person.title()} is a painter."
    born = f"{person.title()} was born in {city.title()}."
    works = f"{person.title()} works at the museum of {other.title()}."
    context = " ".join([first, born, works])
    qas = [
        {"id": f"{i}a", "question": f"Where was {person} born?",
         "answers": [{"text": city.title(), "answer_start": context.index(born) + born.index(city.title())}]},
        {"id": f"{i}b", "question": f"Who works at the museum of {other}?",
         "answers": [{"text": person.title(), "answer_start": context.index(works)}]},
    ]  # fmt: skip
    return {"title": f"article {i}", "paragraphs": [{"context": context, "qas": qas}]}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    rng = random.Random(0)
    (root / "squad").mkdir()
    for name, n, first in (("train-v1.1.json", 24, 0), ("dev-v1.1.json", 4, 100)):
        data = {"version": "1.1", "data": [_article(first + i, rng) for i in range(n)]}
        (root / "squad" / name).write_text(json.dumps(data))
    bert = root / "bert"
    bert.mkdir()
    _bert(bert, VOCAB)
    # Chinese: Su's WebQA/SogouQA format and a character vocabulary.
    (root / "webqa").mkdir()
    draws = [(rng.choice(ZH_PEOPLE), rng.choice(ZH_CITIES), rng.choice(ZH_CITIES)) for _ in range(40)]
    items = [{"question": f"{p}在哪里出生？", "passages": [{"passage": f"{p}是画家。{p}出生在{c}，住在{o}。", "answer": c}]}
             for p, c, o in draws]  # fmt: skip
    (root / "webqa" / "WebQA.json").write_text(json.dumps(items[:30], ensure_ascii=False))
    (root / "webqa" / "SogouQA.json").write_text(json.dumps(items[30:], ensure_ascii=False))
    chars = sorted({ch for it in items for ch in it["question"] + it["passages"][0]["passage"]})
    (root / "bert-zh").mkdir()
    _bert(root / "bert-zh", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars])
    return root


def _bert(bert, vocab):
    (bert / "vocab.txt").write_text("\n".join(vocab) + "\n")
    cfg = {"vocab_size": len(vocab), "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
           "intermediate_size": 32, "max_position_embeddings": 64, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
           "hidden_act": "gelu"}  # fmt: skip
    (bert / "config.json").write_text(json.dumps(cfg))
    torch.manual_seed(0)
    model = Seq2Seq(len(vocab), 64, 16, 2, 2, 32, post_norm=True, eps=1e-12)
    ours = model.state_dict()
    state = {theirs: ours[name] for name, theirs in _bert_names(2).items()}
    for i in range(2):
        for p in ("weight", "bias"):
            q, k, v = ours[f"blocks.{i}.attn.qkv.{p}"].chunk(3)
            for n, x in (("query", q), ("key", k), ("value", v)):
                state[f"bert.encoder.layer.{i}.attention.self.{n}.{p}"] = x
    torch.save(state, bert / "pytorch_model.bin")


def _config(root, **over) -> dict:
    cell = next(c for c in expand(st.get_study("full").param_space) if c["mask"] == "unilm")
    return cell | {"data_root": str(root), "bert": "bert", "test_share": 0.5, "test_passages": 4, "max_p": 24,
                   "max_a": 4, "max_q": 10, "steps": 3, "eval_every": 2, "control_steps": 2, "batch": 4,
                   "warmup": 1, "qa_steps": 3, "qa_batch": 4, "qa_dev": 6, "samples": 2, "dropout": 0.0, "lr": 1e-3,
                   "utility_pairs": 8, "su_epoch": 1, "qg_beam": 2, "meteor": False} | over  # fmt: skip


def _series(rows: list[dict]) -> dict:
    return {k: v for r in rows if r["step"] == rows[-1]["step"] for k, v in r.items() if isinstance(v, list)}  # at the end


def test_full_grid():
    cells = expand(st.get_study("full").param_space)
    main = sorted((c["data"], c["bert"], c["init"], c["order"], c["seed"]) for c in cells if c["mask"] == "unilm")
    assert main == sorted((d, b, i, o, s) for d, b in (("squad", "bert-base-uncased"), ("webqa", "bert-base-chinese"))
                          for i in ("pretrained", "random") for o in ("AQ", "QA") for s in (0, 1, 2))  # fmt: skip
    controls = [c for c in cells if c["mask"] == "bidirectional"]
    assert sorted(c["data"] for c in controls) == ["squad", "webqa"]
    control = controls[0]
    assert control["init"] == "pretrained" and control["steps"] == st.CONTROL_STEPS["full"]
    assert {c["data"] for c in cells} == {"squad", "webqa"} and all(
        1 + c["max_p"] + c["max_a"] + c["max_q"] + 3 <= 512 for c in cells
    )
    tuning = st.get_study("full").tuning
    assert all("lr" not in c for c in cells if c["mask"] == "unilm") and control["lr"] == 2e-5
    assert set(tuning.space(cells[0])) == {"lr"} and tuning.space(control) == {} and tuning.seed not in st.SEEDS["full"]
    assert (
        control["utility_pairs"] == 0
        and control["su_epoch"] == 0
        and all(c["utility_pairs"] == 50_000 for c in cells if c["mask"] == "unilm")
    )


def test_missing_files_name_the_setup(tmp_path, root):
    with pytest.raises(FileNotFoundError, match="bert/vocab.txt is missing: see core.data.squad.SETUP"):
        st.QAData(_config(tmp_path), "cpu")
    (tmp_path / "bert").symlink_to(root / "bert")
    with pytest.raises(FileNotFoundError, match="train-v1.1.json is missing"):
        st.QAData(_config(tmp_path), "cpu")
    with pytest.raises(FileNotFoundError, match="WebQA.json is missing"):
        st.QAData(_config(tmp_path, data="webqa"), "cpu")
    with pytest.raises(FileNotFoundError, match="nltk.downloader"):  # METEOR's WordNet, checked before any training
        st.QAData(_config(root, meteor=True), "cpu")


@pytest.mark.parametrize("init,order", [("pretrained", "AQ"), ("random", "QA")])
def test_full_trainable_on_tiny_files(root, init, order):
    rows: list[dict] = []
    st.qg(_config(root, init=init, order=order), rows.append)
    head = rows[0]
    assert 0 <= head["rtqa/dev_em"] <= head["rtqa/dev_f1"] <= 1 and head["rtqa/key"] > 0
    series = _series(rows)
    assert len(series["test/tf_nll"]) == 4
    decodes = _config(root)["decodes"].split(",")
    assert len(decodes) == 16 and {"beam_both", "su_p80_b5", "su_p100_b1"} <= set(decodes)
    for name in decodes:
        f1s, ems = np.array(series[f"test/{name}/validity"]), np.array(series[f"test/{name}/validity_em"])
        assert len(f1s) == 4 and ((ems >= 0) & (ems <= f1s + 1e-12) & (f1s <= 1)).all()  # F1 >= EM per pair
        assert all(0 <= v <= 1 for v in series[f"test/{name}/coverage"])
    assert series["test/su_span/span_rate"] == [1.0] * 4  # the constraint makes every answer a passage span
    assert series["test/beam_both/distinct_pair"] == [0.5] * 4  # deterministic: one pair counted K = 2 times
    assert rows[-1]["final/su/validity_em"] == pytest.approx(np.mean(series["test/su/validity_em"]))
    # The checkpoint of lowest validation NLL is the one decoded (evaluations at steps 2 and 3).
    (selected,) = [r["train/selected_step"] for r in rows if "train/selected_step" in r]
    val = {r["step"]: r["val/tf_nll"] for r in rows if "val/tf_nll" in r}
    assert selected == min(val, key=val.get)
    # Answer-aware questions (AQ models only): BLEU-4 and ROUGE-L against the gold questions; no METEOR without WordNet.
    final = rows[-1]
    if order == "AQ":
        assert 0 <= final["final/qg_bleu4"] <= 1 and 0 <= final["final/qg_rouge_l"] <= 1 and final["final/qg_pairs"] >= 4
    assert "final/qg_meteor" not in final and ("final/qg_bleu4" in final) == (order == "AQ")
    # Su's replication arm: the epoch (here 1 step) of lowest training loss, decoded with Su's decoding.
    losses = {r["step"]: r["train/epoch_loss"] for r in rows if "train/epoch_loss" in r}
    assert rows[-1]["train/su_step"] == max(s for s, v in losses.items() if v == min(losses.values()))
    assert len(series["test/su_trainloss/validity"]) == 4
    # Utility: a fresh QA model trained on this generator's span pairs, scored per dev example.
    assert len(series["utility/em"]) == len(series["utility/f1"]) == 6 and 0 <= rows[-1]["utility/kept"] <= 1


def test_round_trip_model_is_trained_once_and_reused(root):
    a, b = [], []
    st.qg(_config(root, qa_steps=2, seed=1), a.append)
    st.qg(_config(root, qa_steps=2, seed=2, order="QA"), b.append)
    assert a[0]["rtqa/trained"] == 1.0 and b[0]["rtqa/trained"] == 0.0
    assert a[0]["rtqa/key"] == b[0]["rtqa/key"] and a[0]["rtqa/dev_f1"] == b[0]["rtqa/dev_f1"]


def test_round_trip_metrics_with_stub_readers(root, monkeypatch):
    """A reader that says nothing makes every pair invalid; one that gives back the generated answer makes every
    pair valid; coverage counts the distinct gold answers that round-trip-exact pairs hit."""
    data = st.QAData(_config(root), "cpu")
    rows = [[(list(e.answer), list(e.question)) for e in g] for g in data.gold]  # each passage's gold pairs
    monkeypatch.setattr(qg_data, "answer", lambda model, questions, passages, max_len: [[] for _ in questions])
    for m in data.judge(rows):
        assert m["validity"] == 0.0 and m["validity_em"] == 0.0 and m["coverage"] == 0.0 and m["span_rate"] == 1.0
    said = {(tuple(q), tuple(p)): a for row, p in zip(rows, data.test, strict=True) for a, q in row}
    monkeypatch.setattr(qg_data, "answer", lambda model, questions, passages, max_len: [
        said[(tuple(q), tuple(p))] for q, p in zip(questions, passages, strict=True)])  # fmt: skip
    for m in data.judge(rows):
        assert m["validity"] == 1.0 and m["validity_em"] == 1.0 and m["coverage"] == 1.0
    firsts = [[row[0], row[0]] for row in rows]
    for m, g in zip(data.judge(firsts), data.gold, strict=True):
        assert m["coverage"] == pytest.approx(1 / len({e.answer for e in g})) and m["distinct_pair"] == 0.5
    assert any(len({e.answer for e in g}) > 1 for g in data.gold)  # the case above is not vacuous


def test_chinese_arm_on_tiny_files(root):
    rows: list[dict] = []
    cfg = _config(root, data="webqa", bert="bert-zh", max_p=32, decodes="su,beam_both,su_span")
    st.qg(cfg, rows.append)
    series = _series(rows)
    data = st.QAData(cfg, "cpu")
    assert 0 < len(data.test) <= 4 and len(data.train) > len(data.dev)
    # Chinese word pieces are characters: decoding joins them with spaces, so SQuAD's F1 is over characters.
    assert data.tok.decode(data.tok.encode("北京")[0]) == "北 京"
    assert len(series["test/su/validity"]) == len(data.test) and series["test/su_span/span_rate"] == [1.0] * len(data.test)
