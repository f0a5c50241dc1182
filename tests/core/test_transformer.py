"""The small Transformer LM: causal for every attention variant, and it learns."""

import pytest
import torch

from core.transformer import CausalLM

VARIANTS = ["softmax", "sdpa", "linear_elu", "linear_cos", "taylor2", "softmax_per_token"]


@pytest.mark.parametrize("attention", VARIANTS)
def test_logits_never_depend_on_later_tokens(attention):
    model = CausalLM(vocab=11, context=16, d_model=16, heads=2, layers=2, attention=attention).double()
    x = torch.randint(0, 11, (2, 10))
    emb = model.tok(x).detach().requires_grad_()
    h = emb + model.pos(torch.arange(10))
    for block in model.blocks:
        h = block(h)
    logits = model.head(model.ln(h))
    for t in range(9):
        (g,) = torch.autograd.grad(logits[:, t].sum(), emb, retain_graph=True)
        assert float(g[:, t + 1 :].abs().max()) == 0.0
        assert float(g[:, : t + 1].abs().max()) > 0.0


def test_efficient_attention_is_refused_in_a_causal_model():
    model = CausalLM(vocab=5, context=8, d_model=8, heads=2, layers=1, attention="efficient")
    with pytest.raises(ValueError, match="cannot be causal"):
        model(torch.zeros(1, 4, dtype=torch.long))


def test_a_tiny_model_learns_a_repeating_sequence():
    torch.manual_seed(0)
    model = CausalLM(vocab=4, context=12, d_model=16, heads=2, layers=1, attention="linear_elu")
    x = torch.tensor([[0, 1, 2, 3] * 3])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = float(model.loss(x[:, :-1], x[:, 1:]).detach())
    for _ in range(100):
        opt.zero_grad()
        model.loss(x[:, :-1], x[:, 1:]).backward()
        opt.step()
    assert float(model.loss(x[:, :-1], x[:, 1:]).detach()) < 0.1 * first
