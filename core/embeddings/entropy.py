"""Su Jianlin's entropy argument for the word-vector dimension (https://kexue.fm/archives/7695).

With N words on the sphere of radius sqrt(n) in R^n and separate centre/context tables u, v, the joint model
p(i, j) = exp(<u_i, v_j>) / Z has entropy

    H = log Z - E_p[<u_i, v_j>] ~ 2 log N + h_n,
    h_n = log E[e^{n cos t}] - E[e^{n cos t} n cos t] / E[e^{n cos t}],   t ~ p_n(t) ∝ sin^{n-2} t on [0, pi],

and h_n / n -> -(1/2) ln(golden ratio) ~ -0.2406 (Laplace), so H < 0 once n > 2 ln N / 0.2406 ~ 8.33 ln N.
"""

import math

import numpy as np
import torch
from scipy.special import gammaln, logsumexp

PHI = (1 + math.sqrt(5)) / 2
H_SLOPE = -0.5 * math.log(PHI)
"""The limit of h_n / n, -0.240606."""
SU_CONSTANT = 8.33
"""The article's rounded 2 / 0.24."""


def su_entropy_h(n: int, m: int = 200_001) -> float:
    """h_n by the trapezoid-free midpoint sum of the article, in float64 and log space.

    Args:
        n (int):
            Dimension, at least 2.
        m (int):
            Grid points on [0, pi] (end points dropped, where sin^{n-2} vanishes).

    Returns:
        float: h_n in nats.
    """
    if n < 2:
        raise ValueError(f"h_n needs n >= 2, got {n}")
    th = np.linspace(0.0, np.pi, m)[1:-1]
    logp = gammaln(n / 2) - gammaln((n - 1) / 2) - 0.5 * np.log(np.pi) + (n - 2) * np.log(np.sin(th))
    lw = logp + n * np.cos(th)  # log[p_n(t) e^{n cos t}]
    log_e = logsumexp(lw) + np.log(th[1] - th[0])  # log E[e^{n cos t}]
    w = np.exp(lw - lw.max())
    return float(log_e - (w * n * np.cos(th)).sum() / w.sum())


def approx_entropy(num_words: int, n: int) -> float:
    """The article's approximation 2 ln N + h_n."""
    return 2 * math.log(num_words) + su_entropy_h(n)


def sphere(num: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """`num` vectors uniform on the sphere of radius sqrt(n), float64 `[num, n]`."""
    x = torch.randn(num, n, generator=gen, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True) * math.sqrt(n)


def exact_entropy(u: torch.Tensor, v: torch.Tensor) -> float:
    """Entropy of the joint p(i, j) ∝ exp(<u_i, v_j>) over all N x N pairs: log Z - E_p[<u_i, v_j>].

    Args:
        u (torch.Tensor):
            Centre vectors `[N, n]`.
        v (torch.Tensor):
            Context vectors `[N, n]`.

    Returns:
        float: H in nats.
    """
    s = u @ v.T
    log_z = torch.logsumexp(s.flatten(), 0)
    p = torch.exp(s - log_z)
    return float(log_z - (p * s).sum())


def self_probability(u: torch.Tensor) -> torch.Tensor:
    """Tied-vector capacity: p(self | i) = softmax_j(<u_i, u_j>)_i for every i, `[N]`."""
    return torch.softmax(u @ u.T, dim=1).diagonal()
