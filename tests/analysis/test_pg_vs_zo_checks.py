"""pg_vs_zo verdicts on planted tables with known answers, and the real exact checks with broken controls."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from analysis import pg_vs_zo as pa
from analysis.verdict import Tables, evaluate
from studies import pg_vs_zo

MODELS = {"softmax_pool14": 1970, "softmax": 7850, "mlp32": 25450}


def planted(pg_acc=0.9, zo_acc=0.8, gap_growth=0.05, seeds=5, noise=0.005, budget="local", cos_slope=1.0) -> Tables:
    rng = np.random.default_rng(0)
    rows = []
    for i, (model, d) in enumerate(MODELS.items()):
        for method, acc, auc in [
            ("ce_backprop", 0.92, 0.9),
            ("pg_reinforce", pg_acc, 0.85),
            ("zo_acc", zo_acc, 0.75 - gap_growth * i),
            ("zo_ce", 0.85, 0.8),
        ]:
            for s in range(seeds):
                rows.append(
                    {
                        "trial_id": f"{model}-{method}-{s}",
                        "seed": s,
                        "status": "ok",
                        "arm": f"{method},{model}",
                        "config/task": "optimise",
                        "config/method": method,
                        "config/model": model,
                        "test/acc": acc + noise * rng.standard_normal(),
                        "test/acc_init": 0.1 + noise * rng.standard_normal(),
                        "val/auc_acc": auc + noise * rng.standard_normal(),
                    }
                )
        q = np.array([1, 4, 16, 64, 256])
        rows.append(
            {
                "trial_id": f"stats-{model}",
                "seed": 0,
                "status": "ok",
                "arm": f"stats,{model}",
                "config/task": "stats",
                "config/method": "zo_stats",
                "config/model": model,
                "config/stat_sigma": 1e-3,
                "config/stat_dtype": "float64",
                "stats/d": float(d),
                **{f"stats/cos2@{k}": float(k**cos_slope / d) for k in q},
                **{f"stats/cos@{k}": float(np.sqrt(k**cos_slope / d)) for k in q},
            }
        )
    empty = pd.DataFrame(columns=["trial_id", "step", "metric", "value"])
    return Tables(budget, pd.DataFrame(rows), empty, pd.DataFrame(columns=["step", "metric", "value"]))


@pytest.fixture(scope="module")
def exact():
    out = pg_vs_zo.exact_checks()
    return pd.DataFrame(
        [(i, k, v) for k, vals in out.items() for i, v in enumerate(vals)], columns=["step", "metric", "value"]
    )


def test_planted_efficiency_gap_and_optimisation_are_supported():
    t = planted()
    assert pa.check_z5(t).verdict == "SUPPORTED"
    v6 = pa.check_z6(t)
    assert v6.verdict == "SUPPORTED" and v6.effect == pytest.approx(0.1, abs=0.02)


def test_a_shrinking_gap_and_a_method_that_does_not_learn_are_refuted():
    t = planted(zo_acc=0.12, gap_growth=-0.03)
    assert pa.check_z5(t).verdict == "REFUTED"
    assert pa.check_z6(t).verdict == "REFUTED"


def test_below_the_level_is_not_supported():
    assert pa.check_z5(planted(zo_acc=0.55)).verdict == "INCONCLUSIVE"  # improves, but under chance + 50 pp


def test_z2_needs_the_q_over_d_scaling_at_scale(exact):
    good = dataclasses.replace(planted(), checks=exact)
    assert pa.check_z2(good).verdict == "SUPPORTED", pa.check_z2(good).reason
    bad = dataclasses.replace(planted(cos_slope=0.5), checks=exact)
    assert pa.check_z2(bad).verdict == "REFUTED"


def test_real_exact_checks_and_controls(exact):
    t = dataclasses.replace(planted(), checks=exact)
    for check in (pa.check_z1, pa.check_z3, pa.check_z4):
        assert check(t).verdict == "SUPPORTED", check(t).reason
    assert pa.check_zc1(t).verdict == "FAIL" and pa.check_zc2(t).verdict == "FAIL"
    assert pa.check_zp1(t).verdict == "PASS" and pa.check_zp2(t).verdict == "PASS"


def test_a_biased_leave_one_out_baseline_breaks_control_z_c2(exact):
    bad = exact.copy()
    bad.loc[bad["metric"] == "zc2_loo/max_z", "value"] = 9.0
    v = pa.check_zc2(dataclasses.replace(planted(), checks=bad))
    assert v.verdict == "PASS" and "check is broken" in v.reason  # PASS of a must-FAIL control: INVALID


def test_a_leaky_accuracy_invalidates_the_study(exact):
    bad = exact.copy()
    bad.loc[bad["metric"] == "zc1/zero_fraction", "value"] = 0.2  # as if accuracy used soft probabilities
    rows = evaluate(pg_vs_zo.get_study("local"), dataclasses.replace(planted(), checks=bad)).set_index("claim_id")
    assert rows.loc["Z-C1", "verdict"] == "PASS" and rows.loc["Z6", "verdict"] == "INVALID"
