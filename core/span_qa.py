"""Extractive question answering on a BERT encoder: the full budget's round-trip judge (spec 02, section 5.3).

Rows are `[CLS] question [SEP] passage [SEP]` (segment 1 from the passage on) with every real key visible
(`core.seq2seq` with the `bidirectional` mask, the layout BERT was pre-trained on). A linear head gives start and
end logits per position; positions outside the passage are never chosen. `best_span` picks the highest
start + end score with start <= end < start + max_len in one batched pass; `best_span_naive` loops over every
(start, end) pair and is its reference.

Round trip (Alberti et al., 2019): the QA model answers a generated question on its passage; the pair is valid to
the extent the QA model's answer matches the generated answer (SQuAD EM and F1, `core.data.squad`).
"""

import fcntl
import hashlib
import json
import random

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.data.squad import exact_match, f1
from core.seq2seq import SEP, Batch, Seq2Seq, layout, load_bert
from core.train.lm import LoopConfig, fit_lm


class SpanQA(nn.Module):
    """Start/end logits `[B, T]` over passage positions from a bidirectional `Seq2Seq` encoder."""

    def __init__(self, encoder: Seq2Seq):
        super().__init__()
        if encoder.mask != "bidirectional":
            raise ValueError(f"extractive QA needs the bidirectional mask, not {encoder.mask!r}")
        self.encoder = encoder
        self.head = nn.Linear(encoder.tok.weight.shape[1], 2)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, batch: Batch, passage: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Start and end logits; `passage` `[B, T]` bool marks the passage's positions (others get -inf)."""
        h = self.encoder.hidden(self.encoder.tok(batch.ids), batch.segment_ids, batch.keep)
        start, end = self.head(h).float().unbind(-1)
        return start.masked_fill(~passage, -torch.inf), end.masked_fill(~passage, -torch.inf)


def qa_batch(questions: list[list[int]], passages: list[list[int]]) -> tuple[Batch, torch.Tensor, torch.Tensor]:
    """Packed rows `[CLS] question [SEP] passage [SEP]`, the passage mask `[B, T]` and each passage's first column."""
    batch = layout(questions, [[*p, SEP] for p in passages], packed=True)
    offset = torch.tensor([len(q) + 2 for q in questions])
    cols = torch.arange(batch.ids.shape[1])
    lengths = torch.tensor([len(p) for p in passages])
    passage = (cols >= offset[:, None]) & (cols < (offset + lengths)[:, None])
    return batch, passage, offset


def qa_loss(start: torch.Tensor, end: torch.Tensor, gold_start: torch.Tensor, gold_end: torch.Tensor) -> torch.Tensor:
    """BERT's span loss: the mean of the start and end cross-entropies (gold positions are row columns)."""
    return (F.cross_entropy(start, gold_start) + F.cross_entropy(end, gold_end)) / 2


def best_span(start: torch.Tensor, end: torch.Tensor, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns (s, e) maximising start[s] + end[e] subject to s <= e < s + max_len, per row, batched."""
    t = start.shape[1]
    gap = torch.arange(t)[None, :] - torch.arange(t)[:, None]  # e - s
    ok = ((gap >= 0) & (gap < max_len)).to(start.device)
    score = (start[:, :, None] + end[:, None, :]).masked_fill(~ok, -torch.inf)
    flat = score.flatten(1).argmax(1)
    return flat // t, flat % t


def best_span_naive(start: torch.Tensor, end: torch.Tensor, max_len: int) -> tuple[list[int], list[int]]:
    """`best_span` by a loop over every pair (ties go to the smallest start, then the smallest end)."""
    out_s, out_e = [], []
    for row_s, row_e in zip(start.tolist(), end.tolist(), strict=True):
        best = (-float("inf"), 0, 0)
        for s in range(len(row_s)):
            for e in range(s, min(len(row_e), s + max_len)):
                if row_s[s] + row_e[e] > best[0]:
                    best = (row_s[s] + row_e[e], s, e)
        out_s.append(best[1])
        out_e.append(best[2])
    return out_s, out_e


@torch.no_grad()
def answer(
    model: SpanQA, questions: list[list[int]], passages: list[list[int]], max_len: int, chunk: int = 256
) -> list[list[int]]:
    """The QA model's answer (passage token ids) to each question, in batches of `chunk` rows."""
    device = model.head.weight.device
    model.eval()
    out = []
    for i in range(0, len(questions), chunk):
        batch, passage, offset = qa_batch(questions[i : i + chunk], passages[i : i + chunk])
        start, end = model(batch.to(device), passage.to(device))
        s, e = best_span(start, end, max_len)
        for p, o, a, b in zip(passages[i : i + chunk], offset.tolist(), s.tolist(), e.tolist(), strict=True):
            out.append(list(p[a - o : b - o + 1]))
    return out


# Training and the round-trip model (question_generation's judge at the full budget). `data` is a
# `core.data.qg.QAData`: its BERT folder (`bert`), tokenizer (`tok`), `train` and `dev` examples, `max_a`, `root`.


def train_span_qa(data, rows: list[tuple], config: dict, device: str, seed: int) -> SpanQA:
    """BERT fine-tuned for extractive QA on `(question, passage, start, end)` rows: AdamW, `qa_steps` steps of
    `qa_batch`, lr `qa_lr` with a 10% linear warm-up and a linear decay to 0 (BERT's SQuAD recipe)."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = SpanQA(load_bert(data.bert, "bidirectional", 0.1, data.tok.keep)).to(device).train()
    steps = config["qa_steps"]

    def loss_of(step: int) -> torch.Tensor:
        picked = [rng.choice(rows) for _ in range(config["qa_batch"])]
        batch, passage, offset = qa_batch([list(q) for q, _, _, _ in picked], [list(p) for _, p, _, _ in picked])
        start, end = model(batch.to(device), passage.to(device))
        gold_s = torch.tensor([a for _, _, a, _ in picked]) + offset
        gold_e = torch.tensor([b for _, _, _, b in picked]) + offset
        return qa_loss(start, end, gold_s.to(device), gold_e.to(device))

    fit_lm(model, loss_of, LoopConfig(steps, config["qa_lr"], warmup=steps // 10, schedule="linear"))
    return model.eval()


def dev_scores(model: SpanQA, data) -> tuple[list[float], list[float]]:
    """EM and F1 of a QA model on each dev example (decoded word pieces on both sides)."""
    said = answer(model, [list(e.question) for e in data.dev], [list(e.passage) for e in data.dev], data.max_a)
    pairs = [(data.tok.decode(s), data.tok.decode(list(e.answer))) for s, e in zip(said, data.dev, strict=True)]
    return [exact_match(p, g) for p, g in pairs], [f1(p, g) for p, g in pairs]


def round_trip_model(data, config: dict, device: str, seed: int) -> tuple[SpanQA, dict[str, float]]:
    """The round-trip QA model: BERT fine-tuned for extractive QA on the generator's training examples only.

    Trained once per (data, checkpoint, QA settings) and cached under `$CLAIMBENCH_DATA/question_generation`, with
    a file lock so that trials on one node wait for one training (each node of a cluster trains its own copy with
    the same seed). Returns the model and its record: dev EM/F1, whether this trial trained it, its key (as a
    number, so every trial's record can be compared).
    """
    settings = {k: config[k] for k in ("qa_steps", "qa_lr", "qa_batch", "max_p", "max_a", "max_q", "test_share")}
    key = hashlib.sha256(json.dumps([settings, data.source_key()], sort_keys=True).encode()).hexdigest()[:16]
    folder = data.root / "question_generation"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"round_trip_qa-{key}.pt"
    with open(folder / f"round_trip_qa-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            model = SpanQA(load_bert(data.bert, "bidirectional", 0.1, data.tok.keep))
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            model.to(device).eval()
            trained = 0.0
        else:
            rows = [(e.question, e.passage, e.start, e.end) for e in data.train]
            model = train_span_qa(data, rows, config, device, seed)
            tmp = path.with_suffix(".tmp")
            torch.save({k: v.cpu() for k, v in model.state_dict().items()}, tmp)
            tmp.replace(path)
            trained = 1.0
    em, f1s = dev_scores(model, data)
    return model, {"rtqa/dev_em": float(np.mean(em)), "rtqa/dev_f1": float(np.mean(f1s)), "rtqa/trained": trained,
                   "rtqa/key": float(int(key[:12], 16))}  # fmt: skip
