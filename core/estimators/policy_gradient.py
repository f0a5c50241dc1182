"""Policy gradient (REINFORCE) for a categorical policy, and the bridges to zeroth-order estimation.

Su (kexue.fm/archives/7737): to maximise a non-differentiable reward r(y_t, argmax_y p(y|x)), maximise its
expectation under the policy, R = E_{y ~ p} r, whose gradient is E[(r - b) grad log p(y|x)] for any baseline b
that does not depend on the sampled y. For a 0/1 reward R(x) = p(y_t | x) exactly.

Bridges: (i) a Gaussian policy y ~ N(theta, eps^2 I) has score (y - theta) / eps^2 = u / eps, so its REINFORCE
term with b = f(theta) is the forward-difference ZO term sample by sample; (ii) Gumbel(0, 1) noise on the logits
induces exactly the softmax policy (Gumbel-max), and the noise score 1 - exp(-g) turns E[r] into its gradient.
"""

import math

import torch
from torch.distributions import Categorical, Normal

BASELINES = ("none", "mean", "loo")


def reinforce_surrogate(
    logits: torch.Tensor, y: torch.Tensor, gen: torch.Generator, baseline: str = "loo", tau: float = 1.0, entropy: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A surrogate to *maximise*: mean of (r - b) log p(a | x) over the batch, a ~ softmax(logits / tau), r = 1[a = y].

    Args:
        logits (torch.Tensor):
            `[B, K]`.
        y (torch.Tensor):
            Target classes `[B]`.
        gen (torch.Generator):
            Generator of the action samples (on the logits' device).
        baseline (str):
            `"none"`; `"mean"`, the batch mean *including* the sample (biased by the factor 1 - 1/B: control
            Z-C2); `"loo"`, the leave-one-out mean of the others (unbiased).
        tau (float):
            Temperature of the policy.
        entropy (float):
            Weight of the entropy bonus lambda * H(p) added to the surrogate.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: the surrogate (differentiable in the logits) and the rewards `[B]`.
    """
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; expected one of {BASELINES}")
    probs = torch.softmax(logits / tau, dim=-1)
    with torch.no_grad():
        a = torch.multinomial(probs.detach(), 1, generator=gen).squeeze(1)
        r = (a == y).to(logits.dtype)
        if baseline == "mean":
            b = r.mean().expand_as(r)
        elif baseline == "loo":
            b = (r.sum() - r) / (len(r) - 1)
        else:
            b = torch.zeros_like(r)
    dist = Categorical(logits=logits / tau)
    surrogate = ((r - b) * dist.log_prob(a)).mean()
    if entropy:
        surrogate = surrogate + entropy * dist.entropy().mean()
    return surrogate, r


def gaussian_policy_term(f, theta: torch.Tensor, u: torch.Tensor, eps: float, baseline: float) -> torch.Tensor:
    """REINFORCE term of the Gaussian policy y ~ N(theta, eps^2 I) at the sample y = theta + eps u, with baseline b.

    The score grad_theta log N(y; theta, eps^2) comes from autograd on the log-density, so the identity with the
    ZO term (control-free claim Z1) is checked between two independent computations.

    Args:
        f (Callable[[torch.Tensor], float]):
            The reward of a parameter vector.
        theta (torch.Tensor):
            Mean, `[d]`.
        u (torch.Tensor):
            Standard-normal draw, `[d]`.
        eps (float):
            Policy standard deviation.
        baseline (float):
            b.

    Returns:
        torch.Tensor: (f(y) - b) grad_theta log p(y), `[d]`.
    """
    mean = theta.detach().clone().requires_grad_(True)
    sample = (theta + eps * u).detach()
    logp = Normal(mean, eps).log_prob(sample).sum()
    score = torch.autograd.grad(logp, mean)[0]
    return (float(f(sample)) - baseline) * score


def gumbel_noise_score(
    z: torch.Tensor, target: int, n: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Monte Carlo of the Gumbel-perturbed argmax: its class frequencies and the noise-score gradient estimate.

    With g ~ Gumbel(0, 1)^K, P(argmax(z + g) = k) = softmax(z)_k, and E[r (1 - exp(-g))] = grad_z softmax(z)_target
    for r = 1[argmax(z + g) = target] (the score of a location shift of the Gumbel density).

    Args:
        z (torch.Tensor):
            Logits `[K]`.
        target (int):
            Rewarded class.
        n (int):
            Samples.
        gen (torch.Generator):
            Generator.

    Returns:
        tuple[torch.Tensor, torch.Tensor, torch.Tensor]: frequencies `[K]`, gradient estimate `[K]`, its standard
        errors `[K]`.
    """
    uni = torch.rand(n, len(z), generator=gen, dtype=z.dtype).clamp_min(torch.finfo(z.dtype).tiny)
    g = -torch.log(-torch.log(uni))
    a = (z + g).argmax(1)
    freq = torch.bincount(a, minlength=len(z)).to(z.dtype) / n
    terms = (a == target).to(z.dtype)[:, None] * (1 - torch.exp(-g))
    return freq, terms.mean(0), terms.std(0) / math.sqrt(n)


def optimal_baseline(values: torch.Tensor, score_sq: torch.Tensor) -> float:
    """The variance-minimising scalar baseline b* = E[f ||s||^2] / E[||s||^2] from samples of f and ||score||^2."""
    return float((values * score_sq).mean() / score_sq.mean())
