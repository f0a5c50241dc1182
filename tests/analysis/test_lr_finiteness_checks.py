"""lr_finiteness verdicts on planted tables whose answers are known from how they were made, and on the real
exact checks (with a corrupted control that must turn the empirical verdicts INVALID)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from analysis import lr_finiteness as lf
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
) -> Tables:
    """Plain runs with R_IG ~ h^rig_slope and accuracy 0.85 + acc_gain * log2(h / 0.05); EGR runs at h = 0.1."""
    rng = np.random.default_rng(0)
    rows = []

    def acc_of(h):
        return 0.85 + acc_gain * np.log2(h / 0.05)

    for act in ("softplus", "relu"):
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
                rows.append(row)
    empty = pd.DataFrame(columns=["trial_id", "step", "metric", "value"])
    return Tables(budget, pd.DataFrame(rows), empty, pd.DataFrame(columns=["step", "metric", "value"]))


def test_planted_implicit_regularisation_is_supported():
    t = planted()
    assert lf.check_i4(t).verdict == "SUPPORTED"
    assert lf.check_i5(t).verdict == "SUPPORTED"
    v6 = lf.check_i6(t)
    assert v6.verdict == "SUPPORTED" and v6.effect == pytest.approx(0.02 * 4, abs=0.005)


def test_planted_opposite_trends_are_refuted():
    t = planted(rig_slope=1.0, acc_gain=-0.02, egr="harmful")
    assert lf.check_i4(t).verdict == "REFUTED"
    assert lf.check_i5(t).verdict == "REFUTED"
    assert lf.check_i6(t).verdict == "REFUTED"  # h* = h_min: the difference is 0 and its CI lies below 0.5 pp


def test_pure_noise_is_inconclusive_for_i4():
    t = planted(rig_slope=0.0, acc_gain=0.0, noise=0.01)
    assert lf.check_i4(t).verdict == "INCONCLUSIVE"


def test_spiked_runs_leave_the_stable_range():
    t = planted(spiked_h=(0.4, 0.8))
    ep = lf.endpoints(t)
    assert not ep[(ep["h"] >= 0.4) & (ep["mu"] == 0)]["stable"].any()
    v6 = lf.check_i6(t)
    assert {r["h_star"] for r in v6.detail} == {0.2}  # the best *stable* step size
    assert (
        "with spiked runs that reached the target included" in lf.check_i4(t).reason or "spiked runs" in lf.check_i4(t).reason
    )


def test_smoke_reports_directions_only():
    t = planted(budget="smoke")
    for check in (lf.check_i4, lf.check_i5, lf.check_i6):
        v = check(t)
        assert v.verdict == "INCONCLUSIVE" and v.reason.startswith("underpowered at smoke")


@pytest.fixture(scope="module")
def exact():
    out = lr_finiteness.exact_checks()
    return pd.DataFrame(
        [(i, k, v) for k, vals in out.items() for i, v in enumerate(vals)], columns=["step", "metric", "value"]
    )


def test_real_exact_checks_support_i1_to_i3_and_pass_the_controls(exact):
    t = dataclasses.replace(planted(), checks=exact)
    for check in (lf.check_i1, lf.check_i2, lf.check_i3):
        assert check(t).verdict == "SUPPORTED", check(t).reason
    for check in (lf.check_ip1, lf.check_ip2, lf.check_ip3):
        assert check(t).verdict == "PASS", check(t).reason
    assert t.check("i3/example_ratio")[0] == pytest.approx(0.992256, abs=1e-6)  # the spec's worked example
    assert t.check("i3/final_gap")[-1] == pytest.approx(0.88, abs=0.01)  # h = 0.2 lands on the far branch


def test_wrong_orders_are_refuted(exact):
    bad = exact.copy()
    mask = bad["metric"] == "i2/mod_err"
    h = np.array(exact.loc[exact["metric"] == "i2/h", "value"])
    bad.loc[mask, "value"] = h**2  # an O(h^2) "modified flow" error
    assert lf.check_i2(dataclasses.replace(planted(), checks=bad)).verdict == "REFUTED"


def test_a_failing_control_invalidates_the_empirical_verdicts(exact):
    bad = exact.copy()
    bad.loc[bad["metric"] == "ip1/max_abs_diff", "value"] = 1e-9
    rows = evaluate(lr_finiteness.get_study("local"), dataclasses.replace(planted(), checks=bad)).set_index("claim_id")
    assert rows.loc["I-P1", "verdict"] == "FAIL"
    assert rows.loc["I4", "verdict"] == "INVALID" and "I-P1" in rows.loc["I4", "reason"]
    good = evaluate(lr_finiteness.get_study("local"), dataclasses.replace(planted(), checks=exact)).set_index("claim_id")
    assert good.loc["I4", "verdict"] == "SUPPORTED" and good["controls_ok"].all()
