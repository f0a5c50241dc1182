"""question_generation's data: a fact language (synthetic or WordNet, smoke and local) or real QA passages in BERT
word pieces (SQuAD 1.1 or WebQA + SogouQA, full), each with its vocabulary, training batches, fixed validation and
test passages, and the judge of generated (answer, question) pairs (spec 02, sections 5.1-5.3)."""

import random
from pathlib import Path

import numpy as np

from core.data import data_root
from core.data.facts import (
    WORDNET_RELATIONS,
    Language,
    pair_metrics,
    split_topics,
    synthetic_language,
    synthetic_passage,
    topic_passage,
    topics,
    wordnet_facts,
    wordnet_path,
)
from core.data.squad import (
    WordPiece,
    exact_match,
    examples,
    f1,
    normalize,
    read_squad,
    split_articles,
    squad_files,
    webqa_files,
    webqa_records,
)
from core.data.text import sha256
from core.seq2seq import SPECIALS, UNK, layout, target_ids
from core.span_qa import answer, round_trip_model
from core.text_metrics import wordnet_reader

DATA_SEED = 7630
"""Seeds the passages, their splits and the round-trip QA model, the same for every trial."""


class Data:
    """A fact language with its vocabulary, a training-passage sampler and the fixed test passages."""

    def __init__(self, config: dict):
        self.max_p = config["max_p"]
        rng = random.Random(DATA_SEED)
        if config["data"] == "synthetic":
            self.language, pools = synthetic_language(DATA_SEED)
            words = self.language.words() | {w for pool in pools.values() for e in pool for w in e.split()}

            def draw(r: random.Random):
                return synthetic_passage(self.language, pools, r, r.randint(1, 3))

            self.pool = [draw(rng) for _ in range(config["train_passages"])]
            self.test = [draw(rng) for _ in range(config["test_passages"])]
            self.val = [draw(rng) for _ in range(128)]
            self.source = f"synthetic fact language (seed {DATA_SEED})"
        elif config["data"] == "wordnet":
            path = wordnet_path()
            facts, vocab = wordnet_facts(path.read_text(encoding="utf8"))
            self.language = Language(WORDNET_RELATIONS)
            words = self.language.words() | set(vocab)
            by_topic = topics(facts)
            train_t, test_t = split_topics(list(by_topic), seed=DATA_SEED)
            self.train_facts = [by_topic[n] for n in train_t]
            self.pool = None
            self.test = [topic_passage(self.language, by_topic[rng.choice(test_t)], rng, 5, self.max_p)
                         for _ in range(config["test_passages"])]  # fmt: skip
            self.val = [self._draw(rng) for _ in range(128)]
            self.source = (
                f"WordNet 3.0 data.noun sha256 {sha256(path)[:12]}: {len(facts)} facts, {len(train_t)}/{len(test_t)} topics"
            )
        else:
            raise ValueError(f"unknown data {config['data']!r}; expected synthetic or wordnet (squad, webqa: QAData)")
        self.vocab = [*SPECIALS, *sorted(words)]
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.test_gold = [self.language.sample_pair(p, rng) for p in self.test]
        self.val_gold = [self.language.sample_pair(p, rng) for p in self.val]

    def _draw(self, rng: random.Random):
        return topic_passage(self.language, rng.choice(self.train_facts), rng, 5, self.max_p)

    def ids(self, words) -> list[int]:
        return [self.index.get(w, UNK) for w in (words.split() if isinstance(words, str) else words)]

    def passage_ids(self, passage) -> list[int]:
        return self.ids(passage.words)

    def judge(self, pairs: list[list[tuple[list[int], list[int]]]]) -> list[dict[str, float]]:
        """Oracle metrics of each test passage's K generated (answer ids, question ids) pairs."""
        return [pair_metrics(self.language, p, [(self.words(a), self.words(q)) for a, q in mine])
                for p, mine in zip(self.test, pairs, strict=True)]  # fmt: skip

    def words(self, ids: list[int]) -> str:
        return " ".join(self.vocab[i] for i in ids)

    def batch(self, passages, pairs, order: str):
        """Packed batch of passages with their (answer, question) targets in `order` (training and scoring)."""
        targets = [target_ids(self.ids(a), self.ids(q)) if order == "AQ" else target_ids(self.ids(q), self.ids(a))
                   for a, q in pairs]  # fmt: skip
        return layout([self.ids(p.words) for p in passages], targets, width=self.max_p, packed=True)

    def train_batch(self, size: int, rng: random.Random, order: str):
        passages = [rng.choice(self.pool) if self.pool is not None else self._draw(rng) for _ in range(size)]
        return self.batch(passages, [self.language.sample_pair(p, rng) for p in passages], order)


class QAData:
    """Real QA passages in BERT word pieces (full budget: SQuAD 1.1 or Su's WebQA + SogouQA), with the round-trip
    judge.

    Generator and round-trip QA model train on the same training examples. SQuAD: the test passages are windows of
    held-out training articles (Du-style), the dev examples come from the official dev set. WebQA: Su's chunks,
    split by a seeded order (`core.data.squad.webqa_records`). Validation NLL uses 128 dev examples.
    """

    def __init__(self, config: dict, device: str):
        self.root = root = Path(config["data_root"]) if config.get("data_root") else data_root()
        self.bert = root / config["bert"]
        if not (self.bert / "vocab.txt").exists():
            raise FileNotFoundError(f"{self.bert / 'vocab.txt'} is missing: see core.data.squad.SETUP")
        self.tok = WordPiece(self.bert / "vocab.txt")
        self.vocab, self.max_p, self.max_a = self.tok.tokens, config["max_p"], config["max_a"]
        cut = {"tok": self.tok, "max_p": config["max_p"], "max_a": config["max_a"], "max_q": config["max_q"]}
        if config["data"] == "squad":
            files = squad_files(root)
            train = read_squad(files["train"])
            held = split_articles([r["title"] for r in train], config["test_share"], DATA_SEED)
            records = {"train": [r for r in train if r["title"] not in held], "dev": read_squad(files["dev"]),
                       "test": [r for r in train if r["title"] in held]}  # fmt: skip
            sources = list(files.values())
        elif config["data"] == "webqa":
            sources = webqa_files(root)
            records = webqa_records(sources, config["max_p"] - 2, DATA_SEED)
        else:
            raise ValueError(f"unknown data {config['data']!r} at full; expected squad or webqa")
        self.train, self.counts = examples(records["train"], **cut)
        test, _ = examples(records["test"], **cut)
        dev, _ = examples(records["dev"], **cut)
        if not self.train or not test or not dev:
            raise ValueError(
                f"{config['data']} under {root}: {len(self.train)} train, {len(test)} test, {len(dev)} dev examples"
            )
        windows: dict[tuple, list] = {}
        for e in test:  # test passages: distinct windows in file order, each with its gold examples
            windows.setdefault(e.passage, []).append(e)
        cap = config["test_passages"] or len(windows)
        self.test, self.gold = list(windows)[:cap], [windows[w] for w in list(windows)[:cap]]
        self.test_gold = [(g[0].answer, g[0].question) for g in self.gold]
        rng = random.Random(DATA_SEED)
        picked = rng.sample(dev, min(128, len(dev)))
        self.val, self.val_gold = [e.passage for e in picked], [(e.answer, e.question) for e in picked]
        self.dev = dev[: config["qa_dev"]]
        self.files = [*sources, self.bert / "vocab.txt", self.bert / "pytorch_model.bin"]
        self.wordnet = wordnet_reader(root / "nltk_data") if config.get("meteor") and config["data"] == "squad" else None
        self.qa, self.qa_info = round_trip_model(self, config, device, DATA_SEED)
        self.source = f"{config['data']} {sources[0]}: {len(self.train)} train examples, {len(self.test)} test passages"

    def passage_ids(self, passage) -> list[int]:
        return list(passage)

    def source_key(self) -> list[str]:
        return [f"{p.name}:{sha256(p)}" for p in self.files]

    def batch(self, passages, pairs, order: str):
        targets = [target_ids(list(a), list(q)) if order == "AQ" else target_ids(list(q), list(a)) for a, q in pairs]
        return layout([list(p) for p in passages], targets, width=self.max_p, packed=True)

    def train_batch(self, size: int, rng: random.Random, order: str):
        picked = [rng.choice(self.train) for _ in range(size)]
        return self.batch([e.passage for e in picked], [(e.answer, e.question) for e in picked], order)

    def judge(self, pairs: list[list[tuple[list[int], list[int]]]]) -> list[dict[str, float]]:
        """Round-trip metrics per test passage: the QA model answers each generated question on the passage.

        validity = mean SQuAD F1 of its answer against the generated answer, validity_em = mean EM; span_rate =
        answers that are word-piece spans of the passage; coverage = distinct gold answers hit (EM) by a
        round-trip-exact pair over the passage's distinct gold answers; distinct_pair, distinct_2 as at local.
        Answers are compared as decoded word pieces on both sides.
        """
        flat = [(j, a, q) for j, mine in enumerate(pairs) for a, q in mine]  # passage-major: passage j's are a slice
        said = answer(self.qa, [q for _, _, q in flat], [list(self.test[j]) for j, _, _ in flat], self.max_a)
        out, start = [], 0
        for j, mine in enumerate(pairs):
            replies, start = said[start : start + len(mine)], start + len(mine)
            texts = [(self.tok.decode(a), self.tok.decode(r)) for (a, _), r in zip(mine, replies, strict=True)]
            em = [exact_match(r, a) if a else 0.0 for a, r in texts]
            gold = {normalize(self.tok.decode(list(e.answer))) for e in self.gold[j]}
            hit = {normalize(a) for (a, _), e in zip(texts, em, strict=True) if e} & gold
            p = list(self.test[j])
            bigrams = [tuple(q[i : i + 2]) for _, q in mine for i in range(len(q) - 1)]
            out.append({
                "validity": float(np.mean([f1(r, a) if a else 0.0 for a, r in texts])),
                "validity_em": float(np.mean(em)),
                "span_rate": float(np.mean([bool(a) and any(p[i : i + len(a)] == list(a) for i in range(len(p)))
                                            for a, _ in mine])),
                "coverage": len(hit) / len(gold),
                "distinct_pair": len({(tuple(a), tuple(q)) for a, q in mine}) / len(mine),
                "distinct_2": len(set(bigrams)) / len(bigrams) if bigrams else float("nan"),
            })  # fmt: skip
        return out
