"""Skip-gram losses: the full softmax over a co-occurrence table, and negative sampling (SGNS), with naive twins.

Full softmax (the article's model, two tables u and v):

    joint:        L = -sum_ij C_ij log( exp(<u_i, v_j>) / sum_kl exp(<u_k, v_l>) ) / sum_ij C_ij
    conditional:  L = -sum_ij C_ij log( exp(<u_i, v_j>) / sum_l exp(<u_i, v_l>) ) / sum_ij C_ij

computed with one `[N, n] x [n, N]` product, so a step is one matrix product on any device. SGNS on pairs
(w, c) with K negatives each:

    L = mean over pairs of  -log sigma(<u_w, v_c>) - sum_k log sigma(-<u_w, v_{n_k}>).

The `naive_*` functions evaluate the same sums pair by pair in Python; the tests compare losses and
gradients against them.
"""

import torch
import torch.nn.functional as F


def fullsoftmax_loss(u: torch.Tensor, v: torch.Tensor, counts: torch.Tensor, joint: bool = False) -> torch.Tensor:
    """Cross-entropy of a co-occurrence table under the full-softmax skip-gram.

    Args:
        u (torch.Tensor):
            Centre vectors `[N, n]`.
        v (torch.Tensor):
            Context vectors `[N, n]`.
        counts (torch.Tensor):
            Non-negative co-occurrence counts or probabilities `[N, N]` (row: centre, column: context).
        joint (bool):
            `True`: softmax over all N^2 pairs (the article's joint model); `False`: softmax over contexts per centre.

    Returns:
        torch.Tensor: mean negative log-likelihood per co-occurrence, shape `[]`.
    """
    logits = u @ v.T
    logp = logits - torch.logsumexp(logits.flatten(), 0) if joint else torch.log_softmax(logits, dim=1)
    return -(counts * logp).sum() / counts.sum()


def naive_fullsoftmax_loss(u: torch.Tensor, v: torch.Tensor, counts: torch.Tensor, joint: bool = False) -> torch.Tensor:
    """`fullsoftmax_loss` by loops over pairs (the reference)."""
    N = u.shape[0]
    total, mass = u.new_zeros(()), u.new_zeros(())
    log_z = torch.log(sum(torch.exp(u[k] @ v[l]) for k in range(N) for l in range(N))) if joint else None
    for i in range(N):
        row_z = log_z if joint else torch.log(sum(torch.exp(u[i] @ v[l]) for l in range(N)))
        for j in range(N):
            if counts[i, j] != 0:
                total = total - counts[i, j] * (u[i] @ v[j] - row_z)
                mass = mass + counts[i, j]
    return total / mass


def sgns_loss(u: torch.Tensor, v: torch.Tensor, centers: torch.Tensor, contexts: torch.Tensor, negatives: torch.Tensor):
    """Mean SGNS loss over pairs.

    Args:
        u (torch.Tensor):
            Centre vectors `[N, n]`.
        v (torch.Tensor):
            Context vectors `[N, n]`.
        centers (torch.Tensor):
            Word ids `[P]`.
        contexts (torch.Tensor):
            Positive context ids `[P]`.
        negatives (torch.Tensor):
            Negative ids `[P, K]`.

    Returns:
        torch.Tensor: shape `[]`.
    """
    uw = u[centers]  # [P, n]
    pos = (uw * v[contexts]).sum(-1)  # [P]
    neg = torch.einsum("pd,pkd->pk", uw, v[negatives])  # [P, K]
    return (-F.logsigmoid(pos) - F.logsigmoid(-neg).sum(-1)).mean()


def naive_sgns_loss(u, v, centers, contexts, negatives) -> torch.Tensor:
    """`sgns_loss` pair by pair (the reference)."""
    total = u.new_zeros(())
    for p in range(len(centers)):
        w, c = int(centers[p]), int(contexts[p])
        total = total - torch.log(torch.sigmoid(u[w] @ v[c]))
        for k in negatives[p].tolist():
            total = total - torch.log(torch.sigmoid(-(u[w] @ v[k])))
    return total / len(centers)


def fullsoftmax_grad(u: torch.Tensor, v: torch.Tensor, counts: torch.Tensor, joint: bool = False):
    """`fullsoftmax_loss` and its gradients in closed form (no autograd graph over the `[N, N]` logits).

    With M = sum C and q the model's softmax (joint or per row), dL/dlogits = (q * m - C) / M, where m = M (joint)
    or the row sums of C (conditional); then dL/du = G v and dL/dv = G^T u.

    Args:
        u (torch.Tensor):
            Centre vectors `[N, n]`.
        v (torch.Tensor):
            Context vectors `[N, n]`.
        counts (torch.Tensor):
            Co-occurrence counts `[N, N]`.
        joint (bool):
            Joint or conditional softmax.

    Returns:
        tuple: loss `[]`, dL/du `[N, n]`, dL/dv `[N, n]`.
    """
    mass = counts.sum()
    logits = u @ v.T
    if joint:
        lse = torch.logsumexp(logits.flatten(), 0)
        q = torch.exp(logits - lse)
        loss = lse - (counts * logits).sum() / mass
        g = q - counts / mass
    else:
        logp = torch.log_softmax(logits, dim=1)
        loss = -(counts * logp).sum() / mass
        g = (torch.exp(logp) * counts.sum(1, keepdim=True) - counts) / mass
    return loss, g @ v, g.T @ u


def fit_fullsoftmax(
    counts: torch.Tensor,
    dim: int,
    steps: int,
    lr: float,
    seed: int,
    joint: bool = False,
    init_scale: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Full-batch Adam on the full-softmax skip-gram loss (one `[N, N]` product per step, on `counts`' device).

    Args:
        counts (torch.Tensor):
            Co-occurrence counts or probabilities `[N, N]`.
        dim (int):
            Embedding dimension n.
        steps (int):
            Adam steps.
        lr (float):
            Adam learning rate.
        seed (int):
            Seed of the Gaussian initialisation (drawn on the CPU, so equal across devices).
        joint (bool):
            Joint or conditional softmax (see `fullsoftmax_loss`).
        init_scale (float):
            Standard deviation of the initial entries.

    Returns:
        tuple: u `[N, n]`, v `[N, n]` and the loss before every step.
    """
    gen = torch.Generator().manual_seed(seed)
    N = counts.shape[0]
    u, v = ((init_scale * torch.randn(N, dim, generator=gen, dtype=counts.dtype)).to(counts.device) for _ in range(2))
    opt = torch.optim.Adam([u, v], lr=lr)
    losses = []
    for _ in range(steps):
        loss, u.grad, v.grad = fullsoftmax_grad(u, v, counts, joint)
        opt.step()
        losses.append(float(loss))
    return u, v, losses
