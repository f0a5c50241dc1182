"""analysis.rules on planted data: every shape's SUPPORTED, REFUTED and INCONCLUSIVE, and the cases where partial or
degenerate data must not decide (one seed, too few seeds in one cell, equal differences, an untested Holm member)."""

import numpy as np
import pandas as pd
import pytest

from analysis.rules import (
    AllOf,
    Bounds,
    Cell,
    Control,
    Equivalence,
    Estimate,
    Exact,
    Exceeds,
    NonInferiority,
    Scaling,
    Superiority,
    Trend,
    Within,
)
from analysis.verdict import FAIL, INCONCLUSIVE, PASS, REFUTED, SUPPORTED, Claim, StudyClaims, Tables, evaluate

RNG = np.random.default_rng(0)
UP = np.array([0.031, 0.024, 0.040, 0.028, 0.035])  # clearly positive, five seeds
DOWN = -UP


def test_superiority_in_every_cell():
    rule = Superiority("acc(A) - acc(B)")
    assert rule.decide([Cell("eta=0", UP), Cell("eta=0.2", UP + 0.01)]).verdict == SUPPORTED
    v = rule.decide([Cell("eta=0", UP), Cell("eta=0.2", DOWN)])
    assert v.verdict == REFUTED and v.detail[1]["decision"] == REFUTED and v.effect == pytest.approx(DOWN.mean())
    assert rule.decide([Cell("eta=0", UP), Cell("eta=0.2", UP * [1, -1, 1, -1, 1])]).verdict == INCONCLUSIVE


def test_half_of_the_cells():
    rule = Superiority("acc(A) - acc(B)", combine="half")
    noisy = np.array([0.02, -0.01, 0.015, -0.02, 0.01])
    assert rule.decide([Cell("a", UP), Cell("b", noisy)]).verdict == SUPPORTED
    assert rule.decide([Cell("a", UP), Cell("b", noisy), Cell("c", noisy)]).verdict == INCONCLUSIVE
    assert rule.decide([Cell("a", UP), Cell("b", DOWN)]).verdict == REFUTED


def test_lower_is_better():
    rule = Superiority("loss(A) - loss(B)", alternative="less")
    assert rule.decide([Cell("x", DOWN)]).verdict == SUPPORTED
    assert rule.decide([Cell("x", UP)]).verdict == REFUTED


def test_a_minimum_effect():
    rule = Superiority("acc(A) - acc(B)", delta=0.1)
    assert rule.decide([Cell("x", UP + 0.1)]).verdict == SUPPORTED
    v = rule.decide([Cell("x", UP)])  # significant, but its whole interval lies short of 0.1
    assert v.verdict == REFUTED and v.ci_high < 0.1
    assert "by at least 0.1" in rule.text()


def test_one_seed_decides_nothing():
    v = Superiority("d").decide([Cell("x", [0.5])])
    assert v.verdict == INCONCLUSIVE and "too few seeds" in v.reason and np.isnan(v.ci_low) and np.isnan(v.p_value)


def test_a_cell_with_too_few_seeds_keeps_the_claim_undecided():
    # The other cell alone would support; a claim over every cell (or a Holm family) is not decided on what remains.
    for combine in ("all", "half"):
        v = Superiority("d", combine=combine).decide([Cell("a", UP), Cell("b", UP[:2])])
        assert v.verdict == INCONCLUSIVE and "too few seeds in b (n = 2 < 3)" in v.reason


def test_the_undecidable_cell_stays_in_the_holm_family():
    # Two cells each at raw p ~ 0.0010 (t) -> Holm x2; a third, untested, still counts: x3 for the smallest.
    two = Superiority("d", min_seeds=3).decide([Cell("a", UP), Cell("b", UP)])
    three = Superiority("d", min_seeds=3).decide([Cell("a", UP), Cell("b", UP), Cell("c", UP[:1])])
    p_raw = two.detail[0]["p"]
    assert two.detail[0]["p_holm"] == pytest.approx(2 * p_raw) and three.detail[0]["p_holm"] == pytest.approx(3 * p_raw)
    assert three.verdict == INCONCLUSIVE


def test_equal_differences_use_the_exact_sign_flip_test():
    # Five equal gains: one-sided p = 1/32 < 0.05 alone, but 2/32 after Holm over two cells.
    same = np.full(5, 0.02)
    one = Superiority("d").decide([Cell("a", same)])
    assert one.verdict == SUPPORTED and one.p_value == pytest.approx(1 / 32) and one.detail[0]["test"] == "sign-flip"
    assert Superiority("d").decide([Cell("a", same), Cell("b", same)]).verdict == INCONCLUSIVE
    assert Superiority("d").decide([Cell("a", np.zeros(5))]).verdict == INCONCLUSIVE  # no difference: no evidence


def test_left_out_runs_are_named():
    v = Superiority("d").decide([Cell("eta=0.2", UP, ("seed 4 of b*: diverged",))])
    assert "left out: eta=0.2: seed 4 of b*: diverged" in v.reason


def test_non_inferiority_and_equivalence():
    near = np.array([-0.002, 0.001, -0.001, 0.0005, -0.0015])
    ni = NonInferiority("acc(A) - acc(B)", margin=0.01)
    assert ni.decide([Cell("x", near)]).verdict == SUPPORTED
    assert ni.decide([Cell("x", near - 0.05)]).verdict == REFUTED
    loss = NonInferiority("loss(A) - loss(B)", margin=0.01, alternative="less")
    assert loss.decide([Cell("x", near)]).verdict == SUPPORTED and loss.decide([Cell("x", near + 0.05)]).verdict == REFUTED
    eq = Equivalence("d", margin=0.01)
    assert eq.decide([Cell("x", near)]).verdict == SUPPORTED
    assert eq.decide([Cell("x", near + 0.5)]).verdict == REFUTED
    assert eq.decide([Cell("x", near + 0.01)]).verdict == INCONCLUSIVE  # straddles the margin
    assert "margin 0.01" in ni.text() and "+-0.01" in eq.text()


def test_trend():
    x = np.repeat([0.0, 0.2, 0.4], 5)
    y = x + 0.05 * RNG.standard_normal(15)
    assert Trend("b* with eta").decide(x, y).verdict == SUPPORTED
    assert Trend("b* with eta").decide(x, -y).verdict == REFUTED
    assert Trend("b* with eta", min_rho=0.99).decide(x, y).verdict == INCONCLUSIVE
    assert Trend("b* with eta").decide([1, 2], [1, 2]).verdict == INCONCLUSIVE
    assert "left out: seed 2: failed" in Trend("t").decide(x, y, left_out=["seed 2: failed"]).reason


def test_scaling():
    n = np.array([64, 128, 256, 512, 1024, 2048], dtype=float)
    t = 3e-6 * n**2 * np.exp(0.02 * RNG.standard_normal(len(n)))
    assert Scaling("time against n", 1.8, 2.2).decide(n, t).verdict == SUPPORTED
    v = Scaling("time against n", 0.9, 1.1).decide(n, t)
    assert v.verdict == REFUTED and v.effect == pytest.approx(2.0, abs=0.05)
    assert Scaling("time against n", 1.8, 2.2).decide(n[:2], t[:2]).verdict == INCONCLUSIVE


def test_exceeds_on_an_interval_computed_elsewhere():
    by_interval = Exceeds("validity", 0.6)
    assert by_interval.decide(Estimate(0.7, 0.62, 0.78, n=3)).verdict == SUPPORTED
    assert by_interval.decide(Estimate(0.7, 0.58, 0.78, n=3)).verdict == INCONCLUSIVE
    assert by_interval.decide(Estimate(0.5, 0.45, 0.55, n=3)).verdict == REFUTED
    v = by_interval.decide(Estimate(0.9, 0.85, 0.95, n=1))  # one seed: a narrow interval over items decides nothing
    assert v.verdict == INCONCLUSIVE and "too few seeds" in v.reason
    by_estimate = Exceeds("gain", 0.02, by="estimate")
    assert by_estimate.decide(Estimate(0.03, 0.005, 0.05, n=3, p=0.01)).verdict == SUPPORTED
    assert by_estimate.decide(Estimate(0.03, 0.005, 0.05, n=3, p=0.2)).verdict == INCONCLUSIVE  # not significant (Holm)
    assert by_estimate.decide(Estimate(0.03, -0.01, 0.07, n=3)).verdict == INCONCLUSIVE  # interval reaches 0
    assert by_estimate.decide(Estimate(0.0, -0.01, 0.01, n=3)).verdict == REFUTED
    assert "lower end is >= 0.6" in by_interval.text() and "above 0" in by_estimate.text()


def test_within_and_all_of():
    rule = Within("ratio per N", 0.5, 2.0)
    inside, wide, out = (Estimate(1.0, 0.8, 1.3, 3, label="N=1k"), Estimate(1.0, 0.4, 1.3, 3, label="N=4k"),
                         Estimate(3.0, 2.5, 3.5, 3, label="N=16k", left_out=("seed 2: failed",)))  # fmt: skip
    assert rule.decide([inside]).verdict == SUPPORTED and rule.decide([inside, wide]).verdict == INCONCLUSIVE
    v = rule.decide([inside, out])
    assert v.verdict == REFUTED and v.effect == 3.0 and "left out: N=16k: seed 2: failed" in v.reason
    few = rule.decide([inside, Estimate(3.0, 2.5, 3.5, 2, label="N=16k")])  # refuting data, but too few seeds
    assert few.verdict == INCONCLUSIVE and few.reason.startswith("too few seeds in N=16k")
    both = AllOf((Exceeds("a", 0.6), rule), "both")
    assert both.decide((Estimate(0.7, 0.65, 0.8, 3),), ([inside],)).verdict == SUPPORTED
    assert both.decide((Estimate(0.5, 0.4, 0.55, 3),), ([inside],)).verdict == REFUTED
    assert both.decide((Estimate(0.5, 0.4, 0.55, 1),), ([out],)).verdict == INCONCLUSIVE  # one part lacks seeds
    assert "(1) " in both.text() and "(2) " in both.text()
    assert both.decide(Estimate(0.7, 0.65, 0.8, 3), ([inside],)).verdict == SUPPORTED  # a single argument as itself
    with pytest.raises(ValueError, match="2 rules"):
        both.decide(([inside],))


def test_bounds_from_above_below_and_identities():
    rule = Bounds("a shift", (("output change", "<", 1e-9), ("L2 change", ">", 1e-6), ("WEISSI(0, 0)", "==", 0.0)))
    ok = {"output change": [1e-12, 3e-10], "L2 change": [0.2, 0.5], "WEISSI(0, 0)": [0.0]}
    assert rule.decide(ok).verdict == SUPPORTED
    v = rule.decide(ok | {"L2 change": [0.2, 1e-8]})  # a change that must show and did not
    assert v.verdict == REFUTED and v.effect == 1e-8 and v.threshold == 1e-6
    assert rule.decide(ok | {"WEISSI(0, 0)": [1e-300]}).verdict == REFUTED
    assert rule.decide({"output change": [0.0]}).verdict == INCONCLUSIVE  # the others not run
    assert "every L2 change > 1e-06" in rule.text()


def test_exact_and_controls():
    assert Exact(1e-12).decide([1e-15, 3e-13]).verdict == SUPPORTED
    v = Exact(1e-12, "max |error|").decide({"E1": [1e-15], "E2": [1e-9]})
    assert v.verdict == REFUTED and v.effect == 1e-9 and "E2 max 1e-09" in v.reason
    assert Exact(1e-12).decide({"E1": []}).verdict == INCONCLUSIVE  # no values: nothing checked
    assert Exact(1e-12).decide([np.nan]).verdict == REFUTED  # a nan error is no pass
    must_fail = Control(Exact(1e-6, "leak"), must=FAIL)
    assert must_fail.decide([0.3]).verdict == FAIL and must_fail.decide([0.0]).verdict == PASS
    assert must_fail.decide([]).verdict == INCONCLUSIVE and "Must FAIL" in must_fail.text()


@pytest.mark.parametrize(
    "make",
    [
        lambda: Superiority("d", combine="any"),
        lambda: Superiority("d", min_seeds=1),
        lambda: Superiority("d", alternative="two-sided"),
        lambda: NonInferiority("d", margin=0),
        lambda: Trend("t", sign=0),
        lambda: Control(Exact(1.0), must="SUPPORTED"),
    ],
)
def test_bad_rules_are_refused(make):
    with pytest.raises(ValueError):
        make()


def _tables(budget: str) -> Tables:
    return Tables(budget, pd.DataFrame(), pd.DataFrame(columns=["trial_id", "step", "metric", "value"]), pd.DataFrame())


def test_a_claim_decides_by_its_rule_and_shows_the_same_rule():
    rule = Superiority("acc(A) - acc(B)", delta=0.01)
    claims = (
        Claim("Z1", "A beats B.", rule, "empirical", lambda t: [Cell("x", UP)], decides_from="local"),
        Claim(
            "Z-C1",
            "A leak test that must fail.",
            Control(Exact(1e-6, "leak"), must=FAIL),
            "negative_control",
            lambda t: [0.25],
        ),  # fmt: skip
    )
    rows = evaluate(StudyClaims("planted", "", claims), _tables("local")).set_index("claim_id")
    assert rows.loc["Z1", "verdict"] == SUPPORTED and rows.loc["Z1", "rule"] == rule.text()
    assert rows.loc["Z-C1", "verdict"] == FAIL and bool(rows.loc["Z1", "controls_ok"])
    smoke = evaluate(StudyClaims("planted", "", claims), _tables("smoke")).set_index("claim_id")
    assert smoke.loc["Z1", "verdict"] == INCONCLUSIVE
    assert smoke.loc["Z1", "reason"].startswith("direction only at smoke (verdicts from local on): would be SUPPORTED")
    assert smoke.loc["Z1", "effect"] == pytest.approx(UP.mean())  # the numbers stay


def test_a_control_without_data_invalidates_the_study():
    claims = (
        Claim("Z1", "A beats B.", Superiority("d"), "empirical", lambda t: [Cell("x", UP)]),
        Claim("Z-C1", "Must fail.", Control(Exact(1e-6), must=FAIL), "negative_control", lambda t: []),
    )
    rows = evaluate(StudyClaims("planted", "", claims), _tables("local")).set_index("claim_id")
    assert rows.loc["Z-C1", "verdict"] == INCONCLUSIVE and rows.loc["Z1", "verdict"] == "INVALID"
