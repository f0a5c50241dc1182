"""Fact languages for question generation (spec 02): passages rendered from fact tables, and an oracle.

A `Language` is a set of relations, each with passage templates (`{s}`, `{o}`) and question templates that ask
for the object (given `{s}`) or the subject (given `{o}`). A `Passage` holds its words and its fact table. The
oracle (`judge`) parses a generated question with the template regexes into (relation, asked slot, given entity)
and calls the pair valid iff the given entity is in the passage's fact table for that relation and the answer is
in the gold answer set (several facts may share the given entity: "what is a kind of tree ?").

Two languages:
- `synthetic_language`: six relations over pseudo-words and numbers (smoke), facts drawn fresh per passage.
- `wordnet_language` + `wordnet_facts`: WordNet 3.0 noun relations (hypernym `@`, part holonym `#p`, member holonym
  `#m`) from Debian's `wordnet-base` (`data.noun`), names restricted to the most frequent gloss words (local).

"""

import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from core.data import data_root

WORDNET = "debian/wordnet-base/usr/share/wordnet/data.noun"
WORDNET_SETUP = (
    'mkdir -p "$CLAIMBENCH_DATA/debian" && apt-get download wordnet-base && '
    'dpkg-deb -x wordnet-base_*.deb "$CLAIMBENCH_DATA/debian/wordnet-base"'
)
WORD = re.compile(r"[a-z]+")
SLOTS = ("object", "subject")  # which entity the question asks for


@dataclass(frozen=True)
class Relation:
    """Templates of one relation: passage sentences, and questions asking for the object or the subject."""

    name: str
    say: tuple[str, ...]
    ask_object: tuple[str, ...]  # templates with {s}; the answer is the object
    ask_subject: tuple[str, ...]  # templates with {o}; the answer is the subject


Fact = tuple[str, str, str]  # (relation, subject, object), names as space-joined words


@dataclass(frozen=True)
class Passage:
    words: tuple[str, ...]
    facts: tuple[Fact, ...]


class Language:
    """Relations with compiled question regexes: render passages and gold pairs, and judge generated pairs."""

    def __init__(self, relations: list[Relation]):
        self.relations = {r.name: r for r in relations}
        self.parsers = []  # (regex, relation, asked slot)
        for r in relations:
            for slot, templates in (("object", r.ask_object), ("subject", r.ask_subject)):
                for t in templates:
                    pattern = re.escape(t).replace(re.escape("{s}"), "(.+)").replace(re.escape("{o}"), "(.+)")
                    self.parsers.append((re.compile(f"^{pattern}$"), r.name, slot))

    def words(self) -> set[str]:
        """Every template word."""
        out = set()
        for r in self.relations.values():
            for t in (*r.say, *r.ask_object, *r.ask_subject):
                out |= set(t.replace("{s}", " ").replace("{o}", " ").split())
        return out

    def render(self, facts: list[Fact], rng: random.Random) -> Passage:
        """A passage: each fact in one of its relation's sentence templates, in the given order."""
        words: list[str] = []
        for rel, s, o in facts:
            words += rng.choice(self.relations[rel].say).format(s=s, o=o).split()
        return Passage(tuple(words), tuple(facts))

    def gold_pairs(self, passage: Passage) -> list[tuple[str, str]]:
        """Every gold (answer, question): each fact x slot x question template."""
        out = []
        for rel, s, o in passage.facts:
            r = self.relations[rel]
            out += [(o, t.format(s=s)) for t in r.ask_object] + [(s, t.format(o=o)) for t in r.ask_subject]
        return out

    def sample_pair(self, passage: Passage, rng: random.Random) -> tuple[str, str]:
        """One gold (answer, question): a random fact, slot and template."""
        rel, s, o = rng.choice(passage.facts)
        r = self.relations[rel]
        if rng.random() < 0.5:
            return o, rng.choice(r.ask_object).format(s=s)
        return s, rng.choice(r.ask_subject).format(o=o)

    def judge(self, passage: Passage, answer: str, question: str) -> tuple | None:
        """The (fact, asked slot) a generated pair validly asks about in this passage, or None if invalid."""
        for regex, rel, slot in self.parsers:
            m = regex.match(question)
            if not m:
                continue
            given = m.group(1)  # an object question gives the subject, a subject question the object
            for f in passage.facts:
                subject, obj = f[1], f[2]
                if f[0] == rel and (subject, obj) == ((given, answer) if slot == "object" else (answer, given)):
                    return f, slot
        return None


def is_span(passage: Passage, answer: str) -> bool:
    """Whether the answer is a non-empty contiguous token span of the passage."""
    a = answer.split()
    w = passage.words
    return bool(a) and any(list(w[i : i + len(a)]) == a for i in range(len(w) - len(a) + 1))


def pair_metrics(language: Language, passage: Passage, pairs: list[tuple[str, str]]) -> dict[str, float]:
    """Per-passage metrics of K generated (answer, question) pairs (spec 5): validity, span rate, coverage, distinct
    pair ratio, distinct-2 of the questions."""
    keys = [language.judge(passage, a, q) for a, q in pairs]
    askable = {(f, s) for f in passage.facts for s in SLOTS}
    bigrams = [tuple(q.split()[i : i + 2]) for _, q in pairs for i in range(len(q.split()) - 1)]
    return {
        "validity": sum(k is not None for k in keys) / len(pairs),
        "span_rate": sum(is_span(passage, a) for a, _ in pairs) / len(pairs),
        "coverage": len({k for k in keys if k is not None}) / len(askable),
        "distinct_pair": len(set(pairs)) / len(pairs),
        "distinct_2": len(set(bigrams)) / len(bigrams) if bigrams else float("nan"),
    }


# The synthetic fact language (smoke).

SYLLABLES = ("ka", "lo", "mi", "ren", "tu", "sa", "vel", "no", "ri", "dan", "po", "shi", "gor", "fe", "li", "mar")
SYNTHETIC = [
    Relation("capital_of", ("{s} is the capital of {o} .", "the capital of {o} is {s} ."),
             ("what is {s} the capital of ?", "which land has {s} as its capital ?"),
             ("what is the capital of {o} ?", "which city is the capital of {o} ?")),
    Relation("born_in", ("{s} was born in {o} .", "{o} is where {s} was born ."),
             ("where was {s} born ?", "in which city was {s} born ?"),
             ("who was born in {o} ?", "name someone born in {o} ?")),
    Relation("founded_year", ("{s} was founded in {o} .", "{s} dates from {o} ."),
             ("when was {s} founded ?", "in what year was {s} founded ?"),
             ("what was founded in {o} ?", "name something founded in {o} ?")),
    Relation("height_m", ("{s} is {o} metres tall .", "{s} rises {o} metres ."),
             ("how tall is {s} ?", "what is the height of {s} ?"),
             ("what is {o} metres tall ?", "which peak rises {o} metres ?")),
    Relation("member_of", ("{s} is a member of {o} .", "{o} counts {s} among its members ."),
             ("what is {s} a member of ?", "which group has {s} as a member ?"),
             ("who is a member of {o} ?", "name a member of {o} ?")),
    Relation("alias", ("{s} is also called {o} .", "{s} , known as {o} , is famous ."),
             ("what is {s} also called ?", "what is another name for {s} ?"),
             ("who is also called {o} ?", "who is known as {o} ?")),
]  # fmt: skip
TYPES = {  # relation -> (subject kind, object kind)
    "capital_of": ("city", "land"),
    "born_in": ("person", "city"),
    "founded_year": ("group", "year"),
    "height_m": ("peak", "height"),
    "member_of": ("person", "group"),
    "alias": ("person", "name"),
}


def synthetic_language(seed: int = 7630) -> tuple[Language, dict[str, list[str]]]:
    """The smoke budget's fact language and its entity pools: ~150 pseudo-word entities (people have two words),
    40 years and 30 heights."""
    rng = random.Random(seed)
    words = sorted({a + b for a in SYLLABLES for b in SYLLABLES if a != b})
    rng.shuffle(words)
    sizes = {"city": 25, "land": 15, "group": 20, "peak": 15, "name": 20, "given": 15, "family": 15}
    pools, at = {}, 0
    for kind, n in sizes.items():
        pools[kind], at = words[at : at + n], at + n
    given, family = pools.pop("given"), pools.pop("family")
    pools["person"] = [f"{g} {f}" for g in given for f in family]
    pools["year"] = [str(y) for y in rng.sample(range(1700, 1999), 40)]
    pools["height"] = [str(h) for h in rng.sample(range(100, 999), 30)]
    return Language(SYNTHETIC), pools


def synthetic_passage(language: Language, pools: dict[str, list[str]], rng: random.Random, facts: int) -> Passage:
    """A passage of `facts` fresh random facts (distinct relations, so every subject question has one answer)."""
    table = []
    for rel in rng.sample(sorted(TYPES), facts):
        s_kind, o_kind = TYPES[rel]
        table.append((rel, rng.choice(pools[s_kind]), rng.choice(pools[o_kind])))
    return language.render(table, rng)


# WordNet relations (local).

WORDNET_RELATIONS = [
    Relation("hypernym", ("a {s} is a kind of {o} .", "{s} is a type of {o} ."),
             ("what is a {s} a kind of ?", "what type of thing is {s} ?"),
             ("what is a kind of {o} ?", "name a type of {o} ?")),
    Relation("part_holonym", ("a {s} is part of a {o} .", "every {o} has a {s} ."),
             ("what is a {s} part of ?", "what has a {s} as a part ?"),
             ("what is part of a {o} ?", "what does every {o} have ?")),
    Relation("member_holonym", ("{s} is a member of {o} .", "{o} includes {s} ."),
             ("what is {s} a member of ?", "what group includes {s} ?"),
             ("who is a member of {o} ?", "what does {o} include ?")),
]  # fmt: skip
POINTERS = {"@": "hypernym", "#p": "part_holonym", "#m": "member_holonym"}


def wordnet_path() -> Path:
    """`data.noun` in the set-up cache (raises with the set-up command when missing)."""
    path = data_root() / WORDNET
    if not path.exists():
        raise FileNotFoundError(f"WordNet data.noun not found at {path}; set it up with: {WORDNET_SETUP}")
    return path


def parse_wordnet(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]], list[str]]:
    """Parse a WordNet `data.*` file: synset names, (pointer, source offset, target offset) edges, glosses.

    Licence lines start with two spaces. A line is: offset lex_filenum ss_type w_cnt (2-digit hex) then w_cnt
    word/lex_id pairs, p_cnt (3-digit decimal) then p_cnt pointers `symbol offset pos source/target`, then `| gloss`.
    The name of a synset is its first lemma, `_` -> space, lower-cased.
    """
    names, edges, glosses = {}, [], []
    for line in text.splitlines():
        if not line or line.startswith("  "):
            continue
        head, _, gloss = line.partition("|")
        f = head.split()
        offset, w_cnt = f[0], int(f[3], 16)
        names[offset] = f[4].replace("_", " ").lower()
        at = 4 + 2 * w_cnt
        for i in range(int(f[at])):
            symbol, target = f[at + 1 + 4 * i], f[at + 2 + 4 * i]
            if symbol in POINTERS:
                edges.append((symbol, offset, target))
        glosses.append(gloss.strip())
    return names, edges, glosses


def wordnet_facts(text: str, vocab_size: int = 3000) -> tuple[list[Fact], list[str]]:
    """WordNet noun facts whose names use only the `vocab_size` most frequent gloss words (spec 02, 5.2).

    Returns:
        tuple: the facts `(relation, subject, object)` (deduplicated, sorted), and the kept gloss vocabulary.
    """
    names, edges, glosses = parse_wordnet(text)
    counts = Counter(w for g in glosses for w in WORD.findall(g.lower()))
    vocab = [w for w, _ in counts.most_common(vocab_size)]
    known = set(vocab)

    def ok(name: str) -> bool:
        return all(w in known for w in name.split()) and len(name.split()) <= 4

    facts = {(POINTERS[p], names[a], names[b]) for p, a, b in edges if a in names and b in names}
    return sorted(f for f in facts if ok(f[1]) and ok(f[2]) and f[1] != f[2]), vocab


def topics(facts: list[Fact], least: int = 3) -> dict[str, list[Fact]]:
    """Entity -> the facts it takes part in (as subject or object), for entities with at least `least` facts."""
    by: dict[str, list[Fact]] = {}
    for f in facts:
        by.setdefault(f[1], []).append(f)
        by.setdefault(f[2], []).append(f)
    return {e: fs for e, fs in sorted(by.items()) if len(fs) >= least}


def topic_passage(language: Language, facts: list[Fact], rng: random.Random, most: int, max_words: int) -> Passage:
    """A passage around one topic: 3-`most` of its facts, shuffled, dropped from the end until it fits `max_words`."""
    chosen = rng.sample(facts, rng.randint(min(3, len(facts)), min(most, len(facts))))
    while True:
        passage = language.render(chosen, rng)
        if len(passage.words) <= max_words or len(chosen) == 1:
            return passage
        chosen = chosen[:-1]


def split_topics(names: list[str], test_share: float = 0.1, seed: int = 7630) -> tuple[list[str], list[str]]:
    """Disjoint train and test topics (90/10 by default), by a seeded shuffle."""
    names = sorted(names)
    random.Random(seed).shuffle(names)
    cut = round(len(names) * (1 - test_share))
    return names[:cut], names[cut:]
