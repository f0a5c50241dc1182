"""Attention with and without the softmax: the materialised reference, SDPA, and linear-time kernel forms.

Every variant in `ATTENTION` is a plain function `fn(q, k, v, *, causal=False, key_padding_mask=None) -> out`
on `[B, H, T, D]` queries and keys and `[B, H, T, M]` values (M may differ from D); `key_padding_mask` is
`[B, T]` bool with True for a real key. Scale convention (spec 01, `qk_scale`): q and k are both multiplied by
d^(-1/4) before any feature map, so `softmax` sees the usual q.k / sqrt(d).

Kernel variants compute o_i = phi(q_i) . sum_j phi(k_j) v_j^T / (phi(q_i) . sum_j phi(k_j) + eps):
- non-causal by associativity, O(T D M);
- causal by chunks (`CHUNK` positions): a masked quadratic block inside a chunk plus a carried state, so the
  backward keeps O(T C + (T / C) D M) instead of the O(T D M) of a cumsum over outer products;
- `cumsum_linear` (the parallel prefix-sum form), `quadratic_linear` (the masked T x T weights) and
  `recurrent_linear` (a loop over t) are the same function, kept as references and for the memory study;
- `recurrent_linear_step` is the decode path: constant cost per token;
- `fla_linear_elu` hands the same elu + 1 features to flash-linear-attention's Triton chunked kernel (CUDA, the
  `gpu` extra): the state of the art on a GPU, timed beside ours; the project's forms stay the portable reference.
Normalisers and prefix sums run in float32 when the inputs are half precision (and autocast is off inside);
padded keys get zero features, otherwise positive feature maps leak them into numerator and denominator.
"""

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

EPS = 1e-6
CHUNK = 64


def scale_qk(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Multiply q and k by d^(-1/4) each (the spec's `qk_scale`)."""
    s = q.shape[-1] ** -0.25
    return q * s, k * s


# Feature maps: non-negative, applied to the last dimension.


def elu1(x: torch.Tensor) -> torch.Tensor:
    """elu(x) + 1 (Katharopoulos et al.): positive, with a non-zero gradient for x < 0."""
    return F.elu(x) + 1


def cos1(x: torch.Tensor) -> torch.Tensor:
    """[1; x / |x|]: phi(q) . phi(k) = 1 + cos(q, k) (Su's first-order proposal)."""
    unit = x / x.norm(dim=-1, keepdim=True).clamp_min(EPS)
    return torch.cat([torch.ones_like(x[..., :1]), unit], dim=-1)


def taylor2(x: torch.Tensor) -> torch.Tensor:
    """[1, x, vec(x x^T) / sqrt 2]: phi(q) . phi(k) = 1 + t + t^2 / 2 with t = q . k, positive for every t."""
    outer = (x[..., :, None] * x[..., None, :]).flatten(-2) / math.sqrt(2)
    return torch.cat([torch.ones_like(x[..., :1]), x, outer], dim=-1)


def softmax_features(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the features of each vector (causal-safe, unlike `efficient`)."""
    return x.softmax(dim=-1)


FEATURE_MAPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear_elu": elu1,
    "linear_cos": cos1,
    "taylor2": taylor2,
    "softmax_per_token": softmax_features,
}


def features(kernel: str, q, k, key_padding_mask=None, zero_padded: bool = True):
    """Feature-mapped, scaled q and k; padded keys zeroed (`zero_padded=False` is the L-C2 control, which leaks)."""
    if kernel not in FEATURE_MAPS:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {sorted(FEATURE_MAPS)}")
    q, k = scale_qk(q, k)
    fq, fk = FEATURE_MAPS[kernel](q), FEATURE_MAPS[kernel](k)
    if key_padding_mask is not None and zero_padded:
        fk = fk * key_padding_mask[:, None, :, None].to(fk.dtype)
    return fq, fk


def _wide(*ts: torch.Tensor) -> list[torch.Tensor]:
    """Half-precision inputs are computed in float32 (normalisers and prefix sums lose precision in fp16)."""
    return [t.float() if t.dtype in (torch.float16, torch.bfloat16) else t for t in ts]


# Kernel forms, all on feature-mapped fq, fk: [B, H, T, C] and v: [B, H, T, M].


def associative_linear(fq, fk, v, eps: float = EPS) -> torch.Tensor:
    """Non-causal: phi(Q) (phi(K)^T V) / (phi(Q) sum_j phi(k_j) + eps), O(T C M)."""
    kv = fk.transpose(-1, -2) @ v  # [B, H, C, M]
    den = fq @ fk.sum(dim=2)[..., None]  # [B, H, T, 1]
    return (fq @ kv) / (den + eps)


def _shift_prefix(x: torch.Tensor) -> torch.Tensor:
    """Exclusive prefix sum over dim 1: entry c is the sum of entries strictly before c."""
    return F.pad(x[:, :-1].cumsum(dim=1), (0, 0, 0, 0, 1, 0))


def _shift_suffix(x: torch.Tensor) -> torch.Tensor:
    """Exclusive suffix sum over dim 1: entry c is the sum of entries strictly after c."""
    return F.pad(x[:, 1:].flip(1).cumsum(dim=1).flip(1), (0, 0, 0, 0, 0, 1))


class _ChunkedCausal(torch.autograd.Function):
    """Causal linear attention on chunked `[G, N, C, F]` features and `[G, N, C, M]` values, with its own backward.

    Forward, per chunk c (P_c = tril(Q_c K_c^T), S_c = K_c^T [V_c 1], B_c = sum of S over earlier chunks):
    [num den]_c = P_c [V_c 1] + Q_c B_c, out = num / (den + eps). Backward, with G_c the gradient of [num den]_c:
    dP_c = tril(G_c [V_c 1]^T), dQ_c = dP_c K_c + G_c B_c^T, dS_c = sum over later chunks of Q^T G,
    dK_c = dP_c^T Q_c + [V_c 1] dS_c^T, d[V_c 1] = P_c^T G_c + K_c dS_c.
    Autograd over the same ops costs about a third more here: it accumulates gradients op by op and
    pads and slices its way through the [num den] split.
    """

    @staticmethod
    def forward(ctx, qc, kc, vc, eps):
        g, n, c, f = qc.shape
        m = vc.shape[-1]
        q3, k3 = qc.reshape(g * n, c, f), kc.reshape(g * n, c, f)
        v1 = torch.cat([vc, vc.new_ones(g, n, c, 1)], dim=-1).view(g * n, c, m + 1)
        p = torch.bmm(q3, k3.transpose(1, 2)).tril_()
        before = _shift_prefix(torch.bmm(k3.transpose(1, 2), v1).view(g, n, f, m + 1)).view(g * n, f, m + 1)
        both = torch.baddbmm(torch.bmm(q3, before), p, v1)
        den = both[..., m:] + eps
        out = both[..., :m] / den
        ctx.save_for_backward(q3, k3, v1, p, before, out, den)
        ctx.shape = (g, n, c, f, m)
        return out.view(g, n, c, m)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        q3, k3, v1, p, before, out, den = ctx.saved_tensors
        g, n, c, f, m = ctx.shape
        grad = grad.reshape(g * n, c, m)
        gnum = grad / den
        gboth = torch.cat([gnum, -(gnum * out).sum(dim=-1, keepdim=True)], dim=-1)
        dp = torch.bmm(gboth, v1.transpose(1, 2)).tril_()
        dq = torch.baddbmm(torch.bmm(gboth, before.transpose(1, 2)), dp, k3)
        after = _shift_suffix(torch.bmm(q3.transpose(1, 2), gboth).view(g, n, f, m + 1)).view(g * n, f, m + 1)
        dk = torch.baddbmm(torch.bmm(v1, after.transpose(1, 2)), dp.transpose(1, 2), q3)
        dv = torch.baddbmm(torch.bmm(k3, after), p.transpose(1, 2), gboth)[..., :m]
        return dq.view(g, n, c, f), dk.view(g, n, c, f), dv.reshape(g, n, c, m), None


def chunked_linear(fq, fk, v, chunk: int = CHUNK, eps: float = EPS) -> torch.Tensor:
    """Causal, by chunks, all chunks at once: masked quadratic blocks inside each chunk, plus each chunk's state
    from the earlier ones (an exclusive prefix sum over the T / C chunk states, not over positions).

    Keeps O(T C + (T / C) C_f M) for backward (C_f: feature dimension); a handful of batched ops whatever T is,
    with the backward written out (`_ChunkedCausal`) and checked against the autograd of the quadratic form.
    T is zero-padded to a multiple of the chunk; padded keys have zero features and padded queries are dropped.
    """
    b, h, t, c = fq.shape
    m = v.shape[-1]
    pad = -t % chunk
    if pad:
        fq, fk, v = (F.pad(x, (0, 0, 0, pad)) for x in (fq, fk, v))
    n = (t + pad) // chunk
    out = _ChunkedCausal.apply(
        fq.reshape(b * h, n, chunk, c), fk.reshape(b * h, n, chunk, c), v.reshape(b * h, n, chunk, m), eps
    )
    return out.view(b, h, n * chunk, m)[:, :, :t]


def cumsum_linear(fq, fk, v, eps: float = EPS) -> torch.Tensor:
    """Causal, parallel: prefix sums of the outer products phi(k_j) v_j^T, O(T C M) memory kept for backward."""
    states = (fk[..., :, None] * v[..., None, :]).cumsum(dim=2)  # [B, H, T, C, M]
    norms = fk.cumsum(dim=2)
    num = torch.einsum("bhtc,bhtcm->bhtm", fq, states)
    return num / ((fq * norms).sum(dim=-1, keepdim=True) + eps)


def quadratic_linear(fq, fk, v, causal: bool, eps: float = EPS) -> torch.Tensor:
    """The kernel weights materialised, phi(Q) phi(K)^T (lower triangle when causal), then normalised rows."""
    w = fq @ fk.transpose(-1, -2)
    if causal:
        w = w.tril()
    return (w @ v) / (w.sum(dim=-1, keepdim=True) + eps)


def recurrent_linear_step(state, fq_t, fk_t, v_t, eps: float = EPS):
    """One decode step: S += phi(k_t) v_t^T, z += phi(k_t), o_t = phi(q_t) S / (phi(q_t) z + eps).

    Args:
        state (tuple | None):
            `(S [B, H, C, M], z [B, H, C])` from the previous step, or None at position 0.
        fq_t, fk_t (torch.Tensor):
            Features of the current query and key, `[B, H, C]`.
        v_t (torch.Tensor):
            Current value, `[B, H, M]`.

    Returns:
        tuple: the output `[B, H, M]` and the new state.
    """
    if state is None:
        state = (fk_t.new_zeros(*fk_t.shape, v_t.shape[-1]), torch.zeros_like(fk_t))
    s, z = state
    s = s + fk_t[..., :, None] * v_t[..., None, :]
    z = z + fk_t
    out = (fq_t[..., None, :] @ s).squeeze(-2) / ((fq_t * z).sum(dim=-1, keepdim=True) + eps)
    return out, (s, z)


def recurrent_linear(fq, fk, v, eps: float = EPS) -> torch.Tensor:
    """Causal, as an RNN: a Python loop over positions (the naive reference; decode only)."""
    state, outs = None, []
    for t in range(fq.shape[2]):
        out, state = recurrent_linear_step(state, fq[:, :, t], fk[:, :, t], v[:, :, t], eps)
        outs.append(out)
    return torch.stack(outs, dim=2)


def fla_available() -> bool:
    """Whether fla's Triton kernels can run here: a CUDA device, Triton, and `fla-core` (`pip install '.[gpu]'`)."""
    import importlib.util

    return torch.cuda.is_available() and all(importlib.util.find_spec(m) is not None for m in ("triton", "fla"))


def fla_linear_elu(q, k, v, *, causal: bool = True) -> torch.Tensor:
    """Causal `linear_elu` attention by fla's Triton kernel (`fla.ops.linear_attn.chunk_linear_attn`), CUDA only.

    Fed the features `kernel_attention("linear_elu", ...)` computes (q and k scaled by d^(-1/4), then elu + 1), with
    fla's own scale off and its normaliser on, so it is the same function as the project's causal forms (fla adds
    1e-10 to the normaliser where they add `EPS`). Inputs stay in their dtype (fla accumulates in float32); the
    `[B, H, T, D]` layout is transposed to fla's `[B, T, H, D]` and back, and that copy is part of its time.
    """
    if not causal:
        raise ValueError("fla_linear_elu is the causal kernel; non-causal linear attention is one matmul (associative)")
    from fla.ops.linear_attn import chunk_linear_attn

    fq, fk = features("linear_elu", q, k)
    out, _ = chunk_linear_attn(
        *(x.transpose(1, 2).contiguous() for x in (fq, fk, v)), scale=1.0, normalize=True, output_final_state=False
    )
    return out.transpose(1, 2)


def kernel_attention(
    kernel: str,
    q,
    k,
    v,
    *,
    causal: bool = False,
    key_padding_mask=None,
    form: str = "chunked",
    chunk: int = CHUNK,
    eps: float = EPS,
    zero_padded: bool = True,
) -> torch.Tensor:
    """Linear attention with a named feature map and an explicit form (`chunked`, `cumsum`, `quadratic`, `recurrent`).

    Non-causal calls use the associative form whatever `form` says, except `quadratic`.
    """
    dtype = q.dtype
    with torch.autocast(q.device.type, enabled=False):
        q, k, v = _wide(q, k, v)
        fq, fk = features(kernel, q, k, key_padding_mask, zero_padded)
        if form == "quadratic":
            out = quadratic_linear(fq, fk, v, causal, eps)
        elif not causal:
            out = associative_linear(fq, fk, v, eps)
        elif form == "chunked":
            out = chunked_linear(fq, fk, v, chunk, eps)
        elif form == "cumsum":
            out = cumsum_linear(fq, fk, v, eps)
        elif form == "recurrent":
            out = recurrent_linear(fq, fk, v, eps)
        else:
            raise ValueError(f"unknown form {form!r}; expected chunked, cumsum, quadratic or recurrent")
    return out.to(dtype)


# Softmax attention.


def _allowed(
    t_q: int, t_k: int, causal: bool, key_padding_mask, device, blind: bool = False, allowed: torch.Tensor | None = None
) -> torch.Tensor | None:
    """[B or 1, 1, Tq, Tk] bool: which keys each query may see (None when all).

    `blind` hides key i from query i (T-TA's diagonal mask; needs Tq = Tk). `allowed` is an explicit `[B, Tq, Tk]`
    bool mask (e.g. UniLM's, `core.seq2seq`), combined with the others.
    """
    if allowed is not None:
        allowed = allowed[:, None]
    if causal:
        allowed = torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(t_k - t_q)[None, None]
    if blind:
        if t_q != t_k:
            raise ValueError(f"a blind (diagonal) mask needs as many queries as keys, got {t_q} and {t_k}")
        off = ~torch.eye(t_q, dtype=torch.bool, device=device)[None, None]
        allowed = off if allowed is None else allowed & off
    if key_padding_mask is not None:
        pad = key_padding_mask[:, None, None, :]
        allowed = pad if allowed is None else allowed & pad
    return allowed


def softmax(q, k, v, *, causal: bool = False, key_padding_mask=None, blind: bool = False, allowed=None) -> torch.Tensor:
    """The materialised reference: softmax(q k^T / sqrt d) v with the T x T matrix built; fully masked rows give 0."""
    return softmax_weights(q, k, causal=causal, key_padding_mask=key_padding_mask, blind=blind, allowed=allowed) @ v


def softmax_weights(q, k, *, causal: bool = False, key_padding_mask=None, blind: bool = False, allowed=None) -> torch.Tensor:
    """The [B, H, Tq, Tk] softmax attention matrix (rows of fully masked queries are zero)."""
    q, k = scale_qk(q, k)
    scores = q @ k.transpose(-1, -2)
    only_causal = key_padding_mask is None and not blind and allowed is None
    allowed = _allowed(q.shape[2], k.shape[2], causal, key_padding_mask, q.device, blind, allowed)
    if allowed is None:
        return scores.softmax(dim=-1)
    if only_causal:  # every query sees itself
        return scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
    dead = ~allowed.any(dim=-1, keepdim=True)  # no visible key: compute any finite row, then zero it
    scores = scores.masked_fill(~(allowed | dead), float("-inf"))
    return scores.softmax(dim=-1).masked_fill(dead, 0.0)


def sdpa(q, k, v, *, causal: bool = False, key_padding_mask=None, blind: bool = False, allowed=None) -> torch.Tensor:
    """`torch.nn.functional.scaled_dot_product_attention` (FlashAttention or memory-efficient kernels on a GPU)."""
    if key_padding_mask is None and not blind and allowed is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    allowed = _allowed(q.shape[2], k.shape[2], causal, key_padding_mask, q.device, blind, allowed)
    dead = ~allowed.any(dim=-1, keepdim=True)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed | dead)
    return out.masked_fill(dead, 0.0)


def softmax_additive(
    q, k, v, *, causal: bool = False, key_padding_mask=None, blind: bool = False, allowed=None
) -> torch.Tensor:
    """Softmax with BERT's additive -10000 on hidden keys: a query with no visible key gets a uniform row over ALL
    keys, itself included (the T-C2 negative control of spec 03; never use it for a model)."""
    q, k = scale_qk(q, k)
    scores = q @ k.transpose(-1, -2)
    allowed = _allowed(q.shape[2], k.shape[2], causal, key_padding_mask, q.device, blind, allowed)
    if allowed is not None:
        scores = scores - 10000.0 * (~allowed).to(scores.dtype)
    return scores.softmax(dim=-1) @ v


def efficient(q, k, v, *, causal: bool = False, key_padding_mask=None) -> torch.Tensor:
    """Efficient Attention (Shen et al.): softmax of q over features, of k over positions; non-causal only."""
    if causal:
        raise ValueError("efficient attention normalises keys over all positions and cannot be causal; use softmax_per_token")
    q, k = scale_qk(q, k)
    if key_padding_mask is not None:
        k = k.masked_fill(~key_padding_mask[:, None, :, None], float("-inf"))
    return q.softmax(dim=-1) @ (k.softmax(dim=2).transpose(-1, -2) @ v)


def efficient_weights(q, k, *, key_padding_mask=None) -> torch.Tensor:
    """The implied [B, H, T, T] matrix of Efficient Attention (rows sum to 1 by construction)."""
    q, k = scale_qk(q, k)
    if key_padding_mask is not None:
        k = k.masked_fill(~key_padding_mask[:, None, :, None], float("-inf"))
    return q.softmax(dim=-1) @ k.softmax(dim=2).transpose(-1, -2)


def kernel_weights(kernel: str, q, k, *, causal: bool = False, key_padding_mask=None) -> torch.Tensor:
    """The implied [B, H, T, T] matrix of a kernel variant, normalised without eps (for the row-sum check)."""
    fq, fk = features(kernel, q, k, key_padding_mask)
    w = fq @ fk.transpose(-1, -2)
    if causal:
        w = w.tril()
    return w / w.sum(dim=-1, keepdim=True)


def linformer(q, k, v, e: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """A Linformer-style layer: keys and values projected along positions (E K, F V; E, F: [k, T]), then softmax."""
    return softmax(q, e @ k, f @ v)


def _kernel_variant(kernel: str) -> Callable:
    def attend(q, k, v, *, causal: bool = False, key_padding_mask=None) -> torch.Tensor:
        return kernel_attention(kernel, q, k, v, causal=causal, key_padding_mask=key_padding_mask)

    attend.__name__ = kernel
    attend.__doc__ = f"`{kernel}` linear attention (associative non-causal, chunked causal)."
    return attend


ATTENTION: dict[str, Callable] = {
    "softmax": softmax,
    "sdpa": sdpa,
    "linear_elu": _kernel_variant("linear_elu"),
    "linear_cos": _kernel_variant("linear_cos"),
    "taylor2": _kernel_variant("taylor2"),
    "softmax_per_token": _kernel_variant("softmax_per_token"),
    "efficient": efficient,
    "softmax_additive": softmax_additive,  # negative control only
}


def attention_weights(name: str, q, k, *, causal: bool = False, key_padding_mask=None) -> torch.Tensor:
    """The row-stochastic matrix a variant applies to v (for the L2 check and the row-KL diagnostics)."""
    if name in ("softmax", "sdpa"):
        return softmax_weights(q, k, causal=causal, key_padding_mask=key_padding_mask)
    if name == "efficient":
        if causal:
            raise ValueError("efficient attention cannot be causal")
        return efficient_weights(q, k, key_padding_mask=key_padding_mask)
    return kernel_weights(name, q, k, causal=causal, key_padding_mask=key_padding_mask)


# Leak tests (float64, autograd).


def future_leak(fn: Callable, q, k, v, seed: int = 0) -> float:
    """Largest |d o_i / d (k_j, v_j)| over j > i: zero for a causal layer.

    Each output row is contracted with a random vector, so independent contributions cannot cancel.

    Args:
        fn (Callable):
            `fn(q, k, v) -> out`, already set up as the causal layer to test.
        q, k, v (torch.Tensor):
            `[B, H, T, *]` inputs (float64 recommended).
        seed (int):
            Seed of the contraction vectors.

    Returns:
        float: the largest forbidden gradient entry.
    """
    k, v = k.detach().requires_grad_(), v.detach().requires_grad_()
    out = fn(q, k, v)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype).to(out.device)
    worst = 0.0
    for i in range(out.shape[2] - 1):
        gk, gv = torch.autograd.grad((out[:, :, i] * w[:, :, i]).sum(), (k, v), retain_graph=True)
        worst = max(worst, float(gk[:, :, i + 1 :].abs().max()), float(gv[:, :, i + 1 :].abs().max()))
    return worst


def padding_leak(fn: Callable, q, k, v, key_padding_mask, seed: int = 0) -> float:
    """Largest |d out / d (k_j, v_j)| over padded keys j: zero when padding is respected.

    Args:
        fn (Callable):
            `fn(q, k, v, key_padding_mask) -> out`.
        q, k, v (torch.Tensor):
            Inputs `[B, H, T, *]`.
        key_padding_mask (torch.Tensor):
            `[B, T]`, True for real keys.
        seed (int):
            Seed of the contraction vector.

    Returns:
        float: the largest gradient entry at a padded key or value.
    """
    k, v = k.detach().requires_grad_(), v.detach().requires_grad_()
    out = fn(q, k, v, key_padding_mask)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype).to(out.device)
    gk, gv = torch.autograd.grad((out * w).sum(), (k, v))
    pad = ~key_padding_mask[:, None, :, None]
    return max(float((gk.abs() * pad).max()), float((gv.abs() * pad).max()))
