"""UniLM sequence-to-sequence in one Transformer (spec 02): passage -> (answer, question), and its controls.

Layout `[CLS] passage [SEP] first [SEP] second [SEP]` (first/second: answer/question in order `AQ`, question/answer
in `QA`); segment ids 0 up to the passage's [SEP], 1 after. `attention_mask` builds which keys each query sees:
- `unilm`: with c = cumsum(segment ids), key j is visible to query i iff c_j <= c_i and j is not padding. Passage
  tokens see the passage only; target token t sees the passage and targets <= t.
- `causal`: every token sees the tokens before it (a decoder-only LM over the whole sequence; exploratory).
- `bidirectional`: every non-padding key (the Q-C1 control: target t sees t + 1, so teacher forcing copies it).
- `unilm_nopad`: the UniLM mask without the key-padding term (the Q-C2 control: final targets see padding).

Batches use a two-block layout so that generation can be batched across passages of different lengths: block A
is `[CLS] passage` padded to a common width, block B is `[SEP] targets` padded; padding between the blocks is
invisible to every query, and positions count real tokens only (`cumsum(keep) - 1`), so each row computes exactly
what its packed layout would (a test checks this). Decoding appends to block B, the same column for every row.

`Seq2Seq` is the project's `core.transformer.Block` stack with token, position and segment embeddings and BERT's
tied head ln(gelu(W h)) E^T + b; `post_norm=True`, `eps=1e-12` is BERT's own layout, which `load_bert` fills from
a Hugging Face BERT checkpoint (full budget).
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.attention import ATTENTION
from core.transformer import Block

PAD, CLS, SEP, MASK, UNK = range(5)
SPECIALS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")
MASKS = ("unilm", "causal", "bidirectional", "unilm_nopad")
ORDERS = ("AQ", "QA")
NEVER = (PAD, CLS, MASK)  # never generated


def unilm_mask(segment_ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """`[B, Tq, Tk]` bool: key j visible to query i iff cumsum(s)_j <= cumsum(s)_i and j is not padding."""
    c = segment_ids.cumsum(dim=1)
    return (c[:, None, :] <= c[:, :, None]) & keep[:, None, :]


def attention_mask(kind: str, segment_ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """`[B, Tq, Tk]` bool visibility of one of `MASKS` (see the module docstring)."""
    if kind == "unilm":
        return unilm_mask(segment_ids, keep)
    if kind == "unilm_nopad":
        c = segment_ids.cumsum(dim=1)
        return c[:, None, :] <= c[:, :, None]
    t = keep.shape[1]
    if kind == "causal":
        order = torch.ones(t, t, dtype=torch.bool, device=keep.device).tril()
        return order[None] & keep[:, None, :]
    if kind == "bidirectional":
        return keep[:, None, :].expand(-1, t, -1)
    raise ValueError(f"unknown mask {kind!r}; expected one of {MASKS}")


def target_positions(segment_ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """`[B, T - 1]` bool: position t is trained to predict token t + 1 when t + 1 is a real target."""
    return (segment_ids[:, 1:] == 1) & keep[:, 1:]


def seq2seq_loss(logits: torch.Tensor, ids: torch.Tensor, segment_ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over target tokens (the spec's shift: y = ids[:, 1:], logits[:, :-1])."""
    y_mask = target_positions(segment_ids, keep).to(logits.dtype)
    ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    return (ce * y_mask).sum() / y_mask.sum()


@dataclass
class Batch:
    """Rows `ids`, `segment_ids`, `keep` `[B, T]`; block B (targets) starts at column `split` (-1: packed rows)."""

    ids: torch.Tensor
    segment_ids: torch.Tensor
    keep: torch.Tensor
    split: int

    def to(self, device) -> "Batch":
        return Batch(self.ids.to(device), self.segment_ids.to(device), self.keep.to(device), self.split)


def target_ids(first: list[int], second: list[int]) -> list[int]:
    """The target block after the passage's [SEP]: first [SEP] second [SEP]."""
    return [*first, SEP, *second, SEP]


def layout(
    passages: list[list[int]], targets: list[list[int]] | None = None, width: int | None = None, packed: bool = False
) -> Batch:
    """Two-block batch: block A = [CLS] passage (padded to `1 + width`), block B = [SEP] target (padded).

    With `packed`, each row is `[CLS] passage [SEP] target` with padding at the end only (fewer columns for
    training and scoring; the same function of each row, a test checks it); generation needs the two blocks.

    Args:
        passages (list[list[int]]):
            Token ids of each passage, without special tokens.
        targets (list[list[int]] | None):
            Each row's targets (`target_ids`), or None for generation (block B is the [SEP] alone).
        width (int | None):
            Passage width of block A (default: the longest passage).

    Returns:
        Batch: CPU tensors.
    """
    width = max(map(len, passages)) if width is None else width
    if max(map(len, passages)) > width:
        raise ValueError(f"a passage of {max(map(len, passages))} tokens does not fit the width {width}")
    targets = targets if targets is not None else [[] for _ in passages]
    if packed:
        rows = [[CLS, *p, SEP, *y] for p, y in zip(passages, targets, strict=True)]
        ids = torch.full((len(rows), max(map(len, rows))), PAD, dtype=torch.long)
        seg = torch.zeros_like(ids)
        keep = torch.zeros_like(ids, dtype=torch.bool)
        for r, (row, p) in enumerate(zip(rows, passages, strict=True)):
            ids[r, : len(row)] = torch.tensor(row)
            keep[r, : len(row)] = True
            seg[r, len(p) + 2 : len(row)] = 1
        return Batch(ids, seg, keep, -1)
    t_b = 1 + max(map(len, targets))
    n = len(passages)
    ids = torch.full((n, 1 + width + t_b), PAD, dtype=torch.long)
    seg = torch.zeros_like(ids)
    keep = torch.zeros_like(ids, dtype=torch.bool)
    for r, (p, y) in enumerate(zip(passages, targets, strict=True)):
        ids[r, : 1 + len(p)] = torch.tensor([CLS, *p])
        keep[r, : 1 + len(p)] = True
        b = 1 + width
        ids[r, b : b + 1 + len(y)] = torch.tensor([SEP, *y])
        keep[r, b : b + 1 + len(y)] = True
        seg[r, b + 1 : b + 1 + len(y)] = 1
    return Batch(ids, seg, keep, 1 + width)


class Seq2Seq(nn.Module):
    """Encoder-decoder in one Transformer with a chosen attention mask; `forward(ids, seg, keep) -> [B, T, vocab]`."""

    def __init__(
        self,
        vocab: int,
        context: int,
        d_model: int,
        heads: int,
        layers: int,
        ffn: int,
        mask: str = "unilm",
        dropout: float = 0.0,
        post_norm: bool = False,
        eps: float = 1e-5,
        attention: str = "sdpa",
    ):
        super().__init__()
        if mask not in MASKS:
            raise ValueError(f"unknown mask {mask!r}; expected one of {MASKS}")
        if ffn % d_model:
            raise ValueError(f"ffn {ffn} is not a multiple of d_model {d_model}")
        self.mask, self.context = mask, context
        self.tok, self.pos, self.seg = nn.Embedding(vocab, d_model), nn.Embedding(context, d_model), nn.Embedding(2, d_model)
        self.ln_in = nn.LayerNorm(d_model, eps=eps)
        self.blocks = nn.ModuleList(
            Block(d_model, heads, attention, False, ffn // d_model, dropout, post_norm, eps) for _ in range(layers)
        )
        self.ln = nn.Identity() if post_norm else nn.LayerNorm(d_model, eps=eps)  # BERT has no final norm
        self.transform, self.ln_head = nn.Linear(d_model, d_model), nn.LayerNorm(d_model, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab))
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        for table in (self.tok, self.pos, self.seg):  # BERT's initialisation (the tied head starts near uniform)
            nn.init.normal_(table.weight, std=0.02)

    def embed(self, e: torch.Tensor, positions: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
        """The first block's input: normalised token + position + segment embeddings."""
        if int(positions.max()) >= self.context:
            raise ValueError(f"{int(positions.max()) + 1} positions exceed the model's context {self.context}")
        return self.drop(self.ln_in(e + self.pos(positions) + self.seg(segment_ids)))

    def hidden(self, e: torch.Tensor, segment_ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Final states `[B, T, D]` from token embeddings `e = tok(ids)` (a per-position leaf in the leak tests)."""
        x = self.embed(e, (keep.long().cumsum(dim=1) - 1).clamp_min(0), segment_ids)
        allowed = attention_mask(self.mask, segment_ids, keep)
        for block in self.blocks:
            x = block(x, allowed=allowed)
        return self.ln(x)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Tied output head on states `[..., D]`."""
        return self.ln_head(F.gelu(self.transform(h))) @ self.tok.weight.T + self.bias

    def forward(self, ids: torch.Tensor, segment_ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.logits(self.hidden(self.tok(ids), segment_ids, keep))

    def loss(self, batch: Batch) -> torch.Tensor:
        """`seq2seq_loss`, with the output head run only where there is a target."""
        h = self.hidden(self.tok(batch.ids), batch.segment_ids, batch.keep)
        where = target_positions(batch.segment_ids, batch.keep)
        return F.cross_entropy(self.logits(h[:, :-1][where]), batch.ids[:, 1:][where])


@torch.no_grad()
def target_nll(model: Seq2Seq, batch: Batch) -> torch.Tensor:
    """Teacher-forced NLL per target token of each row, `[B]` (nats)."""
    h = model.hidden(model.tok(batch.ids), batch.segment_ids, batch.keep)
    where = target_positions(batch.segment_ids, batch.keep)
    ce = torch.zeros(where.shape, dtype=h.dtype, device=h.device)
    ce[where] = F.cross_entropy(model.logits(h[:, :-1][where]), batch.ids[:, 1:][where], reduction="none")
    return ce.sum(1) / where.sum(1)


# Decoding.


def top_p_sample(logits: torch.Tensor, top_p: float, gen: torch.Generator) -> torch.Tensor:
    """Nucleus sampling per row of `[N, V]` logits: the smallest set of most likely tokens whose mass reaches
    `top_p` (the most likely token always), renormalised. Draws on the CPU with `gen`."""
    probs = logits.float().softmax(-1).cpu()
    sorted_p, order = probs.sort(dim=-1, descending=True)
    inside = (sorted_p.cumsum(-1) - sorted_p) < top_p
    choice = torch.multinomial(sorted_p * inside, 1, generator=gen)
    return order.gather(1, choice)[:, 0].to(logits.device)


def _span_allowed(passage: torch.Tensor, match: torch.Tensor, started: torch.Tensor, vocab: int) -> torch.Tensor:
    """`[N, V]` tokens that keep an answer a contiguous passage span: any passage word to start, then the word after
    a position where the answer so far ends (`match [N, P]`); [SEP] once the answer is non-empty."""
    words = passage >= len(SPECIALS)
    nxt = torch.zeros_like(match)
    nxt[:, 1:] = match[:, :-1]
    cand = torch.where(started[:, None], nxt, torch.ones_like(match)) & words
    allowed = torch.zeros(len(passage), vocab + 1, dtype=torch.bool, device=passage.device)
    allowed.scatter_(1, torch.where(cand, passage, vocab), True)
    allowed = allowed[:, :vocab]
    allowed[:, SEP] = started
    return allowed


@dataclass(frozen=True)
class Decoding:
    """How each part is chosen: `sample` (top-p), `greedy` or `beam` (width `beam`), and whether answers must be
    passage spans (sampled or greedy answers only)."""

    answer: str
    question: str
    span: bool = False
    top_p: float = 0.95
    beam: int = 1
    """Beam width of a part decoded with `beam`."""


DECODINGS = {
    "su": Decoding("sample", "greedy"),
    "greedy_both": Decoding("greedy", "greedy"),
    "sample_both": Decoding("sample", "sample"),
    "su_span": Decoding("sample", "greedy", span=True),
    "greedy_span": Decoding("greedy", "greedy", span=True),  # for the batched-vs-loop test
    "beam_both": Decoding("beam", "beam", beam=3),
}


@torch.no_grad()
def generate(
    model: Seq2Seq,
    passages: list[list[int]],
    order: str,
    decoding: Decoding,
    max_answer: int,
    max_question: int,
    gen: torch.Generator,
    width: int | None = None,
    cache: bool | None = None,
    prefix: list[list[int]] | None = None,
    until: int = 2,
) -> list[tuple[list[int], list[int]]]:
    """(answer, question) token ids for each passage, decoded in one batch (no per-passage loop).

    `prefix` gives each row's finished first part (then only the second is decoded); `until=1` stops after the
    first part (the second comes back empty). `decode_pairs` uses both to put a beam search on either part.

    With `cache` (the default for the UniLM and causal masks, whose earlier states never see later tokens), every
    layer keeps its keys and values and each new token costs one position (`_prefill`, `_step`); without it
    (required for the bidirectional control) the whole sequence is re-run for every token.

    Generation ends at the second generated [SEP]; a part that reaches its maximum length gets its [SEP] forced.
    [PAD], [CLS] and [MASK] are never generated. With `decoding.span`, answer tokens are restricted to continue a
    span of the passage (and the answer cannot be empty). Rows that have finished add padding, which no other row
    can see.
    """
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; expected one of {ORDERS}")
    device = model.bias.device
    base = layout(passages, width=width).to(device)
    n, vocab = len(passages), model.bias.shape[0]
    kinds = ("answer", "question") if order == "AQ" else ("question", "answer")
    limits = {"answer": max_answer, "question": max_question}
    passage = base.ids[:, 1 : base.split]
    ids, seg, keep = _prompt(base, prefix)
    start = ids.shape[1]
    part = torch.full((n,), 0 if prefix is None else 1, dtype=torch.long, device=device)  # 0: first, 1: second
    length = torch.zeros(n, dtype=torch.long, device=device)
    match = torch.zeros_like(passage, dtype=torch.bool)
    cache = model.mask in CACHEABLE if cache is None else cache
    if cache and model.mask not in CACHEABLE:
        raise ValueError(f"mask {model.mask!r} lets earlier positions see later ones; it cannot decode with a cache")
    if cache:
        h, kv = _prefill(model, ids, seg, keep)
    else:
        h = model.hidden(model.tok(ids), seg, keep)[:, -1]
    for _ in range(max_answer + max_question + 2):
        logits = model.logits(h).float()
        logits[:, list(NEVER)] = -math.inf
        token = torch.full((n,), PAD, dtype=torch.long, device=device)
        for p, kind in enumerate(kinds):
            rows = part == p
            if not rows.any():
                continue
            lg = logits[rows]
            full = length[rows] >= limits[kind]
            if kind == "answer" and decoding.span:
                lg = lg.masked_fill(~_span_allowed(passage[rows], match[rows], length[rows] > 0, vocab), -math.inf)
            lg[full] = -math.inf
            lg[full, SEP] = 0.0
            mode = decoding.answer if kind == "answer" else decoding.question
            token[rows] = lg.argmax(-1) if mode == "greedy" else top_p_sample(lg, decoding.top_p, gen)
            if kind == "answer" and decoding.span:
                hit = passage[rows] == token[rows][:, None]
                prev = torch.zeros_like(hit)
                prev[:, 1:] = match[rows][:, :-1]
                match[rows] = torch.where((length[rows] > 0)[:, None], prev & hit, hit)
        live = part < until
        is_sep = live & (token == SEP)
        length = torch.where(is_sep, 0, length + live.long())
        part = part + is_sep.long()
        ids = torch.cat([ids, token[:, None]], dim=1)
        seg = torch.cat([seg, live.long()[:, None]], dim=1)
        keep = torch.cat([keep, live[:, None]], dim=1)
        if not (part < until).any():
            break
        if cache:
            h, kv = _step(model, token, keep, live, kv)
        else:
            h = model.hidden(model.tok(ids), seg, keep)[:, -1]
    pairs = []
    for r, (row, kept) in enumerate(zip(ids[:, start:].tolist(), keep[:, start:].tolist(), strict=True)):
        made = [t for t, k in zip(row, kept, strict=True) if k]
        first, second = split_parts(made) if prefix is None else (list(prefix[r]), split_parts(made)[0])
        pairs.append((first, second) if order == "AQ" else (second, first))
    return pairs


def _prompt(base: Batch, prefix: list[list[int]] | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The generation prompt: block A, then block B = [SEP] (first part [SEP])? with the first parts right-aligned
    (padding between the blocks is invisible, positions count real tokens), so every row's last column is real."""
    ids, seg, keep = base.ids, base.segment_ids, base.keep
    if prefix is None:
        return ids, seg, keep
    tail = 1 + max(map(len, prefix))
    extra = torch.full((len(prefix), tail), PAD, dtype=torch.long)
    on = torch.zeros_like(extra, dtype=torch.bool)
    for r, first in enumerate(prefix):
        extra[r, tail - len(first) - 1 :] = torch.tensor([*first, SEP], dtype=torch.long)
        on[r, tail - len(first) - 1 :] = True
    extra, on = extra.to(ids.device), on.to(ids.device)
    return torch.cat([ids, extra], 1), torch.cat([seg, on.long()], 1), torch.cat([keep, on], 1)


@torch.no_grad()
def beam_search(
    model: Seq2Seq, passages: list[list[int]], prefix: list[list[int]] | None, max_len: int, k: int, width: int | None = None
) -> list[list[int]]:
    """The most likely next part (ending at [SEP]) of each row, by a batched beam search of width k with the cache.

    `prefix` None: the first part; else the second part after each row's given first part. The score is the sum
    of log-probabilities over the allowed tokens (never [PAD], [CLS], [MASK]); a part at `max_len` gets its [SEP]
    forced (at no cost). Scores only fall, so running every row until its best beam has ended returns what
    bert4keras' `beam_search` returns (it stops when the top-scoring beam ends). `beam_search_naive` is the
    per-row reference.
    """
    if model.mask not in CACHEABLE:
        raise ValueError(f"beam search decodes with a cache; mask {model.mask!r} cannot")
    device, n, vocab = model.bias.device, len(passages), model.bias.shape[0]
    ids, seg, keep = _prompt(layout(passages, width=width).to(device), prefix)
    h, kv = _prefill(model, ids, seg, keep)
    rows = torch.arange(n, device=device).repeat_interleave(k)
    h, keep = h[rows], keep[rows]
    kv = [(a[rows], b[rows]) for a, b in kv]
    score = torch.full((n, k), -math.inf, device=device)
    score[:, 0] = 0.0  # one live beam to start
    score = score.flatten()
    done = torch.zeros(n * k, dtype=torch.bool, device=device)
    length = torch.zeros(n * k, dtype=torch.long, device=device)
    tokens = torch.zeros(n * k, 0, dtype=torch.long, device=device)
    for _ in range(max_len + 1):
        logp = model.logits(h).float()
        logp[:, list(NEVER)] = -math.inf
        logp = logp.log_softmax(-1)
        full = length >= max_len
        logp[full] = -math.inf
        logp[full, SEP] = 0.0
        logp[done] = -math.inf
        logp[done, PAD] = 0.0  # an ended beam keeps its score
        cand = (score[:, None] + logp).view(n, k * vocab)
        best, where = cand.topk(k, dim=1)
        origin = (torch.arange(n, device=device)[:, None] * k + where // vocab).flatten()
        token = (where % vocab).flatten()
        score, was_done = best.flatten(), done[origin]
        tokens = torch.cat([tokens[origin], token[:, None]], 1)
        live = ~was_done
        done = was_done | (token == SEP)
        length = length[origin] + live.long()
        kv = [(a[origin], b[origin]) for a, b in kv]
        keep = torch.cat([keep[origin], live[:, None]], 1)
        if done.view(n, k)[:, 0].all():  # topk sorts: beam 0 is each row's best
            break
        h, kv = _step(model, token, keep, live, kv)
    out = []
    for row in tokens.view(n, k, -1)[:, 0].tolist():
        out.append(row[: row.index(SEP)] if SEP in row else row)
    return out


@torch.no_grad()
def beam_search_naive(model: Seq2Seq, passage: list[int], first: list[int] | None, max_len: int, k: int) -> list[int]:
    """`beam_search` for one row by recomputing the packed sequence of every hypothesis at every step."""
    head = [CLS, *passage, SEP, *((first or []) + [SEP] if first is not None else [])]
    beams = [(0.0, [], False)]
    for _ in range(max_len + 1):
        cands = []
        for sc, toks, ended in beams:
            if ended:
                cands.append((sc, toks + [PAD], True))
                continue
            seq = head + toks
            seg = [0] * (len(passage) + 2) + [1] * (len(seq) - len(passage) - 2)
            x = torch.tensor([seq], device=model.bias.device)
            logits = model(x, torch.tensor([seg], device=x.device), torch.ones_like(x, dtype=torch.bool))[0, -1].float()
            logits[list(NEVER)] = -math.inf
            logp = logits.log_softmax(-1)
            if len(toks) >= max_len:
                cands.append((sc, toks + [SEP], True))
                continue
            for v in range(len(logp)):
                if logp[v] > -math.inf:
                    cands.append((sc + float(logp[v]), toks + [v], v == SEP))
        beams = sorted(cands, key=lambda c: -c[0])[:k]
        if beams[0][2]:
            break
    toks = beams[0][1]
    return toks[: toks.index(SEP)] if SEP in toks else toks


def decode_pairs(
    model: Seq2Seq,
    passages: list[list[int]],
    order: str,
    decoding: Decoding,
    max_answer: int,
    max_question: int,
    gen: torch.Generator,
    width: int | None = None,
) -> list[tuple[list[int], list[int]]]:
    """(answer, question) per passage under any `Decoding`: `generate` when no part uses a beam; else the first
    part by beam search or by `generate(until=1)`, then the second by beam search or by `generate(prefix=...)`."""
    kinds = ("answer", "question") if order == "AQ" else ("question", "answer")
    modes = [getattr(decoding, kind) for kind in kinds]
    if "beam" not in modes:
        return generate(model, passages, order, decoding, max_answer, max_question, gen, width)
    if decoding.span and decoding.answer == "beam":
        raise ValueError("the span constraint applies to sampled or greedy answers only")
    limits = {"answer": max_answer, "question": max_question}
    raw = lambda pairs: [p if order == "AQ" else p[::-1] for p in pairs]  # noqa: E731  # (first, second)
    if modes[0] == "beam":
        firsts = beam_search(model, passages, None, limits[kinds[0]], decoding.beam, width)
    else:
        firsts = [f for f, _ in raw(generate(model, passages, order, decoding, max_answer, max_question, gen, width, until=1))]
    if modes[1] == "beam":
        seconds = beam_search(model, passages, firsts, limits[kinds[1]], decoding.beam, width)
    else:
        made = generate(model, passages, order, decoding, max_answer, max_question, gen, width, prefix=firsts)
        seconds = [s for _, s in raw(made)]
    return [(f, s) if order == "AQ" else (s, f) for f, s in zip(firsts, seconds, strict=True)]


CACHEABLE = ("unilm", "causal")


def _attend(block: Block, x: torch.Tensor, past: tuple | None, allowed: torch.Tensor):
    """One block on positions `x [N, t, D]` whose queries see the cached keys and values `past` and their own
    (`allowed [N, t, T_past + t]`); returns the block's output and the extended cache. Pre- or post-norm."""
    sa, (n, t, d) = block.attn, x.shape
    a_in = x if block.post_norm else block.ln1(x)
    q, k, v = sa.qkv(a_in).view(n, t, 3, sa.heads, d // sa.heads).permute(2, 0, 3, 1, 4)
    if past is not None:
        k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
    o = sa.out(ATTENTION[sa.attention](q, k, v, allowed=allowed).transpose(1, 2).reshape(n, t, d))
    if block.post_norm:
        x = block.ln1(x + o)
        return block.ln2(x + block.mlp(x)), (k, v)
    x = x + o
    return x + block.mlp(block.ln2(x)), (k, v)


def _prefill(model: Seq2Seq, ids: torch.Tensor, seg: torch.Tensor, keep: torch.Tensor):
    """The last column's final state and every layer's keys and values of the prompt."""
    x = model.embed(model.tok(ids), (keep.long().cumsum(dim=1) - 1).clamp_min(0), seg)
    allowed, kv = attention_mask(model.mask, seg, keep), []
    for block in model.blocks:
        x, past = _attend(block, x, None, allowed)
        kv.append(past)
    return model.ln(x[:, -1]), kv


def _step(model: Seq2Seq, token: torch.Tensor, keep: torch.Tensor, live: torch.Tensor, kv: list):
    """Append one token per row (`keep` already includes it): a live row's new token is a target (segment 1) at
    the next real position and sees every real earlier token; a finished row's padding sees nothing it keeps."""
    positions = (keep.long().sum(dim=1, keepdim=True) - 1).clamp_min(0)
    x = model.embed(model.tok(token[:, None]), positions, live.long()[:, None])
    allowed, out = keep[:, None, :], []
    for block, past in zip(model.blocks, kv, strict=True):
        x, past = _attend(block, x, past, allowed)
        out.append(past)
    return model.ln(x[:, -1]), out


def split_parts(tokens: list[int]) -> tuple[list[int], list[int]]:
    """The two parts of generated targets `first [SEP] second [SEP]` (a missing [SEP] ends a part at the end)."""
    cut = tokens.index(SEP) if SEP in tokens else len(tokens)
    rest = tokens[cut + 1 :]
    return tokens[:cut], rest[: rest.index(SEP)] if SEP in rest else rest


@torch.no_grad()
def generate_naive(
    model: Seq2Seq, passage: list[int], order: str, decoding: Decoding, max_answer: int, max_question: int
) -> tuple[list[int], list[int]]:
    """Greedy reference for `generate`: one passage, the packed layout, re-run from scratch at every token, and the
    span constraint checked by brute force over the passage's substrings."""
    if decoding.answer != "greedy" or decoding.question != "greedy":
        raise ValueError("the reference decodes greedily only")
    kinds = ("answer", "question") if order == "AQ" else ("question", "answer")
    limits = {"answer": max_answer, "question": max_question}
    parts: list[list[int]] = [[], []]
    spans = {tuple(passage[i:j]) for i in range(len(passage)) for j in range(i + 1, len(passage) + 1)}
    for p, kind in enumerate(kinds):
        while True:
            seq = [CLS, *passage, SEP, *(parts[0] + [SEP] if p == 1 else []), *parts[p]]
            seg = [0] * (len(passage) + 2) + [1] * (len(seq) - len(passage) - 2)
            ids = torch.tensor([seq], device=model.bias.device)
            logits = model(ids, torch.tensor([seg], device=ids.device), torch.ones_like(ids, dtype=torch.bool))[0, -1]
            logits = logits.float().clone()
            logits[list(NEVER)] = -math.inf
            if kind == "answer" and decoding.span:
                for v in range(len(logits)):
                    ok = (v == SEP and parts[p]) or (v != SEP and tuple(parts[p] + [v]) in spans)
                    if not ok:
                        logits[v] = -math.inf
            if len(parts[p]) >= limits[kind]:
                break
            token = int(logits.argmax())
            if token == SEP:
                break
            parts[p].append(token)
    return (parts[0], parts[1]) if order == "AQ" else (parts[1], parts[0])


# Exact leak tests (float64, autograd).


def dependence(model: Seq2Seq, batch: Batch, seed: int = 0) -> torch.Tensor:
    """`[B, T, T]`: largest |d (logit_i . w_i) / d e_j| over the model dimension, e = tok(ids) a per-position leaf.

    Each logit vector is contracted with a random vector so that contributions cannot cancel. Run it in float64
    and eval mode; entry (i, j) is exactly 0 when output i cannot depend on input j.
    """
    e = model.tok(batch.ids).detach().requires_grad_()
    logits = model.logits(model.hidden(e, batch.segment_ids, batch.keep))
    w = torch.randn(logits.shape, generator=torch.Generator().manual_seed(seed), dtype=logits.dtype).to(logits.device)
    out = torch.zeros(batch.ids.shape + batch.ids.shape[1:], dtype=logits.dtype)
    for i in range(batch.ids.shape[1]):
        (g,) = torch.autograd.grad((logits[:, i] * w[:, i]).sum(), e, retain_graph=True)
        out[:, i] = g.abs().amax(-1).cpu()
    return out


def leaks(model: Seq2Seq, batch: Batch, seed: int = 0) -> dict[str, float]:
    """The spec's exact leak tests on real (non-padding) queries:

    - `future`: largest dependence of a target output t on a later target input t' > t (Q-C1);
    - `padding`: largest dependence of any real output on a padded input (Q-C2);
    - `passage_on_target`: largest dependence of a passage output on any target input.
    """
    dep = dependence(model, batch, seed)
    seg, keep = batch.segment_ids.cpu(), batch.keep.cpu()
    c = seg.cumsum(1)
    real_q = keep[:, :, None]
    target_q = (seg == 1)[:, :, None] & real_q
    later = c[:, None, :] > c[:, :, None]
    passage_q = (c == 0)[:, :, None] & real_q
    target_k = ((seg == 1) & keep)[:, None, :]

    def worst(where: torch.Tensor) -> float:
        return float((dep * where).max())

    return {
        "future": worst(target_q & later & keep[:, None, :]),
        "padding": worst(real_q & ~keep[:, None, :]),
        "passage_on_target": worst(passage_q & target_k),
    }


# BERT weights (full budget): a Hugging Face `BertForMaskedLM` / `BertForPreTraining` checkpoint directory.


def _bert_names(layers: int) -> dict[str, str]:
    """Our parameter name -> the checkpoint's (query/key/value are concatenated into `qkv` separately)."""
    names = {
        "tok.weight": "bert.embeddings.word_embeddings.weight",
        "pos.weight": "bert.embeddings.position_embeddings.weight",
        "seg.weight": "bert.embeddings.token_type_embeddings.weight",
        "ln_in.weight": "bert.embeddings.LayerNorm.weight",
        "ln_in.bias": "bert.embeddings.LayerNorm.bias",
        "transform.weight": "cls.predictions.transform.dense.weight",
        "transform.bias": "cls.predictions.transform.dense.bias",
        "ln_head.weight": "cls.predictions.transform.LayerNorm.weight",
        "ln_head.bias": "cls.predictions.transform.LayerNorm.bias",
        "bias": "cls.predictions.bias",
    }
    for i in range(layers):
        ours, theirs = f"blocks.{i}.", f"bert.encoder.layer.{i}."
        for a, b in (("attn.out", "attention.output.dense"), ("ln1", "attention.output.LayerNorm"),
                     ("mlp.0", "intermediate.dense"), ("mlp.2", "output.dense"), ("ln2", "output.LayerNorm")):  # fmt: skip
            for p in ("weight", "bias"):
                names[f"{ours}{a}.{p}"] = f"{theirs}{b}.{p}"
    return names


def _legacy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Old TensorFlow-converted checkpoints name LayerNorm parameters gamma/beta."""
    return {k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v
            for k, v in state.items()}  # fmt: skip


def load_bert(path: str | Path, mask: str = "unilm", dropout: float = 0.1, keep: list[int] | None = None) -> Seq2Seq:
    """A `Seq2Seq` with BERT's weights from `path/config.json` and `path/pytorch_model.bin` (never downloads).

    Args:
        path (str | Path):
            A local checkpoint directory (Hugging Face layout: `config.json`, `pytorch_model.bin`).
        mask (str):
            The attention mask of the fine-tuned model.
        dropout (float):
            Dropout of the fine-tuned model (BERT's 0.1 by default).
        keep (list[int] | None):
            Our token id -> the checkpoint's row (`core.data.squad.WordPiece.keep`, Su's `keep_tokens`): the
            embedding rows and output biases are gathered in that order. None keeps the checkpoint's order.

    Returns:
        Seq2Seq: post-norm, eps from the config, every parameter taken from the checkpoint.
    """
    path = Path(path)
    for name in ("config.json", "pytorch_model.bin"):
        if not (path / name).exists():
            raise FileNotFoundError(f"BERT checkpoint file {path / name} not found (a local copy is required)")
    cfg = json.loads((path / "config.json").read_text())
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"unsupported hidden_act {cfg['hidden_act']!r} in {path / 'config.json'} (expected gelu)")
    d, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    vocab = cfg["vocab_size"] if keep is None else len(keep)
    model = Seq2Seq(vocab, cfg["max_position_embeddings"], d, cfg["num_attention_heads"], layers,
                    cfg["intermediate_size"], mask, dropout, post_norm=True, eps=cfg.get("layer_norm_eps", 1e-12))  # fmt: skip
    state = _legacy(torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True))
    ours = {k: state[v] for k, v in _bert_names(layers).items() if v in state}
    for i in range(layers):
        pre = f"bert.encoder.layer.{i}.attention.self."
        for p in ("weight", "bias"):
            ours[f"blocks.{i}.attn.qkv.{p}"] = torch.cat([state[f"{pre}{n}.{p}"] for n in ("query", "key", "value")])
    if ours["seg.weight"].shape[0] < 2:
        raise ValueError(f"the checkpoint has {ours['seg.weight'].shape[0]} token types; UniLM needs 2")
    ours["seg.weight"] = ours["seg.weight"][:2]
    if keep is not None:
        if max(keep) >= ours["tok.weight"].shape[0]:
            raise ValueError(f"token row {max(keep)} is outside the checkpoint's {ours['tok.weight'].shape[0]} rows")
        ours["tok.weight"], ours["bias"] = ours["tok.weight"][keep], ours["bias"][keep]
    missing = sorted(set(model.state_dict()) - set(ours))
    if missing:
        raise ValueError(f"BERT checkpoint {path} lacks {len(missing)} tensors, e.g. {missing[0]}")
    model.load_state_dict(ours)
    return model
