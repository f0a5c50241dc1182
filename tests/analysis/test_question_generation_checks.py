"""question_generation checks on planted tables whose verdicts are known from how they were made."""

import numpy as np
import pandas as pd
import pytest

from analysis import question_generation as qa
from analysis import style
from analysis.claims.question_generation import CLAIMED
from analysis.figures import question_generation as qaf
from analysis.verdict import FAIL, INCONCLUSIVE, PASS, REFUTED, SUPPORTED, Tables, Verdict, evaluate

PASSAGES = 200
METRICS = ("validity", "span_rate", "coverage", "distinct_pair", "distinct_2")

COLUMNS = ["trial_id", "step", "series", "metric", "value"]


def _checks(bi: float = 0.4, uni: float = 0.0, nopad: float = 0.3, uni_pad: float = 0.0) -> pd.DataFrame:
    rows = []
    for d in range(3):
        rows += [(d, "leak/bidirectional/future", bi), (d, "leak/unilm/future", uni),
                 (d, "leak/unilm_nopad/padding", nopad), (d, "leak/unilm/padding", uni_pad)]  # fmt: skip
    return pd.DataFrame(rows, columns=["step", "metric", "value"])


def _run(tid, order, seed, arms: dict[str, dict[str, float]], mask="unilm", nll=1.0, steps=1500, rng=None):
    """A trained model whose per-passage metric m of decoding arm a is Bernoulli(arms[a][m]) (K = 5 samples)."""
    trial = {"trial_id": tid, "status": "ok", "config/task": "qg", "config/order": order, "config/mask": mask,
             "config/seed": seed, "config/steps": steps, "config/init": "random"}  # fmt: skip
    rows = []
    nlls = nll + 0.05 * rng.standard_normal(PASSAGES)
    rows += [(tid, steps + 1, i, "test/tf_nll", float(v)) for i, v in enumerate(nlls)]  # series at the last step
    rows.append((tid, 400, 0, "val/tf_nll", nll))  # every run evaluates at the control's step
    trial["test/tf_nll_mean"] = float(nlls.mean())
    for arm, means in arms.items():
        for m in METRICS:
            values = rng.binomial(5, means.get(m, 0.5), size=PASSAGES) / 5
            rows += [(tid, steps + 1, i, f"test/{arm}/{m}", float(v)) for i, v in enumerate(values)]
            trial[f"final/{arm}/{m}"] = float(values.mean())
    return trial, rows


def _tables(aq, qa_, budget="local", control=None, checks=None, seeds=4, steps=1500, status=None) -> Tables:
    """`status`: (order, seed) -> a run's status other than ok (its metrics are then not written)."""
    rng = np.random.default_rng(0)
    trials, metrics = [], []
    for s in range(seeds):
        for order, arms in (("AQ", aq), ("QA", qa_)):
            t, m = _run(f"{order}{s}", order, s, arms, rng=rng, steps=steps)
            t["status"] = (status or {}).get((order, s), "ok")
            trials.append(t)
            metrics += m if t["status"] == "ok" else []
    if control is not None:
        t, m = _run("ctl", "AQ", 0, {"su": {"validity": control[1]}}, mask="bidirectional", nll=control[0], rng=rng, steps=400)
        trials.append(t)
        metrics += m
    return Tables(budget, pd.DataFrame(trials), pd.DataFrame(metrics, columns=COLUMNS),
                  _checks() if checks is None else checks)  # fmt: skip


def _arms(su=0.8, sample_both=0.7, greedy_cov=0.1, su_cov=0.4, span=0.8, su_span=0.9):
    return {
        "su": {"validity": su, "coverage": su_cov, "span_rate": span},
        "sample_both": {"validity": sample_both},
        "greedy_both": {"validity": su, "coverage": greedy_cov},
        "su_span": {"validity": su_span, "span_rate": 1.0},
    }


def test_all_supported_when_planted_so():
    t = _tables(_arms(), _arms(su=0.6), control=(0.05, 0.05))
    assert qa.check_q1(t).verdict == SUPPORTED
    q2 = qa.check_q2(t)
    assert q2.verdict == SUPPORTED and 0.15 < q2.effect < 0.25 and q2.ci_low > 0
    assert qa.check_q3(t).verdict == SUPPORTED
    assert qa.check_q4(t).verdict == SUPPORTED
    assert qa.check_q5(t).verdict == INCONCLUSIVE and "not_run_at_budget" in qa.check_q5(t).reason
    assert qa.check_qc1(t).verdict == FAIL
    assert qa.check_qc2(t).verdict == FAIL


def test_refuted_when_planted_so():
    t = _tables(_arms(su=0.3, sample_both=0.5, su_cov=0.1, greedy_cov=0.1, span=0.99, su_span=0.3),
                _arms(su=0.3, sample_both=0.5, span=0.99))  # fmt: skip
    assert qa.check_q1(t).verdict == REFUTED
    assert qa.check_q2(t).verdict == REFUTED  # no order effect: the CI's upper end is below +2 points
    assert qa.check_q3(t).verdict == REFUTED  # Su significantly less valid than sample_both


def test_near_thresholds_is_inconclusive():
    t = _tables(_arms(su=0.6, sample_both=0.6, su_cov=0.15), _arms(su=0.58), seeds=2)
    for check in (qa.check_q1, qa.check_q2, qa.check_q3, qa.check_q4):  # two seeds: nothing is decided
        v = check(t)
        assert v.verdict == INCONCLUSIVE and "too few seeds" in v.reason
    t = _tables(_arms(su=0.6, sample_both=0.6, su_cov=0.15), _arms(su=0.58))
    for check in (qa.check_q1, qa.check_q2, qa.check_q3):  # four seeds: the intervals straddle the thresholds
        v = check(t)
        assert v.verdict == INCONCLUSIVE and "too few seeds" not in v.reason


def test_one_seed_decides_nothing():
    t = _tables(_arms(), _arms(su=0.6), seeds=1)
    v = qa.check_q1(t)
    assert v.verdict == INCONCLUSIVE and v.reason.startswith("too few seeds (n = 1 < 3)")
    assert v.ci_low < v.effect < v.ci_high  # the one-seed interval is computed and shown, never decides
    for check in (qa.check_q2, qa.check_q3, qa.check_q4):
        assert check(t).verdict == INCONCLUSIVE and "too few seeds" in check(t).reason


def test_diverged_runs_are_named_and_count_against_the_minimum():
    four = _tables(_arms(), _arms(su=0.6), status={("AQ", 3): "diverged"})
    v = qa.check_q1(four)  # three ok seeds remain: decided, the diverged run named
    assert v.verdict == SUPPORTED and v.n_seeds == 3 and v.reason.count("AQ seed 3: diverged") == 1  # named once
    assert "QA seed 1: failed" in qa.check_q2(_tables(_arms(), _arms(su=0.6), status={("QA", 1): "failed"})).reason
    three = _tables(_arms(), _arms(su=0.6), seeds=3, status={("QA", 2): "diverged"})
    v = qa.check_q2(three)
    assert v.verdict == INCONCLUSIVE and "too few seeds" in v.reason and v.reason.count("QA seed 2: diverged") == 1
    assert qa.check_q1(three).verdict == SUPPORTED  # Q1 reads the AQ models only
    t = _tables(_arms(), _arms(su=0.6))
    gone = Tables(t.budget, t.trials[t.trials["trial_id"] != "QA2"], t.metrics, t.checks)  # never recorded
    assert "seed 2: run in one arm only" in qa.check_q2(gone).reason and qa.check_q2(gone).n_seeds == 3


def test_a_missing_test_keeps_its_place_in_the_holm_family():
    t = _tables({k: v for k, v in _arms().items() if k != "su_span"}, _arms(su=0.6))  # no span-constrained decoding
    raw, fam = qa.cells(t), qa.family(t)
    assert set(fam) == {"Q2", "Q3_validity", "Q3_coverage", "Q4"} and fam["Q4"].n == 0 and np.isnan(fam["Q4"].p)
    ps = sorted(e.p for k, e in raw.items() if k != "Q4")
    assert min(e.p for e in fam.values() if not np.isnan(e.p)) == pytest.approx(min(1.0, 4 * ps[0]))
    assert qa.check_q4(t).verdict == INCONCLUSIVE and "not_run_at_budget" in qa.check_q4(t).reason


def test_span_rate_at_one_refutes_q4():
    t = _tables(_arms(span=1.0, su_span=0.8), _arms())
    v = qa.check_q4(t)
    assert v.verdict == REFUTED and "span rate 1.000" in v.reason


def test_smoke_reports_only_and_calibration_guard():
    t = _tables(_arms(), _arms(su=0.6), budget="smoke")
    assert qa.check_q1(t).verdict == SUPPORTED  # the measurement decides; `evaluate` reports it as a direction
    v = evaluate(CLAIMED, t).set_index("claim_id")
    assert (v.loc[["Q1", "Q2", "Q3", "Q4", "Q5"], "verdict"] == INCONCLUSIVE).all()
    assert v.loc["Q1", "reason"].startswith("direction only at smoke (verdicts from local on): would be SUPPORTED")
    assert v.loc["Q-C2", "verdict"] == FAIL and v.loc["Q-C2", "rule"] == qa.QC2.text()
    low = _tables(_arms(su=0.1), _arms(su=0.1))
    v = qa.check_q1(low)
    assert v.verdict == INCONCLUSIVE and "calibration rule" in v.reason  # steps were not doubled
    doubled = _tables(_arms(su=0.1), _arms(su=0.1), steps=3000)
    assert qa.check_q1(doubled).verdict == REFUTED


def test_holm_family_adjusts_four_tests():
    t = _tables(_arms(), _arms(su=0.6))
    raw, fam = qa.cells(t), qa.family(t)
    assert set(fam) == {"Q2", "Q3_validity", "Q3_coverage", "Q4"}
    assert all(fam[k].p >= raw[k].p for k in raw)
    first = min(raw, key=lambda k: raw[k].p)
    assert fam[first].p == pytest.approx(min(1.0, 4 * raw[first].p))


@pytest.mark.parametrize(
    "control,checks,want",
    [
        ((0.05, 0.05), None, FAIL),
        ((2.0, 0.05), None, PASS),  # no copying: the NLL is not below the UniLM model's
        ((0.05, 0.7), None, PASS),  # no garbage: validity above half the UniLM model's
        ((0.05, 0.05), _checks(bi=0.0), PASS),  # the leak test is blind
        ((0.05, 0.05), _checks(uni=1e-3), PASS),  # the UniLM mask leaks
    ],
)
def test_qc1_must_fail_on_every_count(control, checks, want):
    t = _tables(_arms(), _arms(), control=control, checks=checks)
    assert qa.check_qc1(t).verdict == want


def test_qc1_at_smoke_is_the_exact_test_only_and_qc2():
    t = _tables(_arms(), _arms(), budget="smoke")
    assert qa.check_qc1(t).verdict == FAIL
    assert qa.check_qc2(_tables(_arms(), _arms(), checks=_checks(nopad=0.0))).verdict == PASS
    assert qa.check_qc2(_tables(_arms(), _arms(), checks=_checks(uni_pad=1.0))).verdict == PASS
    empty = Tables("local", pd.DataFrame(), pd.DataFrame(columns=["trial_id", "step", "metric", "value"]),
                   pd.DataFrame(columns=["step", "metric", "value"]))  # fmt: skip
    for check in (qa.check_q1, qa.check_q2, qa.check_q3, qa.check_q4, qa.check_qc1, qa.check_qc2):
        assert check(empty).verdict == INCONCLUSIVE


def test_figures_draw(tmp_path):
    t = _tables(_arms(), _arms(su=0.6), control=(0.05, 0.05))
    t.metrics.loc[len(t.metrics)] = ["AQ0", 250, 0, "val/tf_nll", 1.5]
    for fig in (
        qaf.fig_pareto,
        qaf.fig_order_effect,
        qaf.fig_training,
        qaf.fig_controls,
        qaf.fig_span_constraint,
        qaf.fig_diversity,
    ):
        name, f = fig(t)
        style.save(f, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def _full(em: dict[tuple[str, str], float], seeds: int = 3, utility: dict[str, float] | None = None, data: str = "") -> Tables:
    """Full-budget tables: per (init, order) a round-trip EM rate under Su's decoding (K = 10 per passage)."""
    rng = np.random.default_rng(1)
    trials, rows = [], []
    for (init, order), rate in em.items():
        for s in range(seeds):
            tid = f"{data}{init}{order}{s}"
            trials.append({"trial_id": tid, "status": "ok", "config/task": "qg", "config/order": order,
                           "config/mask": "unilm", "config/seed": s, "config/steps": 100, "config/init": init}
                          | ({"config/data": data} if data else {}))  # fmt: skip
            values = rng.binomial(10, rate, size=PASSAGES) / 10
            for m in ("validity", "validity_em"):
                rows += [(tid, 101, i, f"test/su/{m}", float(v)) for i, v in enumerate(values)]
            if utility is not None:  # per dev example right or wrong; the examples' difficulty is shared by the arms
                hits = np.random.default_rng(s).random(4 * PASSAGES) < utility[order]
                rows += [(tid, 101, i, "utility/em", float(v)) for i, v in enumerate(hits)]
    return Tables("full", pd.DataFrame(trials), pd.DataFrame(rows, columns=COLUMNS), _checks())


def test_q5_and_the_full_budget_order_metric():
    arms = {("pretrained", "AQ"): 0.7, ("pretrained", "QA"): 0.5, ("random", "AQ"): 0.3, ("random", "QA"): 0.3}
    t = _full(arms, utility={"AQ": 0.8, "QA": 0.8})
    q5 = qa.check_q5(t)
    assert q5.verdict == SUPPORTED and 0.35 < q5.effect < 0.45 and q5.ci_low > 0.1
    q2 = qa.check_q2(t)  # the claims' arm is the pretrained one; round-trip EM; utility not worse
    assert q2.verdict == SUPPORTED and "round-trip EM" in q2.reason and "utility EM" in q2.reason and q2.effect > 0.15
    worse = qa.check_q2(_full(arms, utility={"AQ": 0.6, "QA": 0.8}))
    assert worse.verdict == INCONCLUSIVE and "utility not shown not worse" in worse.reason
    assert qa.check_q2(_full(arms)).verdict == INCONCLUSIVE  # no utility runs
    assert qa.check_q1(t).effect == pytest.approx(
        np.mean([qa.arm_values(t, "AQ", "test/su/validity")[0][s] for s in range(3)])
    )
    same = _full({("pretrained", "AQ"): 0.5, ("pretrained", "QA"): 0.5, ("random", "AQ"): 0.5, ("random", "QA"): 0.5})
    assert qa.check_q5(same).verdict == REFUTED and qa.check_q2(same).verdict == REFUTED
    close = _full({("pretrained", "AQ"): 0.6, ("random", "AQ"): 0.5, ("pretrained", "QA"): 0.5, ("random", "QA"): 0.5},
                  seeds=2)  # fmt: skip
    assert qa.check_q5(close).verdict == INCONCLUSIVE and "too few seeds" in qa.check_q5(close).reason  # 2 seeds
    close = _full({("pretrained", "AQ"): 0.6, ("random", "AQ"): 0.5, ("pretrained", "QA"): 0.5, ("random", "QA"): 0.5})
    assert qa.check_q5(close).verdict == INCONCLUSIVE  # +10 points planted: the CI straddles the threshold


def test_full_budget_figures_draw(tmp_path):
    t = _full({("pretrained", "AQ"): 0.7, ("pretrained", "QA"): 0.5, ("random", "AQ"): 0.3, ("random", "QA"): 0.3})
    assert qaf.fig_pretraining(_tables(_arms(), _arms())) is None  # no pretrained models below full
    for fig in (qaf.fig_pretraining, qaf.fig_order_effect):
        name, f = fig(t)
        style.save(f, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def _both(en: Tables, zh: Tables) -> Tables:
    return Tables("full", pd.concat([en.trials, zh.trials], ignore_index=True),
                  pd.concat([en.metrics, zh.metrics], ignore_index=True), en.checks)  # fmt: skip


def test_full_budget_claims_need_both_languages():
    strong = {("pretrained", "AQ"): 0.7, ("pretrained", "QA"): 0.5, ("random", "AQ"): 0.3, ("random", "QA"): 0.3}
    flat = dict.fromkeys(strong, 0.5)
    both = _both(_full(strong, data="squad"), _full(strong, data="webqa"))
    assert qa.languages(both) == ["squad", "webqa"]
    q5 = qa.check_q5(both)
    assert q5.verdict == SUPPORTED and "squad: SUPPORTED" in q5.reason and "webqa: SUPPORTED" in q5.reason
    assert [d["data"] for d in q5.detail] == ["squad", "webqa"]
    mixed = _both(_full(strong, data="squad"), _full(flat, data="webqa"))
    assert qa.check_q5(mixed).verdict == INCONCLUSIVE  # SUPPORTED in English, REFUTED in Chinese
    assert qa.check_q5(_both(_full(flat, data="squad"), _full(flat, data="webqa"))).verdict == REFUTED
    # Each language's verdict is the one its own tables give.
    assert qa.check_q5(qa.subset(mixed, "webqa")).verdict == REFUTED
    assert qa.check_qc2(both).verdict == FAIL  # the exact checks are shared
    assert qaf.one_language(qaf.fig_pretraining)(both) is None
    name, fig = qaf.for_language(qaf.fig_pretraining, "webqa")(both)
    assert name == "pretraining_webqa" and qaf.for_language(qaf.fig_pretraining, "xx")(both) is None


def test_a_control_must_fail_in_every_language():
    strong = {("pretrained", "AQ"): 0.7, ("pretrained", "QA"): 0.5}
    both = _both(_full(strong, data="squad"), _full(strong, data="webqa"))
    one = qa.per_language(lambda t: Verdict(FAIL if qa.languages(t) == ["squad"] else PASS, "planted"))
    assert one(both).verdict == PASS  # passing in Chinese makes the study INVALID
    assert qa.per_language(lambda t: Verdict(FAIL, "planted"))(both).verdict == FAIL


def test_q2_utility_must_lie_strictly_above_its_margin():
    from analysis.rules import Estimate

    effect = Estimate(0.1, 0.05, 0.15, 3, p=0.01)
    at = Estimate(0.0, qa.Q2.utility_margin, 0.01, 3)  # spec 3: lower end > -1 point
    assert qa.Q2.decide(effect, at).verdict == INCONCLUSIVE
    assert qa.Q2.decide(effect, Estimate(0.0, qa.Q2.utility_margin + 1e-3, 0.01, 3)).verdict == SUPPORTED
    assert qa.Q2.decide(effect, Estimate(0.0, 0.0, 0.01, 2)).verdict == INCONCLUSIVE  # too few utility seeds
    assert qa.Q2.decide(effect).verdict == SUPPORTED  # below full the utility is not required


def test_a_language_whose_runs_all_failed_is_not_dropped():
    strong = {("pretrained", "AQ"): 0.7, ("random", "AQ"): 0.3}
    zh = _full(strong, data="webqa")
    zh.trials["status"] = "failed"
    v = qa.check_q5(_both(_full(strong, data="squad"), zh))
    assert v.verdict == INCONCLUSIVE and "webqa: INCONCLUSIVE, too few seeds" in v.reason and "seed 0: failed" in v.reason
