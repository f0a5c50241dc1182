"""Extractive question answering on a BERT encoder: the full budget's round-trip judge (spec 02, section 5.3).

Rows are `[CLS] question [SEP] passage [SEP]` (segment 1 from the passage on) with every real key visible
(`core.seq2seq` with the `bidirectional` mask, the layout BERT was pre-trained on). A linear head gives start and
end logits per position; positions outside the passage are never chosen. `best_span` picks the highest
start + end score with start <= end < start + max_len in one batched pass; `best_span_naive` loops over every
(start, end) pair and is its reference.

Round trip (Alberti et al., 2019): the QA model answers a generated question on its passage; the pair is valid to
the extent the QA model's answer matches the generated answer (SQuAD EM and F1, `core.data.squad`).
"""

import torch
import torch.nn.functional as F
from torch import nn

from core.seq2seq import SEP, Batch, Seq2Seq, layout


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
