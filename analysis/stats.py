"""Statistics behind the verdicts, all through scipy: the paired test, Holm, bootstrap CIs, log-log slopes.

With 5 seeds the spec uses one-sided paired t-tests: the exact Wilcoxon signed-rank test at n = 5 has a
smallest one-sided p of 1/32 and can never pass a Holm-adjusted threshold over two or more cells.
"""

from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 10_000


@dataclass(frozen=True)
class Paired:
    """A one-sided test of mean(diffs) against a value, with a two-sided 95% interval of the mean."""

    mean: float
    """Mean paired difference (nan without differences)."""
    ci_low: float
    """Lower end of the 95% t-interval (nan with too few seeds; the point itself when every difference is equal)."""
    ci_high: float
    """Upper end."""
    p: float
    """One-sided p-value in the requested direction (nan with too few seeds)."""
    n: int
    """Number of pairs."""
    test: str = "t"
    """`t` (paired t-test), `sign-flip` (exact permutation test: every difference equal) or `too few seeds`."""

    @property
    def too_few(self) -> bool:
        return self.test == "too few seeds"


def paired_test(diffs: np.ndarray, alternative: str = "greater", popmean: float = 0.0, min_seeds: int = 2) -> Paired:
    """The one paired test behind every verdict: one-sided, on differences `a - b` (one per seed).

    A paired t-test where the t statistic is defined. When every difference is equal (zero variance, n >= 2) the
    exact sign-flip permutation test of the mean (all 2^n flips of `diffs - popmean`; five equal positive
    differences give one-sided p = 1/32). With fewer than `min_seeds` (and always below 2) there is no test: p and
    the interval are nan and `test` says "too few seeds", so no rule can decide on a zero-width interval.

    Args:
        diffs (np.ndarray):
            Paired differences, one per seed (nan entries are an error: say which runs are missing instead).
        alternative (str):
            `"greater"` tests mean > popmean, `"less"` mean < popmean.
        popmean (float):
            The value tested against (a margin for non-inferiority).
        min_seeds (int):
            The claim's minimum number of seeds.

    Returns:
        Paired: mean, 95% interval of the mean, one-sided p, n and the test used.
    """
    d = np.asarray(diffs, dtype=float)
    if np.isnan(d).any():
        raise ValueError("paired differences contain nan: leave the pair out and name it instead")
    n = len(d)
    mean = float(d.mean()) if n else float("nan")
    if n < max(2, min_seeds):
        return Paired(mean, float("nan"), float("nan"), float("nan"), n, "too few seeds")
    if np.ptp(d) == 0:
        flips = stats.permutation_test((d - popmean,), np.mean, permutation_type="samples", alternative=alternative,
                                       n_resamples=np.inf)  # fmt: skip
        return Paired(mean, mean, mean, float(flips.pvalue), n, "sign-flip")
    res = stats.ttest_1samp(d, popmean, alternative=alternative)
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    return Paired(mean, float(ci.low), float(ci.high), float(res.pvalue), n, "t")


def holm(pvalues: list[float]) -> list[float]:
    """Holm step-down adjusted p-values. A nan p-value (a cell that could not be tested) counts as 1: it keeps its
    place in the family, so the family never shrinks, and its adjusted value stays nan.

    Args:
        pvalues (list[float]):
            Raw p-values of one claim's cells.

    Returns:
        list[float]: adjusted p-values in the same order, each at most 1.
    """
    p = np.asarray(pvalues, dtype=float)
    filled = np.where(np.isnan(p), 1.0, p)
    out = np.full(len(p), np.nan)
    order = np.argsort(filled, kind="stable")
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * filled[i]))
        out[i] = running
    out[np.isnan(p)] = np.nan
    return out.tolist()


def holm_columns(rows: list[dict], *keys: str) -> None:
    """Holm-adjust each column `key` of a claim's per-cell rows in place, as `<key>_holm` (one family per key).

    Args:
        rows (list[dict]):
            One dict per cell.
        *keys (str):
            Names of the raw p-value columns.
    """
    for key in keys:
        for r, p in zip(rows, holm([r[key] for r in rows]), strict=True):
            r[f"{key}_holm"] = p


def bootstrap_ci(x: np.ndarray, statistic=np.median, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap CI of a one-sample statistic (10,000 resamples, seeded).

    Args:
        x (np.ndarray):
            Sample.
        statistic (Callable):
            Vectorised statistic taking `axis`, e.g. `np.median`.
        seed (int):
            Seed of the resampling.

    Returns:
        tuple[float, float]: the interval; (nan, nan) when fewer than 2 values.
    """
    x = np.asarray(x, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0:
        v = float(statistic(x)) if len(x) else float("nan")
        return v, v
    res = stats.bootstrap(
        (x,), statistic, n_resamples=BOOTSTRAP_RESAMPLES, method="percentile", rng=np.random.default_rng(seed)
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    """OLS slope of log y on log x (the order of an error in a step size).

    Args:
        x (np.ndarray):
            Positive abscissae (step sizes).
        y (np.ndarray):
            Positive errors.

    Returns:
        float: the slope.
    """
    return float(stats.linregress(np.log(np.asarray(x, float)), np.log(np.asarray(y, float))).slope)


def spearman_ci(x: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap CI of Spearman's rho, resampling (x, y) pairs (10,000 resamples, seeded).

    Args:
        x (np.ndarray):
            First variable.
        y (np.ndarray):
            Second variable, paired with `x`.
        seed (int):
            Seed of the resampling.

    Returns:
        tuple[float, float]: the interval; (nan, nan) with fewer than 3 pairs.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3:
        return float("nan"), float("nan")

    def rho(a, b):
        return stats.spearmanr(a, b).statistic

    res = stats.bootstrap((x, y), rho, paired=True, vectorized=False, n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
                          rng=np.random.default_rng(seed))  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def hierarchical_bootstrap(
    groups: list[np.ndarray], level: float = 0.95, seed: int = 0, statistic=np.mean
) -> tuple[float, float, float]:
    """Percentile CI of a statistic of values nested in groups (seeds, then test chunks), resampling both levels.

    scipy's `bootstrap` resamples one level only; here each resample draws groups with replacement and then,
    within each drawn group, its values (rows) with replacement (10,000 resamples, seeded).

    Args:
        groups (list[np.ndarray]):
            One array of values per group (e.g. per seed, the per-chunk paired differences); 2-D arrays hold
            paired values in columns (rows are resampled together).
        level (float):
            Two-sided coverage; 0.90 gives the one-sided 95% bounds of a TOST.
        seed (int):
            Seed of the resampling.
        statistic (Callable):
            Function of the concatenated rows; the mean of all values by default, e.g. a ratio of column means.

    Returns:
        tuple[float, float, float]: the statistic on all values, and the interval's low and high ends.
    """
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not groups:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    stats_ = np.empty(BOOTSTRAP_RESAMPLES)
    for b in range(BOOTSTRAP_RESAMPLES):
        picked = rng.integers(0, len(groups), size=len(groups))
        rows = [groups[i][rng.integers(0, len(groups[i]), size=len(groups[i]))] for i in picked]
        stats_[b] = statistic(np.concatenate(rows))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats_, [tail, 100 - tail])
    return float(statistic(np.concatenate(groups))), float(low), float(high)


def hierarchical_mean_distribution(groups: list[np.ndarray], seed: int = 0) -> np.ndarray:
    """The 10,000 resampled means of `hierarchical_bootstrap`'s scheme (groups with replacement, then each drawn
    group's values with replacement), vectorised: drawn per (slot, group) instead of per resample, which is tens of
    times faster for hundreds of values per group. Its draws differ from the loop's, so the two agree in law only
    (a test compares their intervals); the full distribution gives bootstrap p-values."""
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, len(groups), size=(BOOTSTRAP_RESAMPLES, len(groups)))
    total, count = np.zeros(BOOTSTRAP_RESAMPLES), np.zeros(BOOTSTRAP_RESAMPLES)
    for slot in range(len(groups)):
        for i, g in enumerate(groups):
            rows = np.nonzero(picked[:, slot] == i)[0]
            total[rows] += g[rng.integers(0, len(g), size=(len(rows), len(g)))].sum(1)
            count[rows] += len(g)
    return total / count
