"""The epsilon-knee of a quality-vs-dimension curve (spec 04, section 3) and the knee-vs-N model comparison.

Q(n) is a quality (higher is better) on a grid of dimensions. Per seed, Q is smoothed by isotonic regression
(non-decreasing in n); the seed-mean curve gives

    Q_plat = mean of Q at the two largest dimensions,
    n_eps = min{ n : Q(n) >= Q_plat - eps (Q_plat - Q(n_min)) }.

If the raw seed-mean curve falls by more than eps * range after its peak, the curve is `non_monotone`: the knee
is then taken on the raw mean curve with Q_plat its maximum (both definitions are reported).
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats
from sklearn.isotonic import IsotonicRegression


def isotonic(n: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The non-decreasing least-squares fit of q on n."""
    return IsotonicRegression(increasing=True).fit_transform(np.asarray(n, float), np.asarray(q, float))


def knee_of_curve(n: np.ndarray, q: np.ndarray, eps: float, plateau: str = "top2") -> float:
    """The epsilon-knee of one curve (no smoothing here).

    Args:
        n (np.ndarray):
            Sorted dimensions `[G]`.
        q (np.ndarray):
            Quality at each dimension `[G]`, higher is better.
        eps (float):
            Fraction of the range below the plateau that still counts as "on the plateau".
        plateau (str):
            `top2`: mean of the two largest dimensions; `max`: the curve's maximum.

    Returns:
        float: the smallest grid dimension on the plateau.
    """
    n, q = np.asarray(n, float), np.asarray(q, float)
    plat = q[-2:].mean() if plateau == "top2" else q.max()
    threshold = plat - eps * (plat - q[0])
    return float(n[np.flatnonzero(q >= threshold - 1e-12 * max(1.0, abs(plat)))[0]])


def non_monotone(n: np.ndarray, q_mean: np.ndarray, eps: float) -> bool:
    """Whether the seed-mean curve falls by more than eps * (max - min) after its peak."""
    q_mean = np.asarray(q_mean, float)
    peak = int(np.argmax(q_mean))
    span = q_mean.max() - q_mean.min()  # the curve's range (Q_plat - Q(n_min) is <= 0 when the peak is at n_min)
    return bool(span > 0 and (q_mean[peak] - q_mean[peak:].min()) > eps * span)


@dataclass(frozen=True)
class Knee:
    """A knee with its bootstrap interval over seeds."""

    knee: float
    """n_eps of the seed-mean curve (isotonic per seed, or raw if `non_monotone`)."""
    ci_low: float
    """2.5% bootstrap quantile over seeds."""
    ci_high: float
    """97.5% bootstrap quantile."""
    non_monotone: bool
    """The raw mean curve falls by more than eps * range after its peak."""
    knee_isotonic: float
    """The knee by the isotonic definition, whatever `non_monotone` says."""
    knee_raw: float
    """The knee of the raw mean curve with Q_plat = max."""
    boot: np.ndarray
    """Bootstrap knees (for ratio intervals)."""


def knee(n: np.ndarray, q: np.ndarray, eps: float = 0.05, resamples: int = 2000, seed: int = 0) -> Knee:
    """The epsilon-knee of curves over seeds, with a percentile bootstrap over seeds.

    Args:
        n (np.ndarray):
            Sorted dimensions `[G]`.
        q (np.ndarray):
            Quality `[S, G]`, one row per seed, higher is better.
        eps (float):
            The knee's tolerance.
        resamples (int):
            Bootstrap resamples of the seeds.
        seed (int):
            Seed of the resampling.

    Returns:
        Knee: knee, interval, flags and the bootstrap distribution.
    """
    n, q = np.asarray(n, float), np.atleast_2d(np.asarray(q, float))
    smooth = np.stack([isotonic(n, row) for row in q])
    nm = non_monotone(n, q.mean(0), eps)

    def stat(idx):
        idx = np.asarray(idx, int)
        if nm:
            return knee_of_curve(n, q[idx].mean(0), eps, "max")
        return knee_of_curve(n, smooth[idx].mean(0), eps, "top2")

    k_iso = knee_of_curve(n, smooth.mean(0), eps, "top2")
    k_raw = knee_of_curve(n, q.mean(0), eps, "max")
    rng = np.random.default_rng(seed)
    S = len(q)
    boot = np.array([stat(rng.integers(0, S, S)) for _ in range(resamples)])
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return Knee(k_raw if nm else k_iso, float(lo), float(hi), nm, k_iso, k_raw, boot)


def kneedle(n: np.ndarray, q: np.ndarray) -> float:
    """Kneedle (Satopaa et al. 2011) on Q vs log2 n: the grid point farthest above the chord of the normalised curve."""
    x = np.log2(np.asarray(n, float))
    y = np.asarray(q, float)
    x = (x - x[0]) / (x[-1] - x[0])
    span = y.max() - y.min()
    y = (y - y.min()) / span if span > 0 else np.zeros_like(y)
    return float(np.asarray(n, float)[int(np.argmax(y - x))])


def fit_models(num_words: np.ndarray, knees: np.ndarray) -> dict[str, dict]:
    """Least-squares fits of knee vs N: a ln N + b, c N^alpha, constant; AIC = k ln(RSS / m) + 2 p (Gaussian errors).

    Args:
        num_words (np.ndarray):
            Vocabulary sizes `[m]`.
        knees (np.ndarray):
            Knees `[m]`.

    Returns:
        dict[str, dict]: per model, its parameters, RSS and AIC.
    """
    x, y = np.asarray(num_words, float), np.asarray(knees, float)
    m = len(x)
    out = {}
    lin = stats.linregress(np.log(x), y)
    out["log"] = {"a": float(lin.slope), "b": float(lin.intercept), "pred": lin.slope * np.log(x) + lin.intercept, "p": 2}
    try:
        (c, alpha), _ = optimize.curve_fit(lambda N, c, a: c * N**a, x, y, p0=(y.mean() / x.mean() ** 0.2, 0.2), maxfev=20000)
    except (RuntimeError, TypeError):
        c, alpha = math.nan, math.nan
    out["power"] = {"c": float(c), "alpha": float(alpha), "pred": c * x**alpha, "p": 2}
    out["constant"] = {"c": float(y.mean()), "pred": np.full(m, y.mean()), "p": 1}
    for v in out.values():
        rss = float(((y - v.pop("pred")) ** 2).sum())
        v["rss"] = rss
        v["aic"] = m * math.log(max(rss, 1e-12) / m) + 2 * v["p"]
    return out


def origin_slope(num_words: np.ndarray, knees: np.ndarray) -> float:
    """Least-squares slope a of knee = a ln N (through the origin)."""
    lx = np.log(np.asarray(num_words, float))
    return float((lx * np.asarray(knees, float)).sum() / (lx**2).sum())
