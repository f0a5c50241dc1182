"""Attention variants against their naive references: outputs, gradients, row sums, causality and padding."""

import pytest
import torch
from tolerance import tol

from core.attention import (
    ATTENTION,
    FEATURE_MAPS,
    attention_weights,
    efficient,
    features,
    future_leak,
    kernel_attention,
    linformer,
    padding_leak,
    recurrent_linear_step,
    softmax,
)
from core.memory import saved_bytes

KERNELS = sorted(FEATURE_MAPS)
SHAPES = [(1, 1, 1, 8, 8), (2, 3, 63, 16, 5), (2, 4, 130, 12, 12)]  # B, H, T, D, M (T not a multiple of the chunk)
FORMS = ("chunked", "cumsum", "recurrent")


def _qkv(b, h, t, d, m, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(b, h, t, d, generator=g, dtype=dtype) for _ in range(2))
    return q, k, torch.randn(b, h, t, m, generator=g, dtype=dtype)


def _grads(fn, q, k, v):
    q, k, v = (x.detach().requires_grad_() for x in (q, k, v))
    out = fn(q, k, v)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    return (out, *torch.autograd.grad((out * w).sum(), (q, k, v)))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("form", FORMS)
def test_causal_forms_match_the_masked_quadratic_in_outputs_and_gradients(kernel, shape, form):
    q, k, v = _qkv(*shape)
    ref = _grads(lambda q, k, v: kernel_attention(kernel, q, k, v, causal=True, form="quadratic"), q, k, v)
    got = _grads(lambda q, k, v: kernel_attention(kernel, q, k, v, causal=True, form=form, chunk=16), q, k, v)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_associative_and_chunked_forms_equal_weights_times_values(kernel, dtype):
    t = 70
    q, k, v = _qkv(2, 3, t, 8, 6, dtype=dtype)
    for causal in (False, True):
        a = attention_weights(kernel, q, k, causal=causal)
        assert float(a.min()) >= 0
        # a row sums (or a row of weights times v sums) T terms: T roundings, each at most eps x the terms' scale
        torch.testing.assert_close(a.sum(-1), torch.ones_like(a.sum(-1)), atol=tol(dtype, 1.0, ulps=t), rtol=0)
        got = kernel_attention(kernel, q, k, v, causal=causal, eps=0.0)
        torch.testing.assert_close(got, a @ v, atol=tol(dtype, float(v.abs().max()), ulps=t), rtol=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_sdpa_matches_the_materialised_softmax(shape):
    q, k, v = _qkv(*shape)
    mask = torch.ones(shape[0], shape[2], dtype=torch.bool)
    mask[:, -min(5, shape[2] - 1) or None :] = False
    for causal in (False, True):
        for kpm in (None, mask):
            kw = {"causal": causal, "key_padding_mask": kpm}
            ref = _grads(lambda q, k, v, kw=kw: softmax(q, k, v, **kw), q, k, v)
            got = _grads(lambda q, k, v, kw=kw: ATTENTION["sdpa"](q, k, v, **kw), q, k, v)
            for a, b in zip(got, ref, strict=True):
                torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_softmax_and_efficient_rows_are_stochastic():
    q, k, _ = _qkv(2, 2, 33, 8, 8)
    for a in (attention_weights("softmax", q, k, causal=True), attention_weights("efficient", q, k)):
        assert float(a.min()) >= 0
        torch.testing.assert_close(a.sum(-1), torch.ones_like(a.sum(-1)), atol=1e-10, rtol=0)


def test_fully_masked_rows_give_zero_output_not_a_uniform_row():
    q, k, v = _qkv(2, 1, 6, 4, 3)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1] = False  # the second sequence has no real key at all
    for name in ("softmax", "sdpa", "linear_elu", "taylor2"):
        out = ATTENTION[name](q, k, v, key_padding_mask=mask)
        assert torch.isfinite(out).all()
        assert float(out[1].abs().max()) == 0.0, name


@pytest.mark.parametrize("name", ["softmax", "sdpa", *KERNELS])
def test_causal_variants_do_not_see_the_future(name):
    q, k, v = _qkv(2, 2, 12, 8, 5)
    assert future_leak(lambda q, k, v: ATTENTION[name](q, k, v, causal=True), q, k, v) <= 1e-12


@pytest.mark.parametrize("name", ["softmax", "sdpa", "efficient", *KERNELS])
def test_padded_keys_do_not_leak(name):
    q, k, v = _qkv(2, 2, 12, 8, 5)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[:, -5:] = False
    leak = padding_leak(lambda q, k, v, m: ATTENTION[name](q, k, v, key_padding_mask=m), q, k, v, mask)
    assert leak <= 1e-12


def test_controls_leak_efficient_causally_linformer_and_unzeroed_padding():
    q, k, v = _qkv(1, 2, 12, 8, 5)
    assert future_leak(lambda q, k, v: efficient(q, k, v), q, k, v) > 1e-3  # L-C1
    g = torch.Generator().manual_seed(3)
    e, f = (torch.randn(4, 12, generator=g, dtype=torch.float64) for _ in range(2))
    assert future_leak(lambda q, k, v: linformer(q, k, v, e, f), q, k, v) > 1e-3  # L4
    mask = torch.ones(1, 12, dtype=torch.bool)
    mask[:, -5:] = False
    unzeroed = lambda q, k, v, m: kernel_attention("linear_elu", q, k, v, key_padding_mask=m, zero_padded=False)  # noqa: E731
    assert padding_leak(unzeroed, q, k, v, mask) > 1e-3  # L-C2


def test_efficient_refuses_causal_use():
    q, k, v = _qkv(1, 1, 4, 4, 4)
    with pytest.raises(ValueError, match="cannot be causal"):
        efficient(q, k, v, causal=True)


def test_decode_steps_reproduce_the_causal_layer():
    q, k, v = _qkv(2, 3, 40, 8, 6)
    fq, fk = features("linear_elu", q, k)
    state, outs = None, []
    for t in range(40):
        out, state = recurrent_linear_step(state, fq[:, :, t], fk[:, :, t], v[:, :, t])
        outs.append(out)
    torch.testing.assert_close(torch.stack(outs, 2), kernel_attention("linear_elu", q, k, v, causal=True), atol=1e-12, rtol=0)


def test_half_precision_inputs_are_normalised_in_float32():
    q, k, v = (x.to(torch.bfloat16) for x in _qkv(1, 2, 300, 16, 16, dtype=torch.float32))
    ref = kernel_attention("linear_elu", q.double(), k.double(), v.double(), causal=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = kernel_attention("linear_elu", q, k, v, causal=True)
    assert out.dtype == torch.bfloat16
    assert float((out.double() - ref).abs().max()) < 2e-2  # bf16 output rounding only


def test_kernel_identities():
    x, y = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    t = (x * y).sum(-1)
    torch.testing.assert_close((FEATURE_MAPS["taylor2"](x) * FEATURE_MAPS["taylor2"](y)).sum(-1), 1 + t + t**2 / 2)
    cos = t / (x.norm(dim=-1) * y.norm(dim=-1))
    torch.testing.assert_close((FEATURE_MAPS["linear_cos"](x) * FEATURE_MAPS["linear_cos"](y)).sum(-1), 1 + cos)


def test_chunked_form_keeps_linear_memory_and_cumsum_keeps_t_d_m():
    def kept(form, t):
        q, k, v = (x.requires_grad_() for x in _qkv(1, 1, t, 32, 32, dtype=torch.float32))
        return saved_bytes(lambda: kernel_attention("linear_elu", q, k, v, causal=True, form=form))[1]

    assert 1.9 < kept("chunked", 2048) / kept("chunked", 1024) < 2.1
    assert kept("cumsum", 1024) >= 1024 * 32 * 32 * 4  # the [T, D, M] prefix sums
    assert kept("chunked", 1024) < kept("cumsum", 1024) / 4


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["softmax", "sdpa", "linear_elu", "taylor2"])
def test_cuda_matches_cpu_in_float32_and_bfloat16(name):
    q, k, v = _qkv(2, 4, 300, 16, 16, dtype=torch.float32)
    ref = ATTENTION[name](q, k, v, causal=True)
    cuda = ATTENTION[name](q.cuda(), k.cuda(), v.cuda(), causal=True)
    torch.testing.assert_close(cuda.cpu(), ref, atol=1e-4, rtol=1e-4)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        half = ATTENTION[name](q.cuda(), k.cuda(), v.cuda(), causal=True)
    assert float((half.float().cpu() - ref).abs().max()) < 5e-2


def _fla_naive():
    """fla's naive recurrent reference (`fla/ops/linear_attn/naive.py`), loaded by path: importing `fla.ops` needs
    Triton, which CPU machines lack, while this file needs only torch and einops."""
    import importlib.util

    spec = importlib.util.find_spec("fla")  # finds the package without running its __init__
    if spec is None or importlib.util.find_spec("einops") is None:
        pytest.skip("fla-core (and einops) not installed: pip install -e '.[dev]'")
    path = next(iter(spec.submodule_search_locations)) + "/ops/linear_attn/naive.py"
    naive = importlib.util.spec_from_file_location("fla_linear_attn_naive", path)
    module = importlib.util.module_from_spec(naive)
    naive.loader.exec_module(module)
    return module.naive_recurrent_linear_attn


@pytest.mark.parametrize("shape", SHAPES[1:])
def test_our_causal_forms_equal_fla_naive_recurrent_reference(shape):
    naive = _fla_naive()
    q, k, v = _qkv(*shape)
    fq, fk = features("linear_elu", q, k)  # the features fla_linear_elu hands to fla: scaled, elu + 1
    ref, _ = naive(*(x.transpose(1, 2) for x in (fq, fk, v)), scale=1.0, normalize=True)  # computes in float32
    ref = ref.transpose(1, 2).double()
    t = shape[2]
    # fla's reference sums T float32 outer products into its state; outputs are normalised averages of v (|v| ~ 1),
    # so each keeps ~T float32 roundings: T * eps32 bounds the gap (our forms here run in float64)
    tol = t * torch.finfo(torch.float32).eps
    for form in (*FORMS, "quadratic"):
        ours = kernel_attention("linear_elu", q, k, v, causal=True, form=form)
        torch.testing.assert_close(ours, ref, atol=tol, rtol=tol)


def _cuda_grads(fn, q, k, v):
    q, k, v = (x.detach().cuda().requires_grad_() for x in (q, k, v))
    out = fn(q, k, v)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out)
    return [t.float().cpu() for t in (out, *torch.autograd.grad((out * w).sum(), (q, k, v)))]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 3, 300, 32, 32), (1, 8, 1000, 64, 64)])  # T not a multiple of fla's chunk
def test_fla_triton_kernel_equals_our_chunked_form_on_cuda(shape, dtype):
    from core.attention import fla_available, fla_linear_elu

    if not fla_available():
        pytest.skip("fla's Triton kernel needs the gpu extra: pip install -e '.[gpu]'")
    q, k, v = _qkv(*shape, dtype=torch.float32)
    q, k, v = (x.to(dtype) for x in (q, k, v))
    ours = _cuda_grads(lambda *a: kernel_attention("linear_elu", *a, causal=True, form="chunked"), q, k, v)
    theirs = _cuda_grads(fla_linear_elu, q, k, v)
    # fla's float32 dots may run in TF32 (10-bit mantissa); bfloat16 inputs and outputs have 8 bits. Outputs are
    # normalised averages of v and gradients are compared relative to their largest entry: a few units of the
    # coarser format's eps bound both
    eps = 2.0**-10 if dtype == torch.float32 else 2.0**-7
    for name, a, b in zip(("out", "dq", "dk", "dv"), ours, theirs, strict=True):
        scale = float(a.abs().max())
        assert float((a - b).abs().max()) <= 4 * eps * scale, name
