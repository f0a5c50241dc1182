"""core.data.facts: the oracle on hand-made pairs, per-passage metrics by hand, the synthetic language against its
own oracle, WordNet parsing on a tiny data.noun, and the SQuAD reader on a tiny file."""

import random

import pytest

from core.data import facts as fx

LANG = fx.Language(fx.WORDNET_RELATIONS)
PASSAGE = fx.Passage(
    tuple(str.split("a oak is a kind of tree . pine is a type of tree . a branch is part of a tree .")),
    (("hypernym", "oak", "tree"), ("hypernym", "pine", "tree"), ("part_holonym", "branch", "tree")),
)


def test_judge_on_hand_made_pairs():
    f_oak, f_pine, f_branch = PASSAGE.facts
    assert LANG.judge(PASSAGE, "tree", "what is a oak a kind of ?") == (f_oak, "object")
    assert LANG.judge(PASSAGE, "tree", "what type of thing is pine ?") == (f_pine, "object")
    assert LANG.judge(PASSAGE, "pine", "what is a kind of tree ?") == (f_pine, "subject")  # two gold answers
    assert LANG.judge(PASSAGE, "oak", "name a type of tree ?") == (f_oak, "subject")
    assert LANG.judge(PASSAGE, "tree", "what is a branch part of ?") == (f_branch, "object")
    assert LANG.judge(PASSAGE, "branch", "what does every tree have ?") == (f_branch, "subject")
    assert LANG.judge(PASSAGE, "branch", "what is a kind of tree ?") is None  # wrong relation for that answer
    assert LANG.judge(PASSAGE, "tree", "what is a elm a kind of ?") is None  # given entity not in the passage
    assert LANG.judge(PASSAGE, "tree", "what is oak ?") is None  # unparseable
    assert LANG.judge(PASSAGE, "", "what is a oak a kind of ?") is None


def test_pair_metrics_by_hand():
    pairs = [("tree", "what is a oak a kind of ?"), ("tree", "what is a oak a kind of ?"),
             ("pine", "what is a kind of tree ?"), ("a tree", "what type of thing is pine ?")]  # fmt: skip
    m = fx.pair_metrics(LANG, PASSAGE, pairs)
    assert m["validity"] == 3 / 4
    assert m["span_rate"] == 4 / 4  # "a tree" occurs in "... part of a tree ."
    assert m["coverage"] == 2 / 6  # (oak, object), (pine, subject) out of 3 facts x 2 slots
    assert m["distinct_pair"] == 3 / 4
    qs = [q.split() for _, q in pairs]
    bigrams = [tuple(q[i : i + 2]) for q in qs for i in range(len(q) - 1)]
    assert m["distinct_2"] == len(set(bigrams)) / len(bigrams)


def test_is_span():
    p = fx.Passage(("a", "red", "oak", "tree", "."), ())
    assert fx.is_span(p, "red oak") and fx.is_span(p, "tree .") and not fx.is_span(p, "oak red")
    assert not fx.is_span(p, "") and not fx.is_span(p, "red oak tree . x")


def test_synthetic_language_gold_pairs_are_valid_spans():
    lang, pools = fx.synthetic_language()
    words = lang.words() | {w for pool in pools.values() for e in pool for w in e.split()}
    assert 200 < len(words) < 350  # about 300 tokens (spec 5.1)
    assert sum(len(v) for k, v in pools.items() if k not in ("year", "height")) >= 150
    rng = random.Random(1)
    for _ in range(200):
        p = fx.synthetic_passage(lang, pools, rng, rng.randint(1, 3))
        assert len(p.words) <= 32
        gold = lang.gold_pairs(p)
        assert len(gold) == 4 * len(p.facts)
        for a, q in gold:
            assert lang.judge(p, a, q) is not None and fx.is_span(p, a)
        a, q = lang.sample_pair(p, rng)
        assert (a, q) in gold
        assert fx.pair_metrics(lang, p, gold)["coverage"] == 1.0


# A tiny data.noun: licence lines, hex word counts, pointers of several kinds, glosses.
DATA_NOUN = """  1 This software and database is being provided to you, the LICENSEE, by
  2 Princeton University under the following license.
00000001 03 n 01 tree 0 002 @ 00000005 n 0000 ~ 00000002 n 0000 | a tall woody plant with a trunk and a tree crown
00000002 03 n 02 oak 0 oak_tree 0 001 @ 00000001 n 0000 | an oak tree with hard wood
00000003 03 n 01 branch 0 002 #p 00000001 n 0000 @ 00000004 n 0000 | a branch is a part of a tree
00000004 03 n 01 part 0 000 | a part of a thing
00000005 03 n 01 Woody_Plant 0 000 | a plant with wood
00000006 03 n 0a x 0 x1 0 x2 0 x3 0 x4 0 x5 0 x6 0 x7 0 x8 0 x9 0 001 #m 00000001 n 0000 | zzz qqq
"""


def test_parse_wordnet_and_facts():
    names, edges, glosses = fx.parse_wordnet(DATA_NOUN)
    assert names["00000005"] == "woody plant" and names["00000002"] == "oak" and names["00000006"] == "x"
    assert sorted(edges) == sorted([("@", "00000001", "00000005"), ("@", "00000002", "00000001"),
                                    ("#p", "00000003", "00000001"), ("@", "00000003", "00000004"),
                                    ("#m", "00000006", "00000001")])  # fmt: skip
    assert glosses[0] == "a tall woody plant with a trunk and a tree crown"
    facts, vocab = fx.wordnet_facts(DATA_NOUN, vocab_size=100)
    assert "x" not in vocab  # "x" never occurs in a gloss, so its member-holonym fact is dropped
    assert facts == [("hypernym", "branch", "part"), ("hypernym", "oak", "tree"), ("hypernym", "tree", "woody plant"),
                     ("part_holonym", "branch", "tree")]  # fmt: skip
    by = fx.topics(facts, least=3)
    assert list(by) == ["tree"] and len(by["tree"]) == 3
    few, vocab = fx.wordnet_facts(DATA_NOUN, vocab_size=3)  # a, tree, of/with...: most names drop out
    assert len(vocab) == 3 and all(w in vocab for f in few for name in f[1:] for w in name.split())


def test_topic_passages_and_split():
    facts = [("hypernym", f"w{i}", "tree") for i in range(8)]
    rng = random.Random(0)
    for _ in range(50):
        p = fx.topic_passage(LANG, facts, rng, 5, 30)
        assert 1 <= len(p.facts) <= 5 and len(p.words) <= 30
    train, test = fx.split_topics([f"t{i}" for i in range(100)])
    assert len(train) == 90 and len(test) == 10 and not set(train) & set(test)
    assert fx.split_topics([f"t{i}" for i in range(100)]) == (train, test)


def test_wordnet_path_names_the_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAIMBENCH_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get download wordnet-base"):
        fx.wordnet_path()
