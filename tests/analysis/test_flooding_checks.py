"""The flooding claims on planted tables: each verdict must follow from the data put in."""

import numpy as np
import pandas as pd
import pytest
from conftest import GOOD_CHECKS, planted

from analysis import flooding as fl
from analysis.claims.flooding import CLAIMED, CLAIMS
from analysis.figures import flooding as flf
from analysis.verdict import INCONCLUSIVE, INVALID, REFUTED, SUPPORTED, Tables, evaluate

CLAIM = {c.id: c for c in CLAIMS}


def decide(claim_id: str, t: Tables):
    """The claim's verdict before the budget gate (the planted tables are `local`, where every claim decides)."""
    return CLAIM[claim_id].decide(t)


def with_status(t: Tables, status: str, *trial_ids: str) -> Tables:
    """The same tables with the named runs marked `status` (diverged or failed runs keep their rows)."""
    trials = t.trials.copy()
    trials.loc[trials["trial_id"].isin(trial_ids), "status"] = status
    return Tables(t.budget, trials, t.metrics, t.checks)


def test_detector_fires_on_a_rebound_and_not_on_a_rise():
    t = np.arange(60)
    rise = 1 + 0.01 * t
    rebound = np.where(t < 30, 1 + 0.02 * t, 1.6 - 0.02 * (t - 30))
    assert not fl.second_descent(rise)
    assert fl.second_descent(rebound)
    assert not fl.second_descent(np.ones(60))  # no overfitting onset


def test_f1_supported_on_a_planted_gain_and_refuted_on_a_planted_loss():
    assert decide("F1", planted(0.05)).verdict == SUPPORTED
    assert decide("F1", planted(-0.05, every_level=True)).verdict == REFUTED
    # Worse only at b = 0.6: validation picks b* = 0.3, which equals b = 0, so nothing is refuted.
    assert decide("F1", planted(-0.05)).verdict == INCONCLUSIVE


def test_f1_inconclusive_without_an_effect():
    v = decide("F1", planted(0.0))
    assert v.verdict == INCONCLUSIVE and v.n_seeds == 5


def test_f1_with_one_seed_left_at_b_star_is_undecidable_and_names_the_runs():
    # At eta = 0.4, b = 0.6 survives in seed 0 only: it is still b* there, so that cell has one pair.
    t = with_status(planted(0.05), "diverged", *[f"e0.4-b0.6-s{s}" for s in range(1, 5)])
    v = decide("F1", t)
    assert v.verdict == INCONCLUSIVE and v.reason.startswith("too few seeds in eta=0.4, E=off, b*=0.6 (n = 1 < 3)"), v.reason
    assert "seed 1 of b=0.6: diverged" in v.reason and v.n_seeds == 1


def test_a_diverged_baseline_seed_is_named_and_the_rest_still_decide():
    t = with_status(planted(0.05), "diverged", "e0.2-b0.0-s3")
    v = decide("F1", t)
    assert v.verdict == SUPPORTED and v.n_seeds == 4
    assert "eta=0.2, E=off, b*=0.6: seed 3 of b=0: diverged" in v.reason
    assert "seed 3 of b=0: diverged" in decide("F2", t).reason
    assert "seed 3 of b=0: diverged" in decide("F5", t).reason


def test_a_cell_whose_flooded_runs_all_failed_keeps_its_place():
    t = with_status(planted(0.05), "failed", *[f"e0.4-b{b}-s{s}" for b in (0.3, 0.6) for s in range(5)])
    v = decide("F1", t)
    assert v.verdict == INCONCLUSIVE and len(v.detail) == 4 and "eta=0.4, E=on, b*=nan (n = 0 < 3)" in v.reason


def test_f2_follows_the_curves():
    assert decide("F2", planted(0.05)).verdict == SUPPORTED
    assert decide("F2", planted(0.05, bump=False)).verdict == REFUTED
    assert decide("F2", planted(0.05, seeds=2)).reason.startswith("too few seeds")


def test_f3_on_hovering_losses():
    v = decide("F3", planted(0.05))
    assert v.verdict == SUPPORTED, v.reason
    assert decide("F3", planted(0.05, seeds=2)).verdict == INCONCLUSIVE  # two seeds decide only at smoke
    smoke = planted(0.05, seeds=2)
    assert decide("F3", Tables("smoke", smoke.trials, smoke.metrics, smoke.checks)).verdict == SUPPORTED


def test_f5_flatter_is_supported():
    assert decide("F5", planted(0.05)).verdict == SUPPORTED


def test_f6_noise_entropy_values_match_the_spec():
    assert [round(fl.noisy_label_entropy(e), 3) for e in (0.1, 0.2, 0.3, 0.4)] == [0.545, 0.94, 1.27, 1.552]


def test_f6_trend_and_ratio():
    rule = CLAIM["F6"].rule
    eta = np.repeat([0.0, 0.2, 0.4], 5)
    b = np.array([0.05, 0.1, 0.05, 0.1, 0.05, 0.6, 1.0, 1.0, 1.5, 1.0, 1.5, 1.5, 2.0, 1.5, 1.0])
    h = np.array([fl.noisy_label_entropy(e) for e in eta])
    assert rule.decide(eta, b, h).verdict == SUPPORTED
    assert rule.decide(eta, b / 10, h).verdict == REFUTED  # every median ratio far below 0.5
    few = rule.decide(eta[:-3], b[:-3], h[:-3], ("eta=0.4 b=1 seed 2: diverged",))
    assert few.verdict == INCONCLUSIVE and "too few seeds in eta=0.4 (n = 2 < 3)" in few.reason and "diverged" in few.reason
    # The planted tables pick b* = 0.6 at every noise level: no trend to rank.
    assert decide("F6", planted(0.05)).verdict == INCONCLUSIVE
    # A noise level whose flooded runs all failed has no b* at all: it still counts, with no seeds.
    gone = with_status(planted(0.05), "failed", *[f"e0.4-b{b}-s{s}" for b in (0.3, 0.6) for s in range(5)])
    v = decide("F6", gone)
    assert v.verdict == INCONCLUSIVE and "too few seeds in eta=0.4 (n = 0 < 3)" in v.reason and "seed 4: failed" in v.reason


def test_a_control_that_behaves_wrongly_invalidates_the_claims():
    study = CLAIMED
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


def test_smoke_reports_direction_only():
    t = planted(0.05)
    smoke = evaluate(CLAIMED, Tables("smoke", t.trials, t.metrics, GOOD_CHECKS)).set_index("claim_id")
    assert smoke.loc["F1", "verdict"] == INCONCLUSIVE and smoke.loc["F1", "reason"].startswith("direction only at smoke")


@pytest.mark.parametrize("name", ["F-P1", "F-P2"])
def test_missing_exact_checks_fail_positive_controls(name):
    empty = planted(0.0)
    assert decide(name, empty).verdict == "FAIL"
    assert decide(name, Tables("local", empty.trials, empty.metrics, GOOD_CHECKS)).verdict == "PASS"


def scale_aware(seeds: int = 5, reached: bool = True) -> Tables:
    """The planted tables (b* = 0.6 in both noise cells), with the measures of amendment A1 as the local run showed
    them: lambda_max higher at b* (so F5 refutes), but b = 0 ends at a training loss of 1e-3. Per seed s:
    b*: lambda_max 8, L 0.6 (ratio 13.3), sharpness 0.2; b = 0 at the end: lambda_max 0.5, L 1e-3 (ratio 500),
    sharpness 0.01; b = 0 when its loss first fell to 0.6 (epoch 4): lambda_max 12, L 0.6 (ratio 20), sharpness 0.3.
    Its entry for level 0.3 (epoch 7) is planted to flip every sign, so reading the wrong level shows."""
    t = planted(0.05, seeds=seeds)
    trials = t.trials.copy()
    jitter = 0.01 * np.random.default_rng(1).standard_normal((3, len(trials)))  # relative, per measure and run
    values = {0.0: (0.5, 1e-3, 0.01), 0.3: (6.0, 0.3, 0.1), 0.6: (8.0, 0.6, 0.2)}
    for k, name in enumerate(["train/lambda_max", fl.SUBSET_LOSS, fl.SHARPNESS]):
        trials[name] = [values[b][k] * (1 + j) for b, j in zip(trials["config/flood_level"], jitter[k], strict=True)]
    rows = []
    for tid, s in trials.loc[trials["config/flood_level"] == 0.0, ["trial_id", "seed"]].to_numpy():
        j = 1 + 0.01 * s
        at = {0.6: (4, 12.0 * j, 0.6, 0.3 * j), 0.3: (7, 1.0, 0.3, 1e-3)} if reached or s != 3 else {0.3: (7, 1.0, 0.3, 1e-3)}
        for level, (step, lam, loss, sharp) in at.items():
            rows += [(tid, step, 0, fl.EQ_LEVEL, level), (tid, step, 0, fl.EQ_LAMBDA_MAX, lam),
                     (tid, step, 0, fl.EQ_SUBSET_LOSS, loss), (tid, step, 0, fl.EQ_SHARPNESS, sharp)]  # fmt: skip
    eq = pd.DataFrame(rows, columns=["trial_id", "step", "series", "metric", "value"])
    return Tables(t.budget, trials, pd.concat([t.metrics.assign(series=0), eq], ignore_index=True), t.checks)


def by_measure(v) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in v.detail:
        out.setdefault(r["measure"], []).append(r["decision"])
    return out


def test_fd1_reports_each_measure_per_cell_beside_a_refuted_f5():
    t = scale_aware()
    assert decide("F5", t).verdict == REFUTED  # F5's rule is unchanged: lambda_max is higher at b*
    v = decide("F-D1", t)
    assert v.verdict == INCONCLUSIVE and v.reason.startswith("diagnostic: ") and v.n_seeds == 5
    assert by_measure(v) == {
        "(i) lambda_max/L_train, end": [SUPPORTED, SUPPORTED],  # 13.3 vs 500: lower per unit of loss at b*
        "(ii) sharpness, end": [REFUTED, REFUTED],  # 0.2 vs 0.01: sharper at b*
        "(iii) lambda_max/L_train, b=0 at equal loss": [SUPPORTED, SUPPORTED],  # 13.3 vs 20
        "(iii) sharpness, b=0 at equal loss": [SUPPORTED, SUPPORTED],  # 0.2 vs 0.3: flatter at equal loss
    }
    row = next(r for r in v.detail if r["measure"] == "(iii) sharpness, b=0 at equal loss")
    assert row["cell"] == "eta=0.2, E=off, b*=0.6" and row["b0_mean"] == pytest.approx(0.3 * 1.02)
    assert row["mean"] == pytest.approx(np.mean([0.2 * (1 + j) for j in row_jitter(t, 0.2)]) - 0.3 * 1.02)
    ii = next(x for x in v.reason.split("; ") if x.startswith("(ii) sharpness, end, eta=0.4, E=off, b*=0.6: "))
    assert ii.endswith(", n 5 (higher at b*)") and "0.2004 vs 0.00997 at b=0, difference +0.19" in ii, ii


def row_jitter(t: Tables, eta: float) -> list[float]:
    """The planted relative jitter of the b* runs' sharpness in one cell, by seed."""
    star = t.trials[(t.trials["config/label_noise"] == eta) & (t.trials["config/flood_level"] == 0.6)].sort_values("seed")
    return (star[fl.SHARPNESS] / 0.2 - 1).tolist()


def test_fd1_never_decides_and_never_invalidates():
    t = scale_aware()
    for budget in ("smoke", "local"):
        rows = evaluate(CLAIMED, Tables(budget, t.trials, t.metrics, GOOD_CHECKS)).set_index("claim_id")
        assert rows.loc["F-D1", "verdict"] == INCONCLUSIVE and rows.loc["F-D1", "kind"] == "diagnostic"
        assert rows.loc["F-D1", "reason"].startswith("diagnostic: ") and rows["controls_ok"].all()
        assert list(rows.index).index("F-D1") == list(rows.index).index("F5") + 1  # beside F5 in the report
    assert "amendment A1" in rows.loc["F-D1", "rule"] and "one-sided paired test per cell" in rows.loc["F-D1", "rule"]


def test_fd1_names_a_baseline_that_never_reached_b_star():
    v = decide("F-D1", scale_aware(reached=False))
    counts = {(r["measure"], r["cell"]): r["n"] for r in v.detail}
    assert counts[("(iii) sharpness, b=0 at equal loss", "eta=0.2, E=off, b*=0.6")] == 4
    assert counts[("(ii) sharpness, end", "eta=0.2, E=off, b*=0.6")] == 5
    assert "eta=0.2, E=off, b*=0.6: seed 3 of b=0: never at b*" in v.reason
    assert by_measure(v)["(iii) sharpness, b=0 at equal loss"] == [SUPPORTED, SUPPORTED]  # the 4 pairs still show it


def test_fd1_with_too_few_seeds_reports_means_without_a_test():
    v = decide("F-D1", scale_aware(seeds=2))
    assert v.verdict == INCONCLUSIVE and v.n_seeds == 2
    assert all(r["test"] == "too few seeds" for r in v.detail) and "(too few seeds)" in v.reason


def test_fd1_not_run_without_the_sharpness_metric():
    v = decide("F-D1", planted(0.05))
    assert v.verdict == INCONCLUSIVE and v.reason.startswith("not_run_at_budget")


def test_fd1_figure_draws_from_the_tables():
    name, fig = flf.fig_scale_aware_flatness(scale_aware())
    assert name == "scale_aware_flatness" and len(fig.axes) == 4
    assert flf.fig_scale_aware_flatness(planted(0.05)) is None
