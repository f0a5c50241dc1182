"""The planted tree corpus (spec 04, D-P2): a co-occurrence distribution whose embedding dimension is known.

Words are the N = b^depth leaves of a b-ary tree. A topic level l in {0, ..., depth} is drawn with probability
proportional to 0.5^l, a node uniformly among the b^l nodes of that level, and both words independently and
uniformly from the node's b^(depth - l) leaves. The joint is exact:

    p(i, j) = sum_l w_l [anc_l(i) = anc_l(j)] / (b^l * b^(2 (depth - l))),   w_l = 0.5^l / sum_k 0.5^k.

A tree embeds in about (b - 1) log_b N dimensions, so the knee of the fit must not fall as N or b grows.
"""

import math

import torch


def tree_joint(b: int, depth: int) -> torch.Tensor:
    """The exact joint p(i, j) of the planted tree corpus, float64 `[N, N]` with N = b^depth, summing to 1."""
    if b < 2 or depth < 1:
        raise ValueError(f"need b >= 2 and depth >= 1, got b={b}, depth={depth}")
    N = b**depth
    leaves = torch.arange(N)
    w = torch.tensor([0.5**l for l in range(depth + 1)], dtype=torch.float64)
    w = w / w.sum()
    p = torch.zeros(N, N, dtype=torch.float64)
    for l in range(depth + 1):
        size = b ** (depth - l)  # leaves under a level-l node
        same = (leaves[:, None] // size) == (leaves[None, :] // size)
        p += w[l] * same / (b**l * size**2)
    return p


def naive_tree_joint(b: int, depth: int) -> torch.Tensor:
    """`tree_joint` by enumerating every (level, node, word, word) draw (the reference)."""
    N = b**depth
    z = sum(0.5**l for l in range(depth + 1))
    p = torch.zeros(N, N, dtype=torch.float64)
    for l in range(depth + 1):
        size = b ** (depth - l)
        for node in range(b**l):
            prob = 0.5**l / z / b**l / size**2
            for i in range(node * size, (node + 1) * size):
                for j in range(node * size, (node + 1) * size):
                    p[i, j] += prob
    return p


def entropy(p: torch.Tensor) -> float:
    """Shannon entropy in nats of a probability table (zeros contribute nothing)."""
    q = p[p > 0]
    return float(-(q * q.log()).sum())


def tree_dimension(b: int, N: int) -> float:
    """The generator's dimension scale (b - 1) log_b N."""
    return (b - 1) * math.log(N) / math.log(b)
