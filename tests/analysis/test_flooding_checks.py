"""The flooding checks on planted tables: each verdict must follow from the data put in."""

import numpy as np
import pandas as pd
import pytest

from analysis import flooding as fl
from analysis.verdict import INCONCLUSIVE, INVALID, REFUTED, SUPPORTED, Tables, evaluate
from studies import load


def planted(
    effect: float,
    seeds: int = 5,
    etas=(0.2, 0.4),
    levels=(0.0, 0.3, 0.6),
    epochs: int = 30,
    bump: bool = True,
    every_level: bool = False,
) -> Tables:
    """Trials whose b = 0.6 arm (or every b > 0) beats b = 0 by `effect`; test-loss curves rebound under flooding if `bump`."""
    rng = np.random.default_rng(0)
    trials, metrics = [], []
    for eta in etas:
        for b in levels:
            for s in range(seeds):
                tid = f"e{eta}-b{b}-s{s}"
                gain = effect if b == 0.6 or (every_level and b > 0) else 0.0
                trials.append(
                    {
                        "trial_id": tid,
                        "seed": s,
                        "status": "ok",
                        "arm": f"b={b}",
                        "config/label_noise": eta,
                        "config/flood_level": b,
                        "train/lambda_max": 5.0 - (2.0 if b == 0.6 else 0.0) + 0.1 * rng.standard_normal(),
                    }
                )
                t = np.arange(1, epochs + 1)
                test_loss = 0.5 + 0.02 * np.maximum(t - 5, 0)
                if b > 0 and bump:
                    test_loss = np.where(t > 18, test_loss[17] - 0.03 * (t - 18), test_loss)
                for step in t:
                    noise = 0.002 * rng.standard_normal()
                    metrics += [
                        (tid, step, "val/acc", 0.7 + gain * step / epochs + noise),
                        (tid, step, "test/acc", 0.8 + gain * step / epochs + noise),
                        (tid, step, "test/loss", test_loss[step - 1]),
                        (tid, step, "train/loss", max(b, 2.0 / step) * (1 + 0.05 * rng.standard_normal())),
                        (tid, step, "train/flood_prop", 0.5 if b and 2.0 / step < b else 0.0),
                    ]
    m = pd.DataFrame(metrics, columns=["trial_id", "step", "metric", "value"])
    return Tables("local", pd.DataFrame(trials), m, pd.DataFrame(columns=["step", "metric", "value"]))


def test_detector_fires_on_a_rebound_and_not_on_a_rise():
    t = np.arange(60)
    rise = 1 + 0.01 * t
    rebound = np.where(t < 30, 1 + 0.02 * t, 1.6 - 0.02 * (t - 30))
    assert not fl.second_descent(rise)
    assert fl.second_descent(rebound)
    assert not fl.second_descent(np.ones(60))  # no overfitting onset


def test_f1_supported_on_a_planted_gain_and_refuted_on_a_planted_loss():
    assert fl.check_f1(planted(0.05)).verdict == SUPPORTED
    assert fl.check_f1(planted(-0.05, every_level=True)).verdict == REFUTED
    # Worse only at b = 0.6: validation picks b* = 0.3, which equals b = 0, so nothing is refuted.
    assert fl.check_f1(planted(-0.05)).verdict == INCONCLUSIVE


def test_f1_inconclusive_without_an_effect():
    v = fl.check_f1(planted(0.0))
    assert v.verdict == INCONCLUSIVE and v.n_seeds == 5


def test_f2_follows_the_curves():
    assert fl.check_f2(planted(0.05)).verdict == SUPPORTED
    assert fl.check_f2(planted(0.05, bump=False)).verdict == REFUTED


def test_f3_on_hovering_losses():
    v = fl.check_f3(planted(0.05))
    assert v.verdict == SUPPORTED, v.reason


def test_f5_flatter_is_supported():
    assert fl.check_f5(planted(0.05)).verdict == SUPPORTED


def test_f6_noise_entropy_values_match_the_spec():
    assert [round(fl.noisy_label_entropy(e), 3) for e in (0.1, 0.2, 0.3, 0.4)] == [0.545, 0.94, 1.27, 1.552]


def test_a_control_that_behaves_wrongly_invalidates_the_claims():
    study = load("flooding", "local")
    t = planted(0.05)
    good_checks = pd.DataFrame(
        [(i, "eps", e) for i, e in enumerate([0.04, 0.02, 0.01, 0.005])]
        + [
            (i, f"{n}/err", e**k)
            for n, k in [("e2_product", 3), ("e2_mlp", 3), ("fc1_mlp", 1)]
            for i, e in enumerate([0.04, 0.02, 0.01, 0.005])
        ]
        + [
            (0, "e1/abs_err", 1e-16),
            (0, "fp1/value_err", 0.0),
            (0, "fp1/grad_err", 0.0),
            (0, "fp1/sign_above_b", 1.0),
            (0, "fp1/sign_below_b", -1.0),
            (0, "fp2/eta", 0.1),
            (0, "fp2/realised", 0.1),
            (0, "fp2/kept_class", 0.0),
            (0, "fp2/n", 1000.0),
        ],
        columns=["step", "metric", "value"],
    )
    ok = evaluate(study, Tables("local", t.trials, t.metrics, good_checks)).set_index("claim_id")
    assert ok.loc["F1", "verdict"] == SUPPORTED and ok["controls_ok"].all()
    assert ok.loc["F-C1", "verdict"] == "FAIL" and ok.loc["F4", "verdict"] == SUPPORTED
    # Make the different-batch control pass the slope test: the study must become INVALID.
    leaky = good_checks.copy()
    leaky.loc[leaky["metric"] == "fc1_mlp/err", "value"] = [e**3 for e in [0.04, 0.02, 0.01, 0.005]]
    bad = evaluate(study, Tables("local", t.trials, t.metrics, leaky)).set_index("claim_id")
    assert bad.loc["F-C1", "verdict"] == "PASS" and not bad["controls_ok"].any()
    assert bad.loc["F1", "verdict"] == INVALID and bad.loc["F4", "verdict"] == INVALID
    assert "F-C1" in bad.loc["F1", "reason"]


@pytest.mark.parametrize("name", ["fp1", "fp2"])
def test_missing_exact_checks_fail_positive_controls(name):
    empty = planted(0.0)
    assert getattr(fl, f"check_{name}")(empty).verdict == "FAIL"
