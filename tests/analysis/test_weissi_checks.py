"""weissi verdicts on planted tables with known answers, and the real exact checks with a broken control."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from analysis import weissi as wa
from analysis.verdict import Tables, evaluate
from studies import weissi

REGS = ("none", "l2_coupled", "wd_decoupled", "weissi1", "weissi12")


def planted(weissi_gain=0.01, adamw_gain=0.01, pgd_gain=0.02, seeds=5, noise=0.002, budget="local", resnet=False) -> Tables:
    rng = np.random.default_rng(0)
    rows = []
    models = [("mlp", "mnist_5k")] + ([("resnet18", "cifar10")] if resnet else [])
    for model, dataset in models:
        for opt in ("sgd", "adam"):
            for reg in REGS:
                adamw = adamw_gain if opt == "adam" else 0.0  # AdamW's gain over Adam + L2
                gain = {"wd_decoupled": adamw, "weissi1": max(adamw, 0) + weissi_gain, "weissi12": max(adamw, 0) + weissi_gain}
                gain = gain.get(reg, 0.0)  # WEISSI gains weissi_gain over the better of L2 and WD
                for s in range(seeds):
                    acc = 0.95 + gain + noise * rng.standard_normal()
                    rows.append(
                        {
                            "trial_id": f"{model}-{opt}-{reg}-{s}",
                            "seed": s,
                            "status": "ok",
                            "arm": f"{opt},{reg}",
                            "config/model": model,
                            "config/dataset": dataset,
                            "config/optimizer": opt,
                            "config/reg": reg,
                            "config/lr": 0.01,
                            "val/acc": acc + noise * rng.standard_normal(),
                            "test/acc": acc,
                            "test/pgd_acc@0.1": 0.5
                            + (pgd_gain if reg.startswith("weissi") else 0)
                            + noise * rng.standard_normal(),
                            "test/input_grad_norm": 1.0
                            - (0.1 if reg.startswith("weissi") else 0)
                            + 0.01 * rng.standard_normal(),
                        }
                    )
    empty = pd.DataFrame(columns=["trial_id", "step", "metric", "value"])
    return Tables(budget, pd.DataFrame(rows), empty, pd.DataFrame(columns=["step", "metric", "value"]))


def test_planted_gains_are_supported():
    t = planted()
    assert wa.check_w5(t).verdict == "SUPPORTED"
    assert wa.check_w6(t).verdict == "SUPPORTED"
    assert wa.check_w7(t).verdict == "SUPPORTED"
    assert wa.check_w5(t).effect == pytest.approx(0.01, abs=0.003)


def test_planted_losses_are_refuted():
    t = planted(weissi_gain=-0.01, adamw_gain=-0.01, pgd_gain=-0.02)
    assert wa.check_w5(t).verdict == "REFUTED"
    assert wa.check_w6(t).verdict == "REFUTED"
    assert wa.check_w7(t).verdict == "REFUTED"


def test_a_gain_below_the_minimum_is_not_supported():
    v = wa.check_w5(planted(weissi_gain=0.001, noise=0.0005))
    assert v.verdict != "SUPPORTED"  # significant but under 0.3 pp


def test_the_bn_network_is_a_diagnostic_outside_w5():
    t = planted(resnet=True)
    assert all(r["model"] == "mlp" for r in wa.check_w5(t).detail)
    d = wa.check_wd1(t)
    assert d.verdict == "INCONCLUSIVE" and "significant WEISSI win" in d.reason
    assert wa.check_wd1(planted()).reason.startswith("not_run_at_budget")


def test_smoke_reports_directions_only():
    for check in (wa.check_w5, wa.check_w6, wa.check_w7):
        assert check(planted(budget="smoke")).reason.startswith("underpowered at smoke")


@pytest.fixture(scope="module")
def exact():
    out = weissi.exact_checks()
    return pd.DataFrame(
        [(i, k, v) for k, vals in out.items() for i, v in enumerate(vals)], columns=["step", "metric", "value"]
    )


def test_real_exact_checks_support_w1_to_w4_and_controls_behave(exact):
    t = dataclasses.replace(planted(), checks=exact)
    for check in (wa.check_w1, wa.check_w2, wa.check_w3, wa.check_w4):
        assert check(t).verdict == "SUPPORTED", check(t).reason
    assert wa.check_wc1(t).verdict == "FAIL" and wa.check_wp1(t).verdict == "PASS"
    d = t.check("w3/l2/D")
    assert d[0] == pytest.approx(128.855, abs=1e-3) and d[-1] / d[0] == pytest.approx(np.exp(-4), rel=0.01)


def test_an_insensitive_invariance_test_invalidates_the_study(exact):
    bad = exact.copy()
    bad.loc[bad["metric"] == "wc1/out_rel_diff", "value"] = 1e-13  # as if the naive rule kept the function
    rows = evaluate(weissi.get_study("local"), dataclasses.replace(planted(), checks=bad)).set_index("claim_id")
    assert rows.loc["W-C1", "verdict"] == "PASS" and not rows["controls_ok"].any()
    assert rows.loc["W5", "verdict"] == "INVALID" and "W-C1" in rows.loc["W5", "reason"]
    assert rows.loc["W-D1", "verdict"] == "INCONCLUSIVE"  # diagnostics never turn INVALID
