"""SQuAD reading, BERT word pieces with renumbered specials, passage windows, and the SQuAD answer comparison."""

import json

import pytest

from core.data import squad as sq
from core.seq2seq import CLS, MASK, PAD, SEP, UNK

pytest.importorskip("tokenizers")

# A vocab.txt in BERT's layout but with the special tokens away from rows 0-4, so the renumbering is visible.
VOCAB = ["the", "normans", "were", "in", "[UNK]", "normandy", "10th", "century", "[PAD]", "they", "came", "from",
         "north", "[CLS]", ".", "[SEP]", "[MASK]", "where", "?", "gave", "name", "to", "region", "##s", "norm",
         "##and", "##y", "a", "long", "story"]  # fmt: skip


@pytest.fixture
def tok(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return sq.WordPiece(tmp_path / "vocab.txt")


def test_read_squad_on_a_tiny_file(tmp_path):
    context = "The Normans were in Normandy in the 10th century."
    data = {"version": "1.1", "data": [{"title": "Normans", "paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "Where were the Normans?", "answers": [{"text": "Normandy", "answer_start": 20}]},
        {"id": "q2", "question": "When?", "answers": [{"text": "10th century", "answer_start": 36},
                                                      {"text": "the 10th century", "answer_start": 32}]}]}]}]}  # fmt: skip
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data))
    recs = sq.read_squad(path)
    assert [r["id"] for r in recs] == ["q1", "q2"]
    assert recs[1]["answers"] == [("10th century", 36), ("the 10th century", 32)]
    assert recs[0]["title"] == "Normans" and recs[0]["context"] == context
    data["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 3
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="is not at offset 3"):
        sq.read_squad(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not SQuAD-format JSON"):
        sq.read_squad(path)


def test_squad_files_names_the_setup(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-v1.1.json is missing: copy"):
        sq.squad_files(tmp_path)


def test_wordpiece_renumbers_specials_and_keeps_checkpoint_rows(tok):
    assert tok.tokens[:5] == list(sq.SPECIALS) and (PAD, CLS, SEP, MASK, UNK) == (0, 1, 2, 3, 4)
    assert [VOCAB[row] for row in tok.keep] == tok.tokens and sorted(tok.keep) == list(range(len(VOCAB)))
    ids, offsets = tok.encode("The Normans, in Normandy!")
    text = "The Normans, in Normandy!"
    # Each id names the piece at its offsets (lower-cased); unknown characters become [UNK].
    assert [tok.tokens[i] for i in ids] == ["the", "normans", "[UNK]", "in", "normandy", "[UNK]"]
    assert [text[a:b].lower() for a, b in offsets] == ["the", "normans", ",", "in", "normandy", "!"]
    pieces, _ = tok.encode("norms normandy")
    assert [tok.tokens[i] for i in pieces] == ["norm", "##s", "normandy"]
    assert tok.decode(pieces) == "norms normandy" and tok.decode([]) == ""


def test_wordpiece_needs_the_specials(tmp_path):
    (tmp_path / "vocab.txt").write_text("a\nb\n[PAD]\n")
    with pytest.raises(ValueError, match=r"lacks the special token \[CLS\]"):
        sq.WordPiece(tmp_path / "vocab.txt")


def _rec(context, answer, question="where ?", title="t"):
    return {"id": "x", "title": title, "context": context, "question": question,
            "answers": [(answer, context.index(answer))]}  # fmt: skip


def test_windows_take_whole_sentences_around_the_answer(tok):
    context = "They came from north. The Normans were in Normandy. They gave name to region. A long story."
    exs, counts = sq.examples([_rec(context, "Normandy")], tok, max_p=12, max_a=3, max_q=8)
    (e,) = exs
    assert counts == {"kept": 1}
    words = [tok.tokens[i] for i in e.passage]
    assert len(e.passage) <= 12 and e.passage[e.start : e.end + 1] == e.answer
    assert [tok.tokens[i] for i in e.answer] == ["normandy"]
    # Sentence 2 (6 pieces) grows by whole neighbours while they fit: sentence 1 (5 pieces) fits, 3 (6) would not.
    assert words == ["they", "came", "from", "north", ".", "the", "normans", "were", "in", "normandy", "."]
    # With room for everything the window is the whole context.
    (whole,), _ = sq.examples([_rec(context, "Normandy")], tok, max_p=64, max_a=3, max_q=8)
    assert len(whole.passage) == len(tok.encode(context)[0])
    # An answer sentence longer than the width gets a window centred on the answer.
    (cut,), _ = sq.examples([_rec(context, "Normandy")], tok, max_p=3, max_a=3, max_q=8)
    assert [tok.tokens[i] for i in cut.passage] == ["in", "normandy", "."]
    assert cut.passage[cut.start : cut.end + 1] == cut.answer


def test_long_answers_are_skipped_and_questions_cut(tok):
    context = "The Normans were in Normandy in the 10th century."
    exs, counts = sq.examples([_rec(context, "Normans were in Normandy"), _rec(context, "10th", "where were the normans ?")],
                              tok, max_p=32, max_a=2, max_q=3)  # fmt: skip
    assert counts == {"long_answer": 1, "kept": 1}
    assert len(exs[0].question) == 3


def test_split_articles_is_stable_and_sized():
    titles = [f"article {i}" for i in range(2000)]
    held = sq.split_articles(titles, 0.1, seed=1)
    assert held == sq.split_articles(list(reversed(titles)), 0.1, seed=1)
    assert 150 < len(held) < 250 and held != sq.split_articles(titles, 0.1, seed=2)


def test_squad_answer_comparison_by_hand():
    assert sq.normalize("The  Normans, of   Normandy!") == "normans of normandy"
    assert sq.exact_match("the Normandy", "Normandy.") == 1.0 and sq.exact_match("Norman", "Normandy") == 0.0
    # precision 2/2, recall 2/3 -> F1 = 0.8
    assert sq.f1("cat sat", "the cat sat down") == pytest.approx(0.8)
    assert sq.f1("a", "the") == 0.0 and sq.f1("x y y", "y y z") == pytest.approx(2 / 3)


TEXT = "北京是中国的首都，也是一座古城。上海在东边，是最大的城市！广州在南方；深圳很新。"


@pytest.mark.parametrize("max_len", [10, 16, 30, 100])
def test_segment_cuts_at_separators_within_the_limit(max_len):
    chunks = sq.segment(TEXT, max_len)
    assert all(0 < len(c) <= max_len for c in chunks)

    # Nothing but separators is lost at the cuts: in order, the chunks hold every other character of the text.
    def bare(x):
        return "".join(ch for ch in x if ch not in sq.SU_SEPS)

    assert bare("".join(chunks)) == bare(TEXT)
    assert "".join(c.strip("；;，, ") for c in chunks) == "".join(chunks)
    assert len(chunks) == {10: 6, 16: 3, 30: 2, 100: 1}[max_len]
    # Sentences (。！) are the first cuts; commas only where a sentence is still too long.
    assert sq.segment(TEXT, 16)[0] == "北京是中国的首都，也是一座古城。"


def test_segment_edge_cases():
    assert sq.segment("  ，abc，  ", 100) == ["abc"]
    assert sq.segment("a" * 20, 5) == ["a" * 20]  # no separator to cut at: left whole
    assert sq.segment("", 5) == [""]


def test_webqa_records_follow_su_and_split_by_order(tmp_path):
    items = [{"question": f"问题{i}？", "passages": [
        {"passage": f"答案{i}在这里。别的句子没有它，还有更多的字。", "answer": f"答案{i}"},
        {"passage": "没有答案的篇章。", "answer": ""}]} for i in range(30)]  # fmt: skip
    (tmp_path / "WebQA.json").write_text(json.dumps(items[:20], ensure_ascii=False))
    (tmp_path / "SogouQA.json").write_text(json.dumps(items[20:], ensure_ascii=False))
    split = sq.webqa_records([tmp_path / "WebQA.json", tmp_path / "SogouQA.json"], max_chars=12)
    assert {k: len(v) for k, v in split.items()} == {"train": 24, "dev": 3, "test": 3}
    recs = [r for v in split.values() for r in v]
    for r in recs:  # the chunk that holds the answer, with the answer's offset
        ((text, start),) = r["answers"]
        assert r["context"][start : start + len(text)] == text and len(r["context"]) <= 12
        assert r["context"] == f"{text}在这里。"
    assert split == sq.webqa_records([tmp_path / "WebQA.json", tmp_path / "SogouQA.json"], max_chars=12)
    (tmp_path / "bad.json").write_text('[{"question": "q"}]')
    with pytest.raises(ValueError, match="not WebQA-format JSON"):
        sq.webqa_records([tmp_path / "bad.json"])
    with pytest.raises(FileNotFoundError, match="WebQA.json is missing"):
        sq.webqa_files(tmp_path / "nowhere")
