"""core.seq2seq: the UniLM mask (closed form and autograd), the two-block layout, the loss, batched decoding against a
per-passage loop, nucleus sampling against its distribution, and the BERT loader against a naive BERT forward."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from core.attention import sdpa, softmax
from core.seq2seq import (
    CLS,
    DECODINGS,
    MASKS,
    PAD,
    SEP,
    Decoding,
    Seq2Seq,
    _prefill,
    _step,
    attention_mask,
    beam_search,
    beam_search_naive,
    decode_pairs,
    dependence,
    generate,
    generate_naive,
    layout,
    leaks,
    load_bert,
    seq2seq_loss,
    split_parts,
    target_ids,
    target_nll,
    top_p_sample,
    unilm_mask,
)

VOCAB = 31


def _batch(seed: int = 0):
    """Passages of 6, 3 and 5 tokens in a width of 7; targets of different lengths (so padding sits both between
    the blocks and after the targets)."""
    g = torch.Generator().manual_seed(seed)
    words = lambda n: torch.randint(5, VOCAB, (n,), generator=g).tolist()  # noqa: E731
    passages = [words(6), words(3), words(5)]
    targets = [target_ids(words(2), words(3)), target_ids(words(1), words(4)), target_ids(words(3), words(1))]
    return passages, targets, layout(passages, targets, width=7)


def _model(mask: str = "unilm", layers: int = 2, seed: int = 0, **kw) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(VOCAB, 40, 16, 2, layers, 32, mask=mask, **kw).double().eval()


def test_unilm_mask_closed_form():
    """Row [CLS] p p [SEP] | a [SEP] q [SEP] | pad: passage sees the passage; target t sees passage and targets <= t."""
    seg = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1, 0]])
    keep = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    got = unilm_mask(seg, keep)[0]
    want = torch.zeros(9, 9, dtype=torch.bool)
    want[:, :4] = True  # everyone (padding query included) sees the passage
    for i in range(4, 8):
        want[i, 4 : i + 1] = True
    want[8, 4:8] = True  # the padding query's cumsum equals the last target's
    assert torch.equal(got, want)
    assert not got[:, 8].any()  # padding is never a visible key
    no_pad = attention_mask("unilm_nopad", seg, keep)[0]
    assert no_pad[7, 8]  # without the key-padding term the final target sees padding (gotcha 1)


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("layers", [1, 3])
def test_dependence_is_exactly_the_visibility_pattern(mask, layers):
    """d logit_i / d e_j is exactly 0 wherever the mask forbids j for i (the UniLM mask is transitive, so depth adds
    nothing), and non-zero where it allows (the test can see)."""
    _, _, batch = _batch()
    dep = dependence(_model(mask, layers), batch)
    allowed = attention_mask(mask, batch.segment_ids, batch.keep)
    real = batch.keep[:, :, None].expand_as(allowed)
    assert float(dep[real & ~allowed].max()) == 0.0
    assert float(dep[real & allowed].min()) > 0.0


def test_leak_summaries_per_mask():
    _, _, batch = _batch()
    got = {m: leaks(_model(m), batch) for m in MASKS}
    assert got["unilm"] == {"future": 0.0, "padding": 0.0, "passage_on_target": 0.0}
    assert got["causal"]["future"] == got["causal"]["padding"] == got["causal"]["passage_on_target"] == 0.0
    assert got["bidirectional"]["future"] > 1e-6 and got["bidirectional"]["passage_on_target"] > 1e-6
    assert got["bidirectional"]["padding"] == 0.0
    assert got["unilm_nopad"]["padding"] > 1e-6 and got["unilm_nopad"]["future"] == 0.0


@pytest.mark.parametrize("mask", ["unilm", "causal", "bidirectional"])
def test_two_block_layout_equals_the_packed_layout(mask):
    """Padding between passage and targets changes nothing: each row's real logits equal its packed row's."""
    passages, targets, batch = _batch()
    model = _model(mask)
    logits = model(batch.ids, batch.segment_ids, batch.keep)
    for r, (p, y) in enumerate(zip(passages, targets, strict=True)):
        ids = torch.tensor([[CLS, *p, SEP, *y]])
        seg = torch.tensor([[0] * (len(p) + 2) + [1] * len(y)])
        packed = model(ids, seg, torch.ones_like(ids, dtype=torch.bool))[0]
        ours = logits[r][batch.keep[r]]
        torch.testing.assert_close(ours, packed, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mask", ["unilm", "bidirectional"])
def test_packed_layout_gives_the_same_loss_and_row_nll(mask):
    passages, targets, batch = _batch(3)
    packed = layout(passages, targets, width=7, packed=True)
    assert packed.ids.shape[1] == max(len(p) + len(y) + 2 for p, y in zip(passages, targets, strict=True)) < batch.ids.shape[1]
    model = _model(mask)
    torch.testing.assert_close(model.loss(packed), model.loss(batch))
    torch.testing.assert_close(target_nll(model, packed), target_nll(model, batch))
    for r, (p, y) in enumerate(zip(passages, targets, strict=True)):
        assert packed.ids[r, : len(p) + len(y) + 2].tolist() == [CLS, *p, SEP, *y]
        assert packed.segment_ids[r].tolist() == [0] * (len(p) + 2) + [1] * len(y) + [0] * (
            packed.ids.shape[1] - len(p) - len(y) - 2
        )


def test_loss_matches_a_loop_over_target_tokens():
    _, targets, batch = _batch()
    model = _model()
    logits = model(batch.ids, batch.segment_ids, batch.keep)
    ces, per_row = [], []
    for r in range(len(targets)):
        row = []
        for t in range(batch.ids.shape[1] - 1):
            if batch.segment_ids[r, t + 1] == 1 and batch.keep[r, t + 1]:
                row.append(-logits[r, t].log_softmax(-1)[batch.ids[r, t + 1]])
        assert len(row) == len(targets[r])  # every target token, both [SEP]s included
        ces += row
        per_row.append(torch.stack(row).mean())
    want = torch.stack(ces).mean()
    torch.testing.assert_close(seq2seq_loss(logits, batch.ids, batch.segment_ids, batch.keep), want)
    torch.testing.assert_close(model.loss(batch), want)
    torch.testing.assert_close(target_nll(model, batch), torch.stack(per_row))


def test_loss_gradients_match_the_full_head():
    _, _, batch = _batch(1)
    a, b = _model(seed=2), _model(seed=2)
    a.loss(batch).backward()
    seq2seq_loss(b(batch.ids, batch.segment_ids, batch.keep), batch.ids, batch.segment_ids, batch.keep).backward()
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad, msg=name)


@pytest.mark.parametrize("order", ["AQ", "QA"])
@pytest.mark.parametrize("decoding", ["greedy_both", "greedy_span"])
def test_batched_greedy_decoding_equals_the_per_passage_loop(order, decoding):
    g = torch.Generator().manual_seed(5)
    passages = [torch.randint(5, VOCAB, (n,), generator=g).tolist() for n in (1, 7, 4, 2, 6)]
    for seed in range(3):
        model = _model(seed=seed)
        got = generate(model, passages, order, DECODINGS[decoding], 3, 5, torch.Generator().manual_seed(0))
        want = [generate_naive(model, p, order, DECODINGS[decoding], 3, 5) for p in passages]
        assert got == want
        for (a, q), p in zip(got, passages, strict=True):
            assert len(a) <= 3 and len(q) <= 5 and SEP not in a + q and PAD not in a + q and CLS not in a + q
            if decoding == "greedy_span":
                assert a and any(p[i : i + len(a)] == a for i in range(len(p)))


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("mask", ["unilm", "causal"])
def test_batched_beam_search_equals_the_per_row_loop(k, mask):
    g = torch.Generator().manual_seed(7)
    passages = [torch.randint(5, VOCAB, (n,), generator=g).tolist() for n in (1, 7, 4, 2, 6)]
    firsts = [torch.randint(5, VOCAB, (n,), generator=g).tolist() for n in (0, 3, 1, 2, 1)]
    wider = 0
    for seed in range(2):
        model = _model(mask, seed=seed)
        for prefix in (None, firsts):
            got = beam_search(model, passages, prefix, 4, k)
            want = [beam_search_naive(model, p, None if prefix is None else prefix[i], 4, k) for i, p in enumerate(passages)]
            assert got == want
            assert all(len(x) <= 4 and SEP not in x and PAD not in x for x in got)
            wider += got != beam_search(model, passages, prefix, 4, 1)
    assert (wider > 0) == (k > 1)  # a wider beam finds other parts here (not a vacuous comparison)


@pytest.mark.parametrize("order", ["AQ", "QA"])
def test_beam_of_width_one_is_greedy_and_prefixes_continue_exactly(order):
    g = torch.Generator().manual_seed(8)
    passages = [torch.randint(5, VOCAB, (n,), generator=g).tolist() for n in (3, 6, 1, 5)]
    model = _model(seed=4)
    greedy = generate(model, passages, order, DECODINGS["greedy_both"], 3, 5, torch.Generator())
    first = [a if order == "AQ" else q for a, q in greedy]
    assert beam_search(model, passages, None, 3 if order == "AQ" else 5, 1) == first
    # A prefix continues where the full decoding left off, by greedy decoding or by a width-1 beam.
    cont = generate(model, passages, order, DECODINGS["greedy_both"], 3, 5, torch.Generator(), prefix=first)
    assert cont == greedy
    assert decode_pairs(model, passages, order, Decoding("beam", "beam", beam=1), 3, 5, torch.Generator()) == greedy
    # Su's decoding with a width-1 beam on the question makes the same random draws as with a greedy question.
    su = generate(model, passages, order, DECODINGS["su"], 3, 5, torch.Generator().manual_seed(1))
    beam1 = decode_pairs(model, passages, order, Decoding("sample", "beam", beam=1), 3, 5, torch.Generator().manual_seed(1))
    assert su == beam1
    wide = decode_pairs(model, passages, order, Decoding("sample", "beam", beam=3), 3, 5, torch.Generator().manual_seed(1))
    if order == "AQ":  # the same sampled answers, questions by a wider beam (in QA the answer follows the question)
        assert [a for a, _ in wide] == [a for a, _ in su]
    with pytest.raises(ValueError, match="cache"):
        beam_search(_model("bidirectional"), passages, None, 3, 2)


@pytest.mark.parametrize("post_norm", [False, True])
@pytest.mark.parametrize("mask", ["unilm", "causal"])
def test_cached_decoding_equals_recomputation(post_norm, mask):
    """Keys and values cached per layer give the same states, greedy pairs and sampled pairs as re-running the whole
    sequence for every token (float64)."""
    g = torch.Generator().manual_seed(7)
    passages = [torch.randint(5, VOCAB, (n,), generator=g).tolist() for n in (1, 7, 4, 2, 6)]
    model = _model(mask, 2, seed=3, post_norm=post_norm)
    for name in ("greedy_both", "sample_both", "su_span"):
        for order in ("AQ", "QA"):
            got = generate(model, passages, order, DECODINGS[name], 3, 5, torch.Generator().manual_seed(1), cache=True)
            want = generate(model, passages, order, DECODINGS[name], 3, 5, torch.Generator().manual_seed(1), cache=False)
            assert got == want
    _, _, batch = _batch(2)
    split = batch.split + 1  # prompt: block A and the target block's [SEP]
    ids, seg, keep = batch.ids[:, :split], batch.segment_ids[:, :split], batch.keep[:, :split]
    full = model.hidden(model.tok(batch.ids), batch.segment_ids, batch.keep)
    h, kv = _prefill(model, ids, seg, keep)
    torch.testing.assert_close(h, full[:, split - 1])
    for col in range(split, batch.ids.shape[1]):
        keep_now = batch.keep[:, : col + 1]
        h, kv = _step(model, batch.ids[:, col], keep_now, batch.keep[:, col], kv)
        real = batch.keep[:, col]
        torch.testing.assert_close(h[real], full[real, col])


def test_a_bidirectional_model_cannot_decode_with_a_cache():
    with pytest.raises(ValueError, match="cannot decode with a cache"):
        generate(_model("bidirectional"), [[5, 6]], "AQ", DECODINGS["su"], 2, 2, torch.Generator(), cache=True)


def test_sampled_span_answers_are_always_passage_spans():
    passages = [[5, 6, 7, 5, 8], [9, 9, 10], [11]]
    model = _model(seed=4)
    gen = torch.Generator().manual_seed(1)
    for order in ("AQ", "QA"):
        for _ in range(5):
            for (a, _q), p in zip(
                generate(model, passages * 4, order, DECODINGS["su_span"], 4, 3, gen), passages * 4, strict=True
            ):
                assert a and any(p[i : i + len(a)] == a for i in range(len(p)))


def test_top_p_sampling_draws_from_the_renormalised_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    gen = torch.Generator().manual_seed(0)
    n = 20_000
    draws = top_p_sample(logits.expand(n, -1), 0.8, gen)
    freq = torch.bincount(draws, minlength=5).double() / n
    want = torch.tensor([0.5, 0.2, 0.15, 0.0, 0.0], dtype=torch.double) / 0.85  # 0.5 + 0.2 < 0.8 <= 0.85
    torch.testing.assert_close(freq, want, atol=0.012, rtol=0)
    assert torch.equal(top_p_sample(logits.expand(50, -1), 1e-9, gen), torch.zeros(50, dtype=torch.long))
    full = torch.bincount(top_p_sample(logits.expand(n, -1), 1.0, gen), minlength=5).double() / n
    torch.testing.assert_close(full, logits.exp()[0].double(), atol=0.012, rtol=0)


def test_decoding_is_reproducible_per_generator_and_stops():
    model = _model(seed=1)
    passages = [[5, 6, 7], [8, 9]]
    a = generate(model, passages, "AQ", DECODINGS["sample_both"], 2, 3, torch.Generator().manual_seed(3))
    b = generate(model, passages, "AQ", DECODINGS["sample_both"], 2, 3, torch.Generator().manual_seed(3))
    assert a == b
    assert split_parts([5, SEP, 6, 7, SEP]) == ([5], [6, 7])
    assert split_parts([5, 6]) == ([5, 6], [])
    with pytest.raises(ValueError, match="order"):
        generate(model, passages, "QQ", DECODINGS["su"], 2, 3, torch.Generator())


def test_explicit_allowed_mask_in_attention():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 5, 4, generator=g, dtype=torch.double) for _ in range(3))
    allowed = torch.rand(2, 5, 5, generator=g) < 0.6
    allowed[0, 2] = False  # a query with no visible key
    keep = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    got = softmax(q, k, v, allowed=allowed, key_padding_mask=keep)
    torch.testing.assert_close(sdpa(q, k, v, allowed=allowed, key_padding_mask=keep), got)
    scores = (q @ k.transpose(-1, -2)) / 2.0
    vis = (allowed & keep[:, None, :])[:, None]
    w = scores.masked_fill(~vis, -math.inf).softmax(-1).nan_to_num(0.0)
    torch.testing.assert_close(got, w @ v)
    assert float(got[0, :, 2].abs().max()) == 0.0


# BERT weights: a tiny random checkpoint in the Hugging Face layout, and a naive BERT forward from its tensors.

CFG = {"vocab_size": 23, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32,
       "max_position_embeddings": 24, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}  # fmt: skip


def _checkpoint(path, legacy: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    d, f, v = CFG["hidden_size"], CFG["intermediate_size"], CFG["vocab_size"]
    r = lambda *s: torch.randn(*s, generator=g) * 0.3  # noqa: E731
    gamma, beta = ("gamma", "beta") if legacy else ("weight", "bias")
    state = {"bert.embeddings.word_embeddings.weight": r(v, d), "bert.embeddings.position_embeddings.weight": r(24, d),
             "bert.embeddings.token_type_embeddings.weight": r(2, d), f"bert.embeddings.LayerNorm.{gamma}": 1 + r(d),
             f"bert.embeddings.LayerNorm.{beta}": r(d), "cls.predictions.transform.dense.weight": r(d, d),
             "cls.predictions.transform.dense.bias": r(d), f"cls.predictions.transform.LayerNorm.{gamma}": 1 + r(d),
             f"cls.predictions.transform.LayerNorm.{beta}": r(d), "cls.predictions.bias": r(v),
             "cls.predictions.decoder.weight": torch.zeros(v, d), "bert.pooler.dense.weight": r(d, d)}  # fmt: skip
    for i in range(CFG["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}."
        shapes = {"attention.self.query": (d, d), "attention.self.key": (d, d), "attention.self.value": (d, d),
                  "attention.output.dense": (d, d), "intermediate.dense": (f, d), "output.dense": (d, f)}  # fmt: skip
        for name, shape in shapes.items():
            state[f"{p}{name}.weight"], state[f"{p}{name}.bias"] = r(*shape), r(shape[0])
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            state[f"{p}{name}.{gamma}"], state[f"{p}{name}.{beta}"] = 1 + r(d), r(d)
    path.mkdir()
    (path / "config.json").write_text(json.dumps(CFG))
    torch.save(state, path / "pytorch_model.bin")
    return {k.replace(".gamma", ".weight").replace(".beta", ".bias"): t.double() for k, t in state.items()}


def _naive_bert(s: dict, ids, seg, allowed) -> torch.Tensor:
    """BERT's forward written out from the checkpoint's tensors (post-norm, erf GELU, -inf mask), tied MLM head."""
    ln = lambda x, n: F.layer_norm(x, x.shape[-1:], s[f"{n}.weight"], s[f"{n}.bias"], 1e-12)  # noqa: E731
    lin = lambda x, n: x @ s[f"{n}.weight"].T + s[f"{n}.bias"]  # noqa: E731
    t = ids.shape[1]
    x = s["bert.embeddings.word_embeddings.weight"][ids] + s["bert.embeddings.position_embeddings.weight"][:t]
    x = ln(x + s["bert.embeddings.token_type_embeddings.weight"][seg], "bert.embeddings.LayerNorm")
    h, dh = CFG["num_attention_heads"], CFG["hidden_size"] // CFG["num_attention_heads"]
    for i in range(CFG["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}."
        q, k, v = (lin(x, f"{p}attention.self.{n}").view(1, t, h, dh).transpose(1, 2) for n in ("query", "key", "value"))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
        a = scores.masked_fill(~allowed[:, None], -math.inf).softmax(-1) @ v
        x = ln(x + lin(a.transpose(1, 2).reshape(1, t, -1), f"{p}attention.output.dense"), f"{p}attention.output.LayerNorm")
        x = ln(x + lin(F.gelu(lin(x, f"{p}intermediate.dense")), f"{p}output.dense"), f"{p}output.LayerNorm")
    y = ln(F.gelu(lin(x, "cls.predictions.transform.dense")), "cls.predictions.transform.LayerNorm")
    return y @ s["bert.embeddings.word_embeddings.weight"].T + s["cls.predictions.bias"]


@pytest.mark.parametrize("legacy", [False, True])
def test_load_bert_matches_a_naive_bert_forward(tmp_path, legacy):
    state = _checkpoint(tmp_path / "bert", legacy)
    model = load_bert(tmp_path / "bert", dropout=0.0).double().eval()
    ids = torch.tensor([[CLS, 7, 8, 9, SEP, 10, SEP, 11, 12, SEP]])
    seg = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1, 1, 1]])
    keep = torch.ones_like(ids, dtype=torch.bool)
    got = model(ids, seg, keep)
    want = _naive_bert(state, ids, seg, unilm_mask(seg, keep))
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_load_bert_gathers_our_vocabulary_from_the_checkpoint_rows(tmp_path):
    """With `keep` (our id -> checkpoint row), our logits are the checkpoint's on the mapped ids, columns gathered."""
    state = _checkpoint(tmp_path / "bert")
    keep = [3, 0, 5, 7, 1, *range(8, 23), 2, 4, 6]  # 23 rows, specials moved
    model = load_bert(tmp_path / "bert", dropout=0.0, keep=keep).double().eval()
    ids = torch.tensor([[CLS, 7, 8, 9, SEP, 10, SEP, 21, 22, SEP]])
    seg = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1, 1, 1]])
    ones = torch.ones_like(ids, dtype=torch.bool)
    want = _naive_bert(state, torch.tensor(keep)[ids], seg, unilm_mask(seg, ones))[..., keep]
    torch.testing.assert_close(model(ids, seg, ones), want, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="token row 23 is outside"):
        load_bert(tmp_path / "bert", keep=[0, 23])


def test_load_bert_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_bert(tmp_path)
    _checkpoint(tmp_path / "bert")
    state = torch.load(tmp_path / "bert" / "pytorch_model.bin", weights_only=True)
    del state["bert.encoder.layer.1.output.dense.bias"]
    torch.save(state, tmp_path / "bert" / "pytorch_model.bin")
    with pytest.raises(ValueError, match="lacks 1 tensors"):
        load_bert(tmp_path / "bert")


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="unknown mask"):
        Seq2Seq(10, 8, 16, 2, 1, 32, mask="diagonal")
    model = Seq2Seq(10, 4, 16, 2, 1, 32)
    with pytest.raises(ValueError, match="context"):
        model(torch.ones(1, 6, dtype=torch.long), torch.zeros(1, 6, dtype=torch.long), torch.ones(1, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="width"):
        layout([[5, 6, 7]], width=2)
