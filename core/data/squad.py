"""QA data for question generation at the full budget (spec 02, section 5.3); read from local files only.

| files under `$CLAIMBENCH_DATA`               | role                                                      |
|----------------------------------------------|-----------------------------------------------------------|
| `squad/train-v1.1.json`, `squad/dev-v1.1.json` | English: training and Du-style test split; dev           |
| `webqa/WebQA.json`, `webqa/SogouQA.json`     | Chinese (Su's data, `bojone/dgcnn_for_reading_comprehension`) |

Su's Chinese preparation (`webqa_records`): every passage with an answer is cut by `segment` into chunks of at
most 126 characters at the separators `\n。！？!?；;，, ` (coarsest first), and each chunk that contains the answer
becomes one example (the answer's first occurrence). Su holds out every tenth example of a saved random order;
here a seeded order holds out every tenth as the test set and the next tenth as the dev set.

Du et al. (2017) keep SQuAD's dev set as their dev set and hold out articles of the training set as their test set.
Their article list is not available offline, so `split_articles` holds out a fixed share of the training articles
by a seeded hash of the title (the same articles on every machine).

`WordPiece` is BERT's tokeniser (Hugging Face `tokenizers`) over a checkpoint's `vocab.txt`, renumbered so that
the special tokens take the ids 0-4 that `core.seq2seq` uses (`SPECIALS`); `keep` maps each of our ids to its row
in the checkpoint (Su's `keep_tokens`), which `core.seq2seq.load_bert` gathers.

`examples` cuts each (context, question, answer) into a passage window of at most `max_p` word pieces around the
answer: the sentence that holds the answer, grown by whole neighbouring sentences while they fit (Su splits at
punctuation and keeps the chunks that hold the answer); an answer sentence longer than `max_p` is cut to a window
centred on the answer.

`normalize`, `exact_match` and `f1` are the SQuAD 1.1 evaluation's answer comparison (lower case, no punctuation,
no articles, single spaces; F1 over the bag of normalised words).
"""

import hashlib
import json
import random
import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from core.data import data_root

SPECIALS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")  # ids 0-4, as in core.seq2seq
SETUP = (
    "copy train-v1.1.json and dev-v1.1.json (rajpurkar.github.io/SQuAD-explorer) to $CLAIMBENCH_DATA/squad and a "
    "Hugging Face BERT checkpoint (vocab.txt, config.json, pytorch_model.bin) to $CLAIMBENCH_DATA/bert-base-uncased "
    "(bert-base-chinese for webqa)"
)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
SU_SEPS, SU_STRIPS = "\n。！？!?；;，, ", "；;，, "  # Su's chunk separators (coarsest first) and end characters


def squad_files(root: Path | None = None) -> dict[str, Path]:
    """`train` and `dev` SQuAD files under `root/squad` (default `$CLAIMBENCH_DATA`); a one-line error if missing."""
    folder = Path(root or data_root()) / "squad"
    files = {"train": folder / "train-v1.1.json", "dev": folder / "dev-v1.1.json"}
    for path in files.values():
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: {SETUP}")
    return files


def read_squad(path: str | Path) -> list[dict]:
    """Records `{id, title, context, question, answers: [(text, start)]}` from a SQuAD 1.1-format JSON file.

    Raises a one-line `ValueError` for a file that is not SQuAD-shaped or whose answer offsets do not point at
    the answer text.
    """
    path = Path(path)
    try:
        articles = json.loads(path.read_text(encoding="utf8"))["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not SQuAD-format JSON ({type(exc).__name__}: {exc})") from None
    out = []
    for article in articles:
        for para in article["paragraphs"]:
            context = para["context"]
            for qa in para["qas"]:
                answers = [(a["text"], int(a["answer_start"])) for a in qa.get("answers", [])]
                for text, start in answers:
                    if context[start : start + len(text)] != text:
                        raise ValueError(f"{path}: answer {text!r} of question {qa['id']} is not at offset {start}")
                out.append({"id": qa["id"], "title": article.get("title", ""), "context": context,
                            "question": qa["question"], "answers": answers})  # fmt: skip
    return out


def webqa_files(root: Path | None = None) -> list[Path]:
    """Su's WebQA and SogouQA JSON files under `root/webqa`; a one-line error if missing."""
    files = [Path(root or data_root()) / "webqa" / name for name in ("WebQA.json", "SogouQA.json")]
    for path in files:
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: copy WebQA.json and SogouQA.json (bojone/dgcnn_for_reading_comprehension) there"
            )
    return files


def segment(text: str, max_len: int, seps: str = SU_SEPS, strips: str = SU_STRIPS) -> list[str]:
    """Chunks of at most `max_len` characters where the separators allow: split at the first separator, pack the
    pieces (each keeps its separator) greedily, and split a chunk still too long at the next separator. Ends are
    stripped of whitespace and `strips`; a text no separator can cut stays over-long."""
    text = text.strip().strip(strips)
    if not seps or len(text) <= max_len:
        return [text]
    pieces = text.split(seps[0])
    out, chunk = [], ""
    for i, piece in enumerate(pieces):
        if chunk and piece and len(chunk) + len(piece) > max_len - 1:
            out += segment(chunk, max_len, seps[1:], strips)
            chunk = ""
        chunk += piece if i == len(pieces) - 1 else piece + seps[0]
    if chunk:
        out += segment(chunk, max_len, seps[1:], strips)
    return out


def webqa_records(paths: list[Path], max_chars: int = 126, seed: int = 7630) -> dict[str, list[dict]]:
    """Su's examples from WebQA/SogouQA-format files (`[{question, passages: [{passage, answer}]}]`), as
    `read_squad`-style records, split by a seeded order into `train`, `dev` (every tenth from the second) and
    `test` (every tenth from the first)."""
    records = []
    for path in paths:
        try:
            items = json.loads(Path(path).read_text(encoding="utf8"))
            for n, item in enumerate(items):
                for passage in item["passages"]:
                    answer = passage["answer"]
                    for chunk in segment(passage["passage"], max_chars) if answer else []:
                        if answer in chunk:
                            records.append({"id": f"{Path(path).stem}:{n}", "title": f"{Path(path).stem}:{n}",
                                            "context": chunk, "question": item["question"],
                                            "answers": [(answer, chunk.index(answer))]})  # fmt: skip
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not WebQA-format JSON ({type(exc).__name__}: {exc})") from None
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    split = {"train": [], "dev": [], "test": []}
    for rank, i in enumerate(order):
        split["test" if rank % 10 == 0 else "dev" if rank % 10 == 1 else "train"].append(records[i])
    return split


def split_articles(titles: list[str], test_share: float = 0.1, seed: int = 7630) -> set[str]:
    """The held-out (test) titles: those whose seeded sha256 falls below `test_share` (order-free, stable)."""

    def unit(title: str) -> float:
        return int.from_bytes(hashlib.sha256(f"{seed}:{title}".encode()).digest()[:8], "big") / 2.0**64

    return {t for t in set(titles) if unit(t) < test_share}


# Tokenisation.


class WordPiece:
    """BERT's WordPiece tokeniser over a checkpoint's `vocab.txt`, with the special tokens renumbered to 0-4."""

    def __init__(self, vocab_path: str | Path, lowercase: bool = True):
        from tokenizers import BertWordPieceTokenizer  # the full budget's dependency; imported where it is used

        tokens = Path(vocab_path).read_text(encoding="utf8").splitlines()
        rows: dict[str, int] = {}
        for i, t in enumerate(tokens):
            rows.setdefault(t, i)  # a repeated line keeps its first row
        missing = [s for s in SPECIALS if s not in rows]
        if missing:
            raise ValueError(f"{vocab_path} lacks the special token {missing[0]}")
        self.keep = [rows[s] for s in SPECIALS] + [i for t, i in rows.items() if t not in SPECIALS]
        self.tokens = [tokens[i] for i in self.keep]
        self.ours = {row: j for j, row in enumerate(self.keep)}
        self._tok = BertWordPieceTokenizer(rows, lowercase=lowercase, strip_accents=lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Our ids and the character span of each word piece in `text` (no special tokens)."""
        enc = self._tok.encode(text, add_special_tokens=False)
        return [self.ours[i] for i in enc.ids], list(enc.offsets)

    def decode(self, ids: list[int]) -> str:
        """Text of our ids: word pieces joined, `##` continuations glued to the piece before."""
        out = ""
        for t in (self.tokens[i] for i in ids):
            out += t[2:] if t.startswith("##") and out else (" " + t if out else t)
        return out


# Passage windows.


@dataclass(frozen=True)
class Example:
    """One (passage window, answer, question) with the answer's word-piece span `[start, end]` in the passage."""

    context_id: str
    passage: tuple[int, ...]
    answer: tuple[int, ...]
    question: tuple[int, ...]
    start: int
    end: int


def _window(offsets: list[tuple[int, int]], sentences: list[tuple[int, int]], a: int, b: int, width: int) -> tuple[int, int]:
    """Word-piece range [lo, hi) of whole sentences around pieces a..b that fits `width` (or a centred cut)."""
    piece_sentence = []
    s = 0
    for start, _ in offsets:
        while s + 1 < len(sentences) and start >= sentences[s + 1][0]:
            s += 1
        piece_sentence.append(s)
    first, last = piece_sentence[a], piece_sentence[b]
    bounds = {}
    for i, s in enumerate(piece_sentence):
        lo, hi = bounds.get(s, (i, i + 1))
        bounds[s] = (min(lo, i), max(hi, i + 1))
    lo, hi = bounds[first][0], bounds[last][1]
    if hi - lo > width:  # the answer's sentences alone are too long: a window centred on the answer
        lo = max(0, min(len(offsets) - width, (a + b + 1) // 2 - width // 2))
        return lo, min(len(offsets), lo + width)
    grown = True
    while grown:
        grown = False
        for s in (piece_sentence[lo - 1] if lo > 0 else None, piece_sentence[hi] if hi < len(offsets) else None):
            if s is not None and max(hi, bounds[s][1]) - min(lo, bounds[s][0]) <= width:
                lo, hi, grown = min(lo, bounds[s][0]), max(hi, bounds[s][1]), True
    return lo, hi


def examples(records: list[dict], tok: WordPiece, max_p: int, max_a: int, max_q: int) -> tuple[list[Example], dict]:
    """One `Example` per (record, first answer); answers longer than `max_a` pieces are skipped, questions cut to
    `max_q`. Returns the examples and counts (`kept`, `long_answer`, `no_piece`)."""
    out, counts = [], Counter()
    cache: dict[str, tuple] = {}
    for rec in records:
        context = rec["context"]
        if context not in cache:
            ids, offsets = tok.encode(context)
            starts = [0] + [m.end() for m in SENTENCE_END.finditer(context)]
            cache[context] = ids, offsets, [(s, e) for s, e in zip(starts, [*starts[1:], len(context)], strict=True)]
        ids, offsets, sentences = cache[context]
        text, char = rec["answers"][0]
        inside = [i for i, (s, e) in enumerate(offsets) if s < char + len(text) and e > char]
        if not inside:
            counts["no_piece"] += 1
            continue
        a, b = inside[0], inside[-1]
        if b - a + 1 > max_a:
            counts["long_answer"] += 1
            continue
        lo, hi = _window(offsets, sentences, a, b, max_p)
        question = tok.encode(rec["question"])[0][:max_q]
        out.append(Example(f"{rec['title']}|{hash_text(context)}|{lo}", tuple(ids[lo:hi]), tuple(ids[a : b + 1]),
                           tuple(question), a - lo, b - lo))  # fmt: skip
        counts["kept"] += 1
    return out, dict(counts)


def hash_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# SQuAD 1.1 answer comparison.


def normalize(text: str) -> str:
    """Lower case, punctuation removed, the articles a/an/the removed, whitespace collapsed."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize(prediction) == normalize(gold))


def f1(prediction: str, gold: str) -> float:
    """F1 between the bags of normalised words (0 when they share none, also when both are empty)."""
    p, g = normalize(prediction).split(), normalize(gold).split()
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)
