"""Extractive QA: the batched span search against a loop over every pair, the row layout, and that it learns."""

import pytest
import torch

from core.seq2seq import CLS, SEP, Seq2Seq
from core.span_qa import SpanQA, answer, best_span, best_span_naive, qa_batch, qa_loss


@pytest.mark.parametrize("shape,max_len", [((1, 1), 1), ((3, 7), 1), ((3, 7), 3), ((2, 9), 20), ((4, 13), 5)])
def test_best_span_matches_the_loop(shape, max_len):
    g = torch.Generator().manual_seed(sum(shape) + max_len)
    start, end = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    start[:, :1] = -torch.inf  # columns outside the passage, as the model masks them
    end[:, -1:] = -torch.inf if shape[1] > 2 else end[:, -1:]
    if shape[1] == 1:
        start, end = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    s, e = best_span(start, end, max_len)
    ns, ne = best_span_naive(start, end, max_len)
    assert s.tolist() == ns and e.tolist() == ne
    assert ((e - s) >= 0).all() and ((e - s) < max_len).all()


def test_best_span_ties_go_to_the_first_pair():
    start, end = torch.zeros(1, 4), torch.zeros(1, 4)
    assert [x.tolist() for x in best_span(start, end, 2)] == [[0], [0]] and best_span_naive(start, end, 2) == ([0], [0])


def test_qa_rows_and_passage_mask():
    batch, passage, offset = qa_batch([[7, 8], [9]], [[10, 11, 12], [13]])
    assert batch.ids.tolist() == [[CLS, 7, 8, SEP, 10, 11, 12, SEP], [CLS, 9, SEP, 13, SEP, 0, 0, 0]]
    assert batch.segment_ids.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 0, 0, 0]]
    assert offset.tolist() == [4, 3]
    assert passage.tolist() == [[False] * 4 + [True] * 3 + [False], [False] * 3 + [True] + [False] * 4]


def test_span_qa_needs_the_bidirectional_mask():
    with pytest.raises(ValueError, match="bidirectional"):
        SpanQA(Seq2Seq(20, 16, 16, 2, 1, 32, mask="unilm"))


def test_span_qa_learns_to_point_at_the_asked_token():
    """Question [k]: the answer is the passage position holding token k (a lookup the encoder must learn)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = SpanQA(Seq2Seq(20, 24, 32, 2, 2, 64, mask="bidirectional"))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def draw(n):
        questions, passages, where = [], [], []
        for _ in range(n):
            p = torch.randperm(12, generator=g)[:8] + 5
            i = int(torch.randint(0, 8, (1,), generator=g))
            questions.append([int(p[i])])
            passages.append(p.tolist())
            where.append(i)
        return questions, passages, torch.tensor(where)

    for _ in range(80):
        q, p, w = draw(32)
        batch, passage, offset = qa_batch(q, p)
        start, end = model(batch, passage)
        loss = qa_loss(start, end, w + offset, w + offset)
        opt.zero_grad()
        loss.backward()
        opt.step()
    q, p, w = draw(200)
    said = answer(model, q, p, max_len=3)
    hits = sum(s == [row[i]] for s, row, i in zip(said, p, w.tolist(), strict=True))
    assert hits / 200 > 0.9  # chance is 1/8 for the right start and end
