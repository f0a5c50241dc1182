"""lr_finiteness verdicts on planted tables whose answers are known from how they were made, and on the real
exact checks (with a corrupted control that must turn the empirical verdicts INVALID)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from analysis import lr_finiteness as lf
from analysis.claims.lr_finiteness import CLAIMED, CLAIMS
from analysis.verdict import Tables, evaluate
from studies import lr_finiteness

HS = [0.05, 0.1, 0.2, 0.4, 0.8]
LEVELS = (0.5, 0.2, 0.1, 0.05)


def planted(
    rig_slope: float = -1.0,
    acc_gain: float = 0.02,
    egr: str = "like_h_big",
    seeds: int = 5,
    noise: float = 0.002,
    spiked_h: tuple = (),
    budget: str = "local",
    acts: tuple = ("softplus", "relu"),
    status: dict | None = None,
) -> Tables:
    """Plain runs with R_IG ~ h^rig_slope and accuracy 0.85 + acc_gain * log2(h / 0.05); EGR runs at h = 0.1."""
    rng = np.random.default_rng(0)
    rows = []

    def acc_of(h):
        return 0.85 + acc_gain * np.log2(h / 0.05)

    for act in acts:
        for s in range(seeds):
            cells = [(h, 0.0) for h in HS] + [(0.1, 0.075), (0.1, 0.175)]
            for h, mu in cells:
                h_eff = h + 4 * mu
                if mu == 0:
                    acc = acc_of(h)
                elif egr == "like_h_big":
                    acc = acc_of(h_eff)
                else:  # "harmful": worse than plain GD at the same h
                    acc = acc_of(h) - 0.03
                # EGR lands between its own h and h_big (at 0.9 h_eff), or at its own h when "harmful".
                h_rig = h if mu == 0 else (0.9 * h_eff if egr == "like_h_big" else h)
                base_rig = 1e-3 * (h_rig / 0.05) ** rig_slope
                row = {
                    "trial_id": f"{act}-h{h}-mu{mu}-s{s}",
                    "seed": s,
                    "status": "ok",
                    "arm": f"{act} h={h} mu={mu}",
                    "config/activation": act,
                    "config/lr": h,
                    "config/egr_mu": mu,
                    "val/acc": acc + noise * rng.standard_normal(),
                    "test/acc": acc + noise * rng.standard_normal(),
                    "train/rig": base_rig * np.exp(0.05 * rng.standard_normal()),
                    "train/lambda_max": 10 / h_eff,
                    "noise/acc_drop": 0.001,
                    "train/reached": 1.0,
                    "train/spiked": float(h in spiked_h and mu == 0),
                }
                for lv in LEVELS:
                    row[f"rig_at/{lv:g}"] = lv * base_rig * np.exp(0.05 * rng.standard_normal())
                row["status"] = (status or {}).get((act, h, mu, s), "ok")
                rows.append(row)
    empty = pd.DataFrame(columns=["trial_id", "step", "metric", "value"])
    return Tables(budget, pd.DataFrame(rows), empty, pd.DataFrame(columns=["step", "metric", "value"]))


def decide(claim_id: str, t: Tables):
    """A claim's verdict by its rule, before the budget gate and the controls (`evaluate` applies those)."""
    return next(c for c in CLAIMS if c.id == claim_id).decide(t)


def test_planted_implicit_regularisation_is_supported():
    t = planted()
    assert decide("I4", t).verdict == "SUPPORTED"
    assert decide("I5", t).verdict == "SUPPORTED"
    v6 = decide("I6", t)
    assert v6.verdict == "SUPPORTED" and v6.effect == pytest.approx(0.02 * 4, abs=0.005)


def test_planted_opposite_trends_are_refuted():
    t = planted(rig_slope=1.0, acc_gain=-0.02, egr="harmful")
    assert decide("I4", t).verdict == "REFUTED"
    assert decide("I5", t).verdict == "REFUTED"
    v6 = decide("I6", t)  # h* = h_min: five zero differences (sign-flip p = 1) and an interval [0, 0] below 0.5 pp
    assert v6.verdict == "REFUTED" and v6.ci_high == 0 and v6.detail[0]["test"] == "sign-flip"


def test_pure_noise_is_inconclusive_for_i4():
    t = planted(rig_slope=0.0, acc_gain=0.0, noise=0.01)
    assert decide("I4", t).verdict == "INCONCLUSIVE"


def test_spiked_runs_leave_the_stable_range():
    t = planted(spiked_h=(0.4, 0.8))
    ep = lf.endpoints(t)
    assert not ep[(ep["h"] >= 0.4) & (ep["mu"] == 0)]["stable"].any()
    v6 = decide("I6", t)
    assert {r["h_star"] for r in v6.detail} == {0.2}  # the best *stable* step size
    v4 = decide("I4", t)
    assert "with spiked runs that reached the target" in v4.reason and "h=0.8: spiked (seeds 0, 1, 2, 3, 4)" in v4.reason


def test_smoke_reports_directions_only():
    rows = evaluate(CLAIMED, planted(budget="smoke")).set_index("claim_id")
    for claim in ("I4", "I5", "I6"):
        assert rows.loc[claim, "verdict"] == "INCONCLUSIVE"
        assert rows.loc[claim, "reason"].startswith("direction only at smoke (verdicts from local on): would be SUPPORTED")


@pytest.fixture(scope="module")
def exact():
    out = lr_finiteness.exact_checks()
    return pd.DataFrame(
        [(i, k, v) for k, vals in out.items() for i, v in enumerate(vals)], columns=["step", "metric", "value"]
    )


def test_real_exact_checks_support_i1_to_i3_and_pass_the_controls(exact):
    t = dataclasses.replace(planted(), checks=exact)
    for claim in ("I1", "I2", "I3"):
        assert decide(claim, t).verdict == "SUPPORTED", decide(claim, t).reason
    for claim in ("I-P1", "I-P2", "I-P3"):
        assert decide(claim, t).verdict == "PASS", decide(claim, t).reason
    assert t.check("i3/example_ratio")[0] == pytest.approx(0.992256, abs=1e-6)  # the spec's worked example
    assert t.check("i3/final_gap")[-1] == pytest.approx(0.88, abs=0.01)  # h = 0.2 lands on the far branch


def test_wrong_orders_are_refuted(exact):
    bad = exact.copy()
    mask = bad["metric"] == "i2/mod_err"
    h = np.array(exact.loc[exact["metric"] == "i2/h", "value"])
    bad.loc[mask, "value"] = h**2  # an O(h^2) "modified flow" error
    v = decide("I2", dataclasses.replace(planted(), checks=bad))
    assert v.verdict == "REFUTED" and "mod slope 2.000 vs 3" in v.reason


def test_a_failing_control_invalidates_the_empirical_verdicts(exact):
    bad = exact.copy()
    bad.loc[bad["metric"] == "ip1/max_abs_diff", "value"] = 1e-9
    rows = evaluate(lr_finiteness.get_study("local"), dataclasses.replace(planted(), checks=bad)).set_index("claim_id")
    assert rows.loc["I-P1", "verdict"] == "FAIL"
    assert rows.loc["I4", "verdict"] == "INVALID" and "I-P1" in rows.loc["I4", "reason"]
    good = evaluate(lr_finiteness.get_study("local"), dataclasses.replace(planted(), checks=exact)).set_index("claim_id")
    assert good.loc["I4", "verdict"] == "SUPPORTED" and good["controls_ok"].all()


def test_missing_exact_checks_decide_nothing():
    t = planted()
    for claim in ("I1", "I2", "I3"):
        assert decide(claim, t).verdict == "INCONCLUSIVE" and "not_run_at_budget" in decide(claim, t).reason
    for claim in ("I-P1", "I-P2", "I-P3"):  # a control without its check does not pass: the study is INVALID
        assert decide(claim, t).verdict == "INCONCLUSIVE"


def test_one_seed_decides_nothing():
    # h* = h_min on one seed: a zero-width interval [0, 0] once REFUTED I6; one seed is too few.
    v = decide("I6", planted(rig_slope=1.0, acc_gain=-0.02, egr="harmful", seeds=1))
    assert v.verdict == "INCONCLUSIVE" and "too few seeds in relu (n = 1 < 3)" in v.reason
    assert decide("I5", planted(seeds=1)).verdict == "INCONCLUSIVE"
    assert "too few seeds" in decide("I4", planted(seeds=2)).reason


def test_equal_differences_in_i5_use_the_sign_flip_test():
    # Noise-free accuracies: every paired difference is equal, so the t statistic is undefined; the exact sign-flip
    # test gives p = 1/32 at five seeds (it was nan, "no evidence"), which decides one cell on its own.
    v = decide("I5", planted(noise=0.0, acts=("softplus",)))
    r = v.detail[0]
    assert r["vs_mu0_test"] == "sign-flip" and r["vs_mu0_p"] == pytest.approx(1 / 32)
    assert r["vs_h_big_test"] == "sign-flip" and r["vs_h_big_p"] == pytest.approx(1 / 32)
    assert v.verdict == "SUPPORTED"
    # Over two cells Holm doubles the smaller p: 2/32 > 0.05 decides nothing.
    assert decide("I5", planted(noise=0.0)).verdict == "INCONCLUSIVE"


def test_failed_and_diverged_runs_are_named():
    status = {("relu", 0.05, 0.0, 4): "failed", ("relu", 0.8, 0.0, 3): "diverged"}
    t = planted(status=status)
    v6 = decide("I6", t)  # four pairs remain in relu: still decided, with the failed run named
    assert v6.verdict == "SUPPORTED" and "h=0.05: failed (seeds 4)" in v6.reason
    assert {r["cell"]: r["n"] for r in v6.detail} == {"relu": 4, "softplus": 5}
    v4 = decide("I4", t)
    assert "h=0.8: diverged (seeds 3)" in v4.reason and "h=0.05: failed (seeds 4)" in v4.reason
    # Three failed seeds of h_min leave two pairs: too few, the claim is not decided on the other cell.
    few = planted(status={("relu", 0.05, 0.0, s): "failed" for s in (0, 1, 2)})
    assert decide("I6", few).verdict == "INCONCLUSIVE" and "too few seeds in relu (n = 2 < 3)" in decide("I6", few).reason
