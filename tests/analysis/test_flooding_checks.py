"""The flooding checks on planted tables: each verdict must follow from the data put in."""

import numpy as np
import pytest
from conftest import GOOD_CHECKS, planted

from analysis import flooding as fl
from analysis.verdict import INCONCLUSIVE, INVALID, REFUTED, SUPPORTED, Tables, evaluate
from studies import load


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
    good_checks = GOOD_CHECKS
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
