import math

import numpy as np
import pytest
from scipy import stats

from analysis.stats import (
    bootstrap_ci,
    hierarchical_bootstrap,
    hierarchical_mean_distribution,
    holm,
    loglog_slope,
    paired_test,
)


def test_holm_matches_the_step_down_definition():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    # An untested cell (nan) keeps its place as p = 1: the family stays at three, and its own value stays nan.
    out = holm([0.01, math.nan, 0.02])
    assert math.isnan(out[1]) and out[0] == pytest.approx(0.03) and out[2] == pytest.approx(0.04)


def test_paired_test_matches_the_t_formula():
    d = np.array([0.3, 0.1, 0.25, -0.05, 0.2])
    res = paired_test(d)
    se = d.std(ddof=1) / math.sqrt(len(d))
    t = d.mean() / se
    assert res.p == pytest.approx(stats.t.sf(t, len(d) - 1))
    half = stats.t.ppf(0.975, len(d) - 1) * se
    assert (res.ci_low, res.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert paired_test(d, "less").p == pytest.approx(1 - res.p)


def test_one_seed_is_too_few_and_has_no_interval():
    one = paired_test(np.array([0.1]))
    assert one.too_few and math.isnan(one.p) and math.isnan(one.ci_low) and math.isnan(one.ci_high) and one.n == 1
    assert paired_test(np.array([0.2, 0.1]), min_seeds=3).too_few  # the claim's minimum, not only 2
    assert not paired_test(np.array([0.2, 0.1, 0.3]), min_seeds=3).too_few


@pytest.mark.parametrize("n", [2, 3, 5, 7])
def test_equal_differences_get_the_exact_sign_flip_test(n):
    # Every one of the 2^n sign flips has mean +-d; only the unflipped one reaches d: p = 1 / 2^n exactly.
    up = paired_test(np.full(n, 0.1))
    assert (
        up.test == "sign-flip"
        and up.p == pytest.approx(2.0**-n)
        and (up.ci_low, up.ci_high) == pytest.approx((0.1, 0.1), rel=4 * np.finfo(float).eps)
    )
    assert paired_test(np.full(n, 0.1), "less").p == pytest.approx(1.0)  # every flip is <= d
    assert paired_test(np.full(n, -0.1), "less").p == pytest.approx(2.0**-n)
    assert paired_test(np.zeros(n)).p == pytest.approx(1.0)  # no difference at all: no evidence either way
    # Against a margin: differences all equal to 0.1 tested against -0.05 are shifted by 0.15 before flipping.
    assert paired_test(np.full(n, 0.1), popmean=-0.05).p == pytest.approx(2.0**-n)


def test_nan_differences_are_refused():
    with pytest.raises(ValueError, match="nan"):
        paired_test(np.array([0.1, math.nan, 0.2]))


def test_bootstrap_ci_covers_the_median_and_is_seeded():
    x = np.random.default_rng(0).normal(1.0, 1.0, 40)
    lo, hi = bootstrap_ci(x)
    assert lo < np.median(x) < hi
    assert bootstrap_ci(x) == (lo, hi)


def test_loglog_slope_of_a_power_law():
    eps = np.array([0.04, 0.02, 0.01, 0.005])
    assert loglog_slope(eps, 7 * eps**3) == pytest.approx(3.0)


def test_spearman_ci_covers_rho_and_excludes_zero_for_a_strong_trend():
    from analysis.stats import spearman_ci

    rng = np.random.default_rng(1)
    x = np.repeat([0.0, 0.2, 0.4], 5)
    y = x + 0.05 * rng.standard_normal(15)
    lo, hi = spearman_ci(x, y)
    rho = stats.spearmanr(x, y).statistic
    assert lo <= rho <= hi and lo > 0
    assert all(np.isnan(spearman_ci(x[:2], y[:2])))


def test_vectorised_hierarchical_mean_agrees_with_the_loop_in_law():
    rng = np.random.default_rng(3)
    groups = [rng.normal(mu, 1.0, size=n) for mu, n in ((0.0, 40), (0.5, 60), (1.0, 50), (0.2, 30))]
    mean, low, high = hierarchical_bootstrap(groups)
    boot = hierarchical_mean_distribution(groups)
    assert len(boot) == 10_000
    v_low, v_high = np.percentile(boot, [2.5, 97.5])
    width = high - low
    assert abs(v_low - low) < 0.05 * width and abs(v_high - high) < 0.05 * width
    assert abs(boot.mean() - np.mean(np.concatenate(groups))) < 0.02 * width  # a ratio of sums: near the pooled mean
    one = hierarchical_mean_distribution([np.full(7, 2.5)])
    assert np.all(one == 2.5)
