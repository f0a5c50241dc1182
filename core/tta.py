"""T-TA (Shin et al., ACL 2020) and its baselines: one encoder, four objectives, and pseudo-likelihood scoring.

`Encoder(objective=...)`, all on `core.transformer.Block` with a tied output head ln(gelu(W h)) E^T + b:
- `tta`: queries start from the position embeddings (plus the [MASK] embedding, a constant), keys and values
  are the normalised input embeddings at EVERY layer, and every layer hides key i from query i (`blind`,
  combined with the key-padding mask; a query with no visible key gets a zero row). Logit i never depends on
  x_i, so one pass gives p(x_i | x_not_i) at every position.
- `leaky`: the T-C1 control, identical except that layer l takes keys and values from layer l-1's output. One
  layer is still leak-free; from two on, position j's state already holds x_i.
- `mlm`: a bidirectional encoder trained on `corrupt`ed input (80/10/10) and scored by pseudo-likelihood, one
  masked copy per position (`pll_masked`; `pll_masked_naive` is its loop-over-positions reference).
- `l2r`: a causal encoder predicting x_{i+1} (a reference; its loss is a true likelihood, not a pseudo one).

Which positions count (`scorable`): real words only; padding, [MASK] and [UNK] stay as context but are never
targets or scored, in every objective (spec 03, gotcha 5).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.transformer import Block

OBJECTIVES = ("mlm", "tta", "leaky", "l2r")


class Encoder(nn.Module):
    """A small Transformer encoder for one of `OBJECTIVES`; `forward(x, keep) -> logits [B, T, vocab]`."""

    def __init__(
        self,
        vocab: int,
        context: int,
        d_model: int,
        heads: int,
        layers: int,
        ffn: int,
        objective: str,
        mask_id: int,
        dropout: float = 0.0,
        attention: str = "sdpa",
    ):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; expected one of {OBJECTIVES}")
        if ffn % d_model:
            raise ValueError(f"ffn {ffn} is not a multiple of d_model {d_model}")
        self.objective, self.mask_id = objective, mask_id
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.ln_in = nn.LayerNorm(d_model)
        causal = objective == "l2r"
        self.blocks = nn.ModuleList(
            Block(d_model, heads, attention, causal, mlp_ratio=ffn // d_model, dropout=dropout) for _ in range(layers)
        )
        self.ln = nn.LayerNorm(d_model)
        self.transform, self.ln_head = nn.Linear(d_model, d_model), nn.LayerNorm(d_model)
        self.bias = nn.Parameter(torch.zeros(vocab))
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        for table in (self.tok, self.pos):  # BERT's initialisation: with N(0, 1) rows the tied head starts at
            nn.init.normal_(table.weight, std=0.02)  # logits of norm ~sqrt(d), ~12 nats per token on text

    def hidden(self, e: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Final states `[B, T, D]` from token embeddings `e = tok(x)` (a leaf in the leak test) and `keep [B, T]`."""
        p = self.pos(torch.arange(e.shape[1], device=e.device))
        stream = self.drop(self.ln_in(e + p))
        if self.objective in ("mlm", "l2r"):
            h = stream
            for block in self.blocks:
                h = block(h, keep)
            return self.ln(h)
        kv = stream  # the same tensor feeds every layer's keys and values (tta)
        h = self.drop(self.tok.weight[self.mask_id] + p).expand(e.shape[0], -1, -1)  # no token information
        for block in self.blocks:
            h = block(h, keep, kv=kv, blind=True)
            if self.objective == "leaky":
                kv = h
        return self.ln(h)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Tied output head on states `[..., D]`."""
        return self.ln_head(F.gelu(self.transform(h))) @ self.tok.weight.T + self.bias

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.logits(self.hidden(self.tok(x), keep))


def parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def corrupt(
    x: torch.Tensor, scorable: torch.Tensor, rate: float, gen: torch.Generator, mask_id: int, n_words: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT corruption: each scorable position is a target with probability `rate`; of the targets 80% become
    [MASK], 10% a uniformly random word id in [0, n_words) and 10% stay. Returns (input, targets; -100 elsewhere)."""
    chosen = (torch.rand(x.shape, generator=gen) < rate).to(x.device) & scorable
    u = torch.rand(x.shape, generator=gen).to(x.device)
    words = torch.randint(0, n_words, x.shape, generator=gen).to(x.device)
    inp = torch.where(chosen & (u < 0.8), torch.full_like(x, mask_id), x)
    inp = torch.where(chosen & (u >= 0.8) & (u < 0.9), words, inp)
    return inp, torch.where(chosen, x, torch.full_like(x, -100))


def train_loss(
    model: Encoder,
    x: torch.Tensor,
    keep: torch.Tensor,
    scorable: torch.Tensor,
    gen: torch.Generator,
    rate: float = 0.15,
    n_words: int = 0,
) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over the objective's targets, and how many targets there were.

    tta/leaky: every scorable position; mlm: the corrupted ones (`rate`); l2r: x_{i+1} at every scorable i+1.
    The output head runs only where there is a target.
    """
    if model.objective == "mlm":
        inp, targets = corrupt(x, scorable, rate, gen, model.mask_id, n_words)
        where = targets != -100
        h = model.hidden(model.tok(inp), keep)[where]
        return F.cross_entropy(model.logits(h), x[where]), int(where.sum())
    h = model.hidden(model.tok(x), keep)
    if model.objective == "l2r":
        where = scorable[:, 1:]
        return F.cross_entropy(model.logits(h[:, :-1][where]), x[:, 1:][where]), int(where.sum())
    return F.cross_entropy(model.logits(h[scorable]), x[scorable]), int(scorable.sum())


# Pseudo-likelihood scoring: -log p(x_i | x_not_i) per position, nan where nothing is scored.


def _put(x: torch.Tensor, where, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter per-target NLL and top-1 hits into `[B, T]` tensors that are nan where nothing is scored."""
    nll = torch.full(x.shape, math.nan, dtype=logits.dtype, device=x.device)
    hit = torch.full(x.shape, math.nan, dtype=logits.dtype, device=x.device)
    nll[where] = F.cross_entropy(logits, targets, reduction="none")
    hit[where] = (logits.argmax(-1) == targets).to(logits.dtype)
    return nll, hit


@torch.no_grad()
def pll_single(model: Encoder, x: torch.Tensor, keep: torch.Tensor, scorable: torch.Tensor):
    """One pass (tta, leaky): output i is the model's p(x_i | x_not_i). Returns `(nll, top-1 hit)`, each `[B, T]`."""
    h = model.hidden(model.tok(x), keep)[scorable]
    return _put(x, scorable, model.logits(h), x[scorable])


@torch.no_grad()
def pll_masked(model: Encoder, x: torch.Tensor, keep: torch.Tensor, scorable: torch.Tensor, copies: int = 2048):
    """MLM pseudo-likelihood: for each scorable (row, i), a copy of the row with x_i = [MASK], scored at i only.

    Copies run `copies` at a time; the output head runs at the masked position only. Returns `(nll, top-1 hit)`,
    each `[B, T]` and nan where not scored.
    """
    where = scorable.nonzero()
    nll = torch.full(x.shape, math.nan, dtype=model.bias.dtype, device=x.device)
    hit = nll.clone()
    for part in where.split(copies):
        rows, cols = part.T
        each = torch.arange(len(rows), device=x.device)
        xs = x[rows].clone()
        xs[each, cols] = model.mask_id
        h = model.hidden(model.tok(xs), keep[rows])[each, cols]
        logits = model.logits(h)
        nll[rows, cols] = F.cross_entropy(logits, x[rows, cols], reduction="none")
        hit[rows, cols] = (logits.argmax(-1) == x[rows, cols]).to(hit.dtype)
    return nll, hit


@torch.no_grad()
def pll_masked_naive(model: Encoder, x: torch.Tensor, keep: torch.Tensor, scorable: torch.Tensor) -> torch.Tensor:
    """Reference for `pll_masked`'s NLL: for each position i, mask column i in every row and run the full model."""
    out = torch.full(x.shape, math.nan, dtype=model.bias.dtype, device=x.device)
    for i in range(x.shape[1]):
        xs = x.clone()
        xs[:, i] = model.mask_id
        nll = -model(xs, keep)[:, i].log_softmax(-1).gather(1, x[:, i : i + 1])[:, 0]
        out[:, i] = torch.where(scorable[:, i], nll, math.nan)
    return out


@torch.no_grad()
def next_token_nll(model: Encoder, x: torch.Tensor, keep: torch.Tensor, scorable: torch.Tensor):
    """l2r: -log p(x_i | x_<i) at every scorable i >= 1. Returns `(nll, top-1 hit)`, each `[B, T]`, nan at 0."""
    h = model.hidden(model.tok(x), keep)
    where = scorable.clone()
    where[:, 0] = False
    return _put(x, where, model.logits(h[:, :-1][scorable[:, 1:]]), x[:, 1:][scorable[:, 1:]])


def score(model: Encoder, x: torch.Tensor, keep: torch.Tensor, scorable: torch.Tensor):
    """`(nll, top-1 hit)` per position, the way each objective is evaluated: PLL (one pass, or T masked copies
    for mlm) or next-token NLL for l2r."""
    if model.objective == "mlm":
        return pll_masked(model, x, keep, scorable)
    if model.objective == "l2r":
        return next_token_nll(model, x, keep, scorable)
    return pll_single(model, x, keep, scorable)


def leak_gradient(model: Encoder, x: torch.Tensor, keep: torch.Tensor, seed: int = 0) -> float:
    """Largest |d logit_i / d e_i| over positions i, where e = tok(x) is a per-position leaf (not the table row).

    Each logit vector is contracted with a random vector so that contributions cannot cancel. Zero for a model
    whose output i is independent of x_i; run it in float64 and eval mode.
    """
    e = model.tok(x).detach().requires_grad_()
    logits = model.logits(model.hidden(e, keep))
    w = torch.randn(logits.shape, generator=torch.Generator().manual_seed(seed), dtype=logits.dtype).to(logits.device)
    worst = 0.0
    for i in range(x.shape[1]):
        (g,) = torch.autograd.grad((logits[:, i] * w[:, i]).sum(), e, retain_graph=True)
        worst = max(worst, float(g[:, i].abs().max()))
    return worst
