"""A small pre-norm Transformer whose attention is any variant of `core.attention.ATTENTION`, chosen by name.

`SelfAttention` projects to heads and calls the variant with the layer's causal flag and key-padding mask;
given `kv`, keys and values come from that stream instead of `x` (T-TA, `core.tta`), `blind` hides each
position from itself, and `allowed` (`[B, Tq, Tk]` bool) is an explicit mask (UniLM's, `core.seq2seq`). `Block`
is attention plus a GELU MLP, each with a residual (and optional dropout on both branches; BERT's post-norm on
request); `CausalLM` adds token and learned position embeddings and a linear head. With `keep_qk = True` a layer
stores its last q and k (for attention-row diagnostics on a trained model).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.attention import ATTENTION


class SelfAttention(nn.Module):
    """Multi-head self-attention with a named attention variant."""

    def __init__(self, d_model: int, heads: int, attention: str, causal: bool):
        super().__init__()
        if attention not in ATTENTION:
            raise ValueError(f"unknown attention {attention!r}; expected one of {sorted(ATTENTION)}")
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not a multiple of heads {heads}")
        self.heads, self.attention, self.causal = heads, attention, causal
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.keep_qk = False
        self.last_qk: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        kv: torch.Tensor | None = None,
        blind=False,
        allowed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, t, d = x.shape
        if kv is None:
            q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        else:  # queries from x, keys and values from kv, with the same weights as the fused projection
            w_q, w_kv = self.qkv.weight.split([d, 2 * d])
            b_q, b_kv = self.qkv.bias.split([d, 2 * d])
            q = F.linear(x, w_q, b_q).view(b, t, self.heads, d // self.heads).transpose(1, 2)
            k, v = F.linear(kv, w_kv, b_kv).view(b, kv.shape[1], 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.keep_qk:
            self.last_qk = (q.detach(), k.detach())
        extra = ({"blind": True} if blind else {}) | ({"allowed": allowed} if allowed is not None else {})
        o = ATTENTION[self.attention](q, k, v, causal=self.causal, key_padding_mask=key_padding_mask, **extra)
        return self.out(o.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-norm residual block: x + attn(ln(x)), then x + mlp(ln(x)); `kv`, `blind` and `allowed` go to the attention.

    `post_norm=True` is BERT's order instead, ln(x + attn(x)) then ln(x + mlp(x)) (for loading BERT weights,
    `core.seq2seq`); `eps` is the LayerNorms' epsilon (BERT: 1e-12).
    """

    def __init__(
        self,
        d_model: int,
        heads: int,
        attention: str,
        causal: bool,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        post_norm: bool = False,
        eps: float = 1e-5,
    ):
        super().__init__()
        self.post_norm = post_norm
        self.ln1, self.ln2 = nn.LayerNorm(d_model, eps=eps), nn.LayerNorm(d_model, eps=eps)
        self.attn = SelfAttention(d_model, heads, attention, causal)
        self.mlp = nn.Sequential(nn.Linear(d_model, mlp_ratio * d_model), nn.GELU(), nn.Linear(mlp_ratio * d_model, d_model))
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        kv: torch.Tensor | None = None,
        blind=False,
        allowed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.post_norm:
            x = self.ln1(x + self.drop(self.attn(x, key_padding_mask, kv, blind, allowed)))
            return self.ln2(x + self.drop(self.mlp(x)))
        x = x + self.drop(self.attn(self.ln1(x), key_padding_mask, kv, blind, allowed))
        return x + self.drop(self.mlp(self.ln2(x)))


class CausalLM(nn.Module):
    """Decoder-only language model: logits `[B, T, vocab]` for next-token prediction."""

    def __init__(self, vocab: int, context: int, d_model: int, heads: int, layers: int, attention: str):
        super().__init__()
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads, attention, causal=True) for _ in range(layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy in nats (targets of -100 are ignored)."""
        logits = self(idx)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)


def warmup_cosine(step: int, steps: int, warmup: int) -> float:
    """Learning-rate factor at `step`: linear warm-up over `warmup` steps, then a cosine decay to 0 at `steps`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
