"""fast_mlm checks on planted tables whose verdicts are known from how they were made."""

import numpy as np
import pandas as pd
import pytest

from analysis import fast_mlm as fa
from analysis.claims.fast_mlm import CLAIMED, CLAIMS
from analysis.figures import fast_mlm as faf
from analysis.stats import hierarchical_bootstrap
from analysis.verdict import FAIL, INCONCLUSIVE, PASS, REFUTED, SUPPORTED, Tables, evaluate

CLAIM = {c.id: c for c in CLAIMS}


def decide(claim_id: str, t: Tables):
    """The claim's verdict by its rule (a rule object decides the check's measurement), before any budget gate."""
    return CLAIM[claim_id].decide(t)


STEPS = [200, 400, 600, 800, 1000]
GOOD_CHECKS = pd.DataFrame(
    [(i, "leak/tta", 0.0) for i in range(4)]
    + [(i, "leak/leaky", v) for i, v in enumerate([0.0, 0.2, 0.3, 0.3])]
    + [(0, "tc2/leak/softmax_additive", 0.3), (0, "tc2/leak/sdpa", 0.0), (0, "tp1/oracle_vs_brute", 4e-16)],
    columns=["step", "metric", "value"],
)


def _run(tid, data, depth, objective, rate, seed, val_curve, test, oracle=None, unigram=6.0, steps=1000):
    trial = {"trial_id": tid, "seed": seed, "status": "ok", "arm": "x", "config/task": "lm", "config/data": data,
             "config/depth": depth, "config/objective": objective, "config/mask_rate": rate, "config/steps": steps,
             "val/pnll": float(val_curve[-1].mean()), "test/pnll": float(test.mean()),
             "test/unigram_pnll": unigram}  # fmt: skip
    rows = []  # (trial_id, step, series, metric, value)
    for k, s in enumerate(STEPS):
        rows += [
            (tid, s, 0, "val/pnll", float(val_curve[k].mean())),
            (tid, s, 0, "time/train_s", s * (2.0 if objective == "tta" else 1.0)),
        ]
        rows += [(tid, s, w, fa.VAL_WINDOWS, float(v)) for w, v in enumerate(val_curve[k])]
    rows += [(tid, steps + 1, w, fa.TEST_WINDOWS, float(v)) for w, v in enumerate(test)]
    if oracle is not None:
        rows += [(tid, steps + 1, w, fa.TEST_ORACLE, float(v)) for w, v in enumerate(oracle)]
    return trial, rows


def planted(tta_reach: int | None = 400, ratio: float = 0.99, depths=(3,), data="wiki", deep_ratio=None, unigram=6.0,
            seeds=3, leaky_gap=-0.5, tta_gap=0.1, checks=GOOD_CHECKS, status=None) -> Tables:  # fmt: skip
    """MLM-15 ends at 5.0 nats; T-TA reaches it at `tta_reach` (never if None) and ends at `ratio` x the better MLM
    (MLM-40, 0.05 nats better than MLM-15). HMM runs carry an oracle `tta_gap` below T-TA and a leaky run at
    `leaky_gap` from it. `status` maps trial ids to a status other than ok (their rows stay, as a run's would)."""
    rng = np.random.default_rng(0)
    trials, rows = [], []
    w = 40
    for depth in depths:
        r = ratio if deep_ratio is None or depth == min(depths) else deep_ratio
        for s in range(seeds):
            noise = 0.05 * rng.standard_normal((len(STEPS), w))
            mlm = np.linspace(6.0, 5.0, len(STEPS))[:, None] + noise
            test40 = 4.95 + 0.1 * rng.standard_normal(200)
            if tta_reach is None:
                tta = np.linspace(6.0, 5.5, len(STEPS))[:, None] + noise
            else:
                k = STEPS.index(tta_reach)
                tta = np.concatenate([np.linspace(6.0, 4.95, k + 1), np.full(len(STEPS) - k - 1, 4.9)])[:, None] + noise
            oracle = test40 * r - tta_gap if data == "hmm" else None
            for tid, obj, rate, val, test in (
                (f"m15-{depth}-{s}", "mlm", 0.15, mlm, test40 + 0.05),
                (f"m40-{depth}-{s}", "mlm", 0.4, mlm - 0.05, test40),
                (f"tta-{depth}-{s}", "tta", 0.0, tta, test40 * r + 0.01 * rng.standard_normal(200)),
            ):
                tr, rw = _run(tid, data, depth, obj, rate, s, val, test, oracle, unigram)
                trials.append(tr)
                rows += rw
        if data == "hmm":
            tr, rw = _run(f"leaky-{depth}", data, depth, "leaky", 0.0, 0, mlm, oracle + leaky_gap, oracle, unigram, steps=300)
            trials.append(tr)
            rows += rw
    metrics = pd.DataFrame(rows, columns=["trial_id", "step", "series", "metric", "value"])
    trials = pd.DataFrame(trials)
    trials["status"] = [(status or {}).get(tid, "ok") for tid in trials["trial_id"]]
    return Tables("local", trials, metrics, checks)


def test_t1_reaching_the_target_at_step_400_of_1000_gives_r_2_5():
    v = fa.check_t1(planted(tta_reach=400))
    assert v.verdict == SUPPORTED and v.effect == pytest.approx(2.5) and v.ci_low > 1
    res = fa.t1_ratio(planted(tta_reach=400))
    assert res["s_tta"] == 400 and res["wall_ratio"] == pytest.approx(1000 / (2 * 400))


def test_t1_never_reaching_the_target_is_refuted_and_reaching_it_only_at_the_end_is_not_supported():
    assert fa.check_t1(planted(tta_reach=None)).verdict == REFUTED
    assert fa.check_t1(planted(tta_reach=1000)).verdict != SUPPORTED


@pytest.mark.parametrize("ratio,expected", [(0.99, SUPPORTED), (1.10, REFUTED), (1.02, INCONCLUSIVE)])
def test_t3_non_inferiority_against_the_better_mlm(ratio, expected):
    v = decide("T3", planted(ratio=ratio))
    assert v.verdict == expected
    assert v.detail[0]["cell"] == "wiki depth 3 vs mlm40" and v.effect == pytest.approx(ratio - 1, abs=0.002)


def test_t3_has_no_unigram_gate_the_spec_does_not_write():
    """The old check made T3 INCONCLUSIVE when the better MLM beat the training unigram by < 0.05 nats; spec 03
    has no such gate, so the planted non-inferior T-TA is SUPPORTED."""
    assert decide("T3", planted(ratio=0.99, unigram=4.97)).verdict == SUPPORTED


def test_t3_one_seed_and_diverged_runs_decide_nothing_and_are_named():
    v = decide("T3", planted(ratio=0.99, seeds=1))
    assert v.verdict == INCONCLUSIVE and "too few seeds" in v.reason and np.isnan(v.ci_low)
    v = decide("T3", planted(ratio=0.99, status={"tta-3-2": "diverged", "m40-3-1": "failed"}))
    assert v.verdict == INCONCLUSIVE and "too few seeds" in v.reason
    assert "tta depth 3 seed 2: diverged" in v.reason and "mlm40 depth 3 seed 1: failed" in v.reason


def test_t5_by_depth():
    assert decide("T5", planted(depths=(2, 4), data="hmm")).verdict == SUPPORTED
    assert decide("T5", planted(depths=(2, 4), data="hmm", deep_ratio=1.10)).verdict == REFUTED
    assert decide("T5", planted(depths=(3,))).verdict == INCONCLUSIVE
    assert decide("T5", planted(depths=(2, 4), data="hmm", deep_ratio=0.5)).verdict == SUPPORTED
    # the shallowest depth not non-inferior: a refuted deepest depth does not refute
    assert decide("T5", planted(depths=(2, 4), data="hmm", ratio=1.02, deep_ratio=1.10)).verdict == INCONCLUSIVE


def test_t5_is_inconclusive_when_the_largest_depth_has_no_finished_runs():
    """Depth 4 planned but every run there diverged or failed: T5 names it and is not decided on depth 2 alone."""
    gone = {f"{a}-4-{s}": "diverged" for a in ("m15", "m40", "tta") for s in range(3)} | {"tta-4-0": "failed"}
    v = decide("T5", planted(depths=(2, 4), data="hmm", deep_ratio=1.10, status=gone))
    assert v.verdict == INCONCLUSIVE and "too few seeds" in v.reason and "hmm depth 4" in v.reason
    assert "no finished MLM run" in v.reason and "tta depth 4 seed 0: failed" in v.reason
    part = {f"tta-4-{s}": "diverged" for s in (1, 2)}
    v = decide("T5", planted(depths=(2, 4), data="hmm", deep_ratio=1.10, status=part))
    assert v.verdict == INCONCLUSIVE and "tta depth 4 seed 1: diverged" in v.reason and "tta depth 4 seed 2" in v.reason


def test_t2_and_the_leaky_control_read_the_oracle_gaps():
    t = planted(depths=(2, 4), data="hmm")
    assert fa.check_t2(t).verdict == SUPPORTED and fa.check_tc1(t).verdict == FAIL
    one = fa.check_t2(planted(depths=(2,), data="hmm", seeds=1))  # one seed: too few at local
    assert one.verdict == INCONCLUSIVE and "too few seeds" in one.reason
    gone = fa.check_t2(planted(depths=(2,), data="hmm", seeds=4, status={"tta-2-3": "diverged"}))
    assert gone.verdict == SUPPORTED and "tta depth 2 seed 3: diverged" in gone.reason  # three finished seeds decide
    leaky = fa.check_tc1(planted(depths=(2,), data="hmm", status={"leaky-2": "diverged"}))
    assert leaky.verdict == INCONCLUSIVE and "leaky depth 2 seed 0: diverged" in leaky.reason
    below = planted(depths=(2,), data="hmm", tta_gap=-0.05)  # T-TA 0.05 nats under the oracle: a leak
    assert fa.check_t2(below).verdict == REFUTED
    assert fa.check_tc1(planted(depths=(2,), data="hmm", leaky_gap=-0.01)).verdict == PASS  # a blind oracle check


def test_leak_test_results_decide_t2_and_the_controls():
    bad = GOOD_CHECKS.copy()
    bad.loc[bad["metric"] == "leak/tta", "value"] = [0.0, 0.0, 1e-9, 0.0]
    assert fa.check_t2(planted(data="hmm", checks=bad)).verdict == REFUTED
    flat = GOOD_CHECKS.copy()
    flat.loc[flat["metric"] == "leak/leaky", "value"] = 0.0
    assert fa.check_tc1(planted(data="hmm", checks=flat)).verdict == PASS
    blind = GOOD_CHECKS.copy()
    blind.loc[blind["metric"] == "tc2/leak/softmax_additive", "value"] = 0.0
    assert fa.check_tc2(planted(checks=blind)).verdict == PASS
    assert fa.check_tc2(planted()).verdict == FAIL and decide("T-P1", planted()).verdict == PASS


def _timing(mlm_s: list[float], tta_s: list[float], length: float = 32.0) -> Tables:
    trials = pd.DataFrame([{"trial_id": "time", "seed": 0, "status": "ok", "arm": "t", "config/task": "timing"}])
    rows = [("time", 0, "time/mean_length", length)]
    for b in (1, 32):
        for r, (m, t) in enumerate(zip(mlm_s, tta_s, strict=True)):
            rows += [("time", r, f"time/mlm_b{b}_s", m), ("time", r, f"time/tta_b{b}_s", t)]
    return Tables("local", trials, pd.DataFrame(rows, columns=["trial_id", "step", "metric", "value"]), GOOD_CHECKS)


def test_t4_speedup_against_six():
    v = fa.check_t4(_timing([10.0, 11.0, 10.5, 9.8, 10.2], [1.0] * 5))
    assert v.verdict == SUPPORTED and v.effect == pytest.approx(10.2) and v.detail[0]["ratio_to_T"] == pytest.approx(10.2 / 32)
    assert fa.check_t4(_timing([2.0, 2.1, 1.9, 2.2, 2.0], [1.0] * 5)).verdict == REFUTED
    assert fa.check_t4(_timing([5.0, 7.0, 5.5, 8.0, 4.0], [1.0] * 5)).verdict == INCONCLUSIVE  # median 5.5, CI reaches 6


def test_t4_decides_on_the_measured_median_as_the_spec_writes():
    """Spec 03: SUPPORTED if the measured (median) speed-up is >= 6x; the old check asked the CI's lower end to be."""
    v = fa.check_t4(_timing([5.0, 7.0, 6.0, 8.0, 4.0], [1.0] * 5))
    assert v.verdict == SUPPORTED and v.effect == pytest.approx(6.0) and v.ci_low < 6


def test_t4_one_repeat_decides_nothing():
    v = fa.check_t4(_timing([10.0], [1.0]))
    assert v.verdict == INCONCLUSIVE and "too few repeats" in v.reason


def test_every_check_is_inconclusive_on_empty_tables():
    empty = Tables("smoke", pd.DataFrame(), pd.DataFrame(columns=["trial_id", "step", "metric", "value"]),
                   pd.DataFrame(columns=["step", "metric", "value"]))  # fmt: skip
    for claim in CLAIMS:
        assert claim.decide(empty).verdict == INCONCLUSIVE


def test_the_figures_draw_from_planted_tables():
    t = planted(depths=(2, 4), data="hmm", status={"tta-4-2": "diverged"})
    for fig in (faf.fig_efficiency, faf.fig_oracle_gap, faf.fig_one_layer_only, faf.fig_non_inferiority):
        name, figure = fig(t)
        assert name and figure.axes
    assert faf.fig_throughput(_timing([10.0] * 5, [1.0] * 5)) is None  # no per-length series: nothing to draw


def test_hierarchical_bootstrap_of_a_ratio_of_paired_means():
    rng = np.random.default_rng(1)
    groups = [np.stack([2.0 + 0.1 * rng.standard_normal(50), np.full(50, 2.0)], axis=1) for _ in range(3)]
    ratio, low, high = hierarchical_bootstrap(groups, statistic=lambda r: r[:, 0].mean() / r[:, 1].mean())
    pooled = np.concatenate(groups)
    assert ratio == pytest.approx(pooled[:, 0].mean() / 2.0) and low < ratio < high and high - low < 0.1
    plain = [g[:, 0] - g[:, 1] for g in groups]
    assert hierarchical_bootstrap(plain)[0] == pytest.approx(np.mean(np.concatenate(plain)))


def test_t1_one_seed_decides_nothing_and_names_what_is_left_out():
    v = fa.check_t1(planted(tta_reach=400, seeds=1))
    assert v.verdict == INCONCLUSIVE and v.reason.startswith("too few seeds (n = 1 < 3)")
    v = fa.check_t1(planted(tta_reach=None, status={"tta-3-2": "diverged"}))  # never reached in 2 of 2: not decided
    assert v.verdict == INCONCLUSIVE and "tta depth 3 seed 2: diverged" in v.reason


def test_empirical_claims_only_report_their_direction_at_smoke():
    t = planted(tta_reach=400)
    smoke = evaluate(CLAIMED, Tables("smoke", t.trials, t.metrics, t.checks)).set_index("claim_id")
    assert smoke.loc["T1", "verdict"] == INCONCLUSIVE and smoke.loc["T1", "effect"] == pytest.approx(2.5)
    assert smoke.loc["T1", "reason"].startswith("direction only at smoke (verdicts from local on): would be SUPPORTED")
    assert smoke.loc["T-C2", "verdict"] == FAIL  # exact checks and controls are decided at every budget
    assert decide("T1", t).verdict == SUPPORTED
