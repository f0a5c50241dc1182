"""attention_scaling verdicts on planted tables with known answers, and the real exact checks with their controls."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis import attention_scaling as aa
from analysis.claims.attention_scaling import CLAIMS
from analysis.stats import hierarchical_bootstrap
from analysis.verdict import FAIL, INCONCLUSIVE, REFUTED, SUPPORTED, Tables, evaluate
from studies import attention_scaling

NS = [64, 128, 256, 512, 1024, 2048, 4096, 8192]


def timing_tables(
    linear_power: float = 1.0, d: int = 32, budget: str = "local", cross: float | None = None, noise: float = 0.01
) -> Tables:
    """Softmax time ~ n^2, linear ~ n^linear_power (crossing near 4d; at n = `cross` if given, linear_power 1), cumsum
    memory n d^2 vs softmax 5 n^2; each of 5 repeats with relative noise `noise`."""
    rng = np.random.default_rng(0)
    trials, metrics = [], []
    for causal in (False, True):
        for impl in ("softmax", "sdpa", "linear", *(["cumsum"] if causal else [])):
            tid = f"{impl}-{causal}"
            trials.append({"trial_id": tid, "seed": 0, "status": "ok", "config/task": "scaling", "config/impl": impl,
                           "config/d_head": d, "config/causal": causal})  # fmt: skip
            for n in NS:
                base = {"softmax": 1e-5 * n * n, "sdpa": 0.5e-5 * n * n, "cumsum": 2e-3 * n}.get(impl)
                if base is None:
                    base = 1e-5 * cross * n if cross else 2 * 1e-5 * 2 * d * (n / 1) ** linear_power
                reps = base * (1 + noise * rng.standard_normal(5))
                kept = {"softmax": 5 * n * n, "sdpa": 8 * n, "cumsum": 4 * n * d * d, "linear": 40 * n * d}[impl]
                row = {"time/fwd_ms": float(np.median(reps)), "time/fwdbwd_ms": 3 * float(np.median(reps)),
                       "mem/saved_bytes": float(kept)} | {f"time/fwd_ms_r{i}": r for i, r in enumerate(reps)}  # fmt: skip
                metrics += [(tid, n, k, v) for k, v in row.items()]
    return Tables(budget, pd.DataFrame(trials), pd.DataFrame(metrics, columns=["trial_id", "step", "metric", "value"]),
                  pd.DataFrame(columns=["step", "metric", "value"]))  # fmt: skip


def test_stays_below_finds_the_last_crossing():
    n = np.array([1, 2, 4, 8, 16])
    assert aa.stays_below(n, np.array([5, 1, 5, 1, 1]), np.array([2, 2, 2, 2, 2])) == 8
    assert math.isnan(aa.stays_below(n, np.array([1, 1, 1, 1, 5]), np.full(5, 2)))


def test_slope_bootstrap_recovers_a_power_law():
    rng = np.random.default_rng(1)
    n = [512, 1024, 2048, 4096]
    reps = [3e-4 * x**1.5 * (1 + 0.02 * rng.standard_normal(7)) for x in n]
    slope, low, high = aa.slope_with_ci(n, reps)
    assert abs(slope - 1.5) < 0.02 and low < slope < high


def test_l1_supported_on_linear_timings_refuted_on_quadratic_ones():
    good = aa.check_l1(timing_tables(1.0))
    assert good.verdict == SUPPORTED, good.reason
    cell = good.detail[0]
    assert cell["mem_crossover"] == 1024 and cell["n_star"] <= 8 * 32
    assert aa.check_l1(timing_tables(2.0)).verdict == REFUTED


def test_n_star_interval_over_the_repeats():
    """01 A1: n* is bootstrapped over the timing repeats; where the two forms tie at one n the interval spans it and the
    next n, and an n* clear of the tie has a point interval."""
    n = [64, 128, 256, 512, 1024]
    rng = np.random.default_rng(3)
    soft = [1e-5 * x * x * (1 + 0.05 * rng.standard_normal(7)) for x in n]
    tied = [1e-5 * 256 * x * (1 + 0.05 * rng.standard_normal(7)) for x in n]  # equal to softmax at n = 256
    point, low, high = aa.n_star_with_ci(n, tied, soft)
    assert (low, high) == (256, 512) and point in (256, 512)
    clear = [1e-5 * 40 * x * (1 + 0.05 * rng.standard_normal(7)) for x in n]  # below softmax from n = 64 by 1.6x
    assert aa.n_star_with_ci(n, clear, soft) == (64, 64, 64)
    never = [1e-5 * 4096 * x * (1 + 0.05 * rng.standard_normal(7)) for x in n]  # no crossover up to n = 1024
    point, low, high = aa.n_star_with_ci(n, never, soft)
    assert math.isnan(point) and low == high == math.inf
    point, low, high = aa.n_star_with_ci(n, [r[:1] for r in tied], [r[:1] for r in soft])  # a single repeat
    assert not math.isnan(point) and math.isnan(low) and math.isnan(high)


@pytest.mark.parametrize(
    ("cross", "verdict", "interval"),
    [(64, SUPPORTED, (64, 128)), (256, INCONCLUSIVE, (256, 512)), (1024, INCONCLUSIVE, (1024, 2048))],
)
def test_l1_reads_the_interval_of_n_star(cross, verdict, interval):
    """01 A1, d = 32 (8d = 256): clear of 8d supports; straddling 8d (upper end 512) or beyond it (lower end > 8d) is
    INCONCLUSIVE, never REFUTED (a crossover exists); the reason shows the interval."""
    v = aa.check_l1(timing_tables(cross=cross, noise=0.1))
    cell = v.detail[0]
    assert v.verdict == verdict, v.reason
    assert interval[0] <= cell["n_star_ci"][0] <= cell["n_star_ci"][1] <= interval[1]
    assert cross in cell["n_star_ci"] or cell["n_star_ci"][0] < cross < cell["n_star_ci"][1]
    assert f"95% bootstrap interval over repeats [{cell['n_star_ci'][0]:g}, {cell['n_star_ci'][1]:g}]" in v.reason


def test_l1_memory_crossover_outside_the_band_is_not_supported():
    v = aa.check_l1(timing_tables(1.0, d=8))  # d^2 = 64: the crossover (n = 64) lies at the grid's first point
    assert v.verdict != REFUTED


def test_hierarchical_bootstrap_is_wider_than_chunks_alone_when_seeds_differ():
    rng = np.random.default_rng(0)
    groups = [mu + 0.01 * rng.standard_normal(200) for mu in (-0.1, 0.0, 0.1)]
    mean, low, high = hierarchical_bootstrap(groups)
    flat = np.concatenate(groups)
    se_flat = flat.std() / math.sqrt(len(flat))
    assert low < mean < high and (high - low) > 8 * se_flat


def lm_tables(
    delta: float, noise: float = 0.01, chunks: int = 100, seeds=(0, 1, 2, 3), cos: float = 0.1, status=None
) -> Tables:
    """LM runs: linear_elu = softmax + delta nats per chunk (linear_cos + `cos` more); two lrs tuned on seed 0, every
    seed run at both. `status` overrides some runs' status, e.g. `{("linear_elu", 2): "diverged"}` (no test chunks)."""
    rng = np.random.default_rng(0)
    trials, metrics = [], []
    base = 1.5 + 0.2 * rng.standard_normal(chunks)
    for attn in ("softmax", "linear_elu", "linear_cos"):
        for lr in (1e-3, 3e-3):
            for s in seeds:
                tid = f"{attn}-{lr}-{s}"
                shift = {"softmax": 0.0, "linear_elu": delta, "linear_cos": delta + cos}[attn] + (0.0 if lr == 3e-3 else 0.05)
                st = (status or {}).get((attn, s), "ok")
                trials.append({"trial_id": tid, "seed": s, "status": st, "config/task": "lm", "config/attn": attn,
                               "config/lr": lr, "config/seed": s, "val/nats": 1.5 + shift})  # fmt: skip
                if st == "ok":
                    vals = base + shift + noise * rng.standard_normal(chunks)
                    metrics += [(tid, 101, i, aa.CHUNK_NATS, v) for i, v in enumerate(vals)]  # a series at the last step
    columns = ["trial_id", "step", "series", "metric", "value"]
    return Tables("local", pd.DataFrame(trials), pd.DataFrame(metrics, columns=columns),
                  pd.DataFrame(columns=["step", "metric", "value"]))  # fmt: skip


@pytest.mark.parametrize("delta,expected", [(0.0, SUPPORTED), (0.2, REFUTED), (0.045, INCONCLUSIVE)])
def test_l5_tost_on_planted_gaps(delta, expected):
    v = aa.check_l5(lm_tables(delta, noise=0.02 if delta != 0.045 else 0.05))
    assert v.verdict == expected, v.reason
    assert "3e-3" in v.reason.replace("0.003", "3e-3")  # the lr with the lower seed-0 validation loss was chosen


def exact_tables(checks: dict[str, list[float]], trials=(), metrics=()) -> Tables:
    long = pd.DataFrame([(i, m, v) for m, vs in checks.items() for i, v in enumerate(vs)], columns=["step", "metric", "value"])
    columns = ["trial_id", "step", "metric", "value"]
    return Tables("smoke", pd.DataFrame(list(trials)), pd.DataFrame(list(metrics), columns=columns), long)


def test_real_exact_checks_decide_l2_l4_and_the_controls_fail():
    t = exact_tables(attention_scaling.exact_checks("smoke"))
    v = {c.id: c.decide(t) for c in CLAIMS}
    assert v["L2"].verdict == SUPPORTED and v["L4"].verdict == SUPPORTED, (v["L2"].reason, v["L4"].reason)
    assert v["L-C1"].verdict == FAIL and v["L-C2"].verdict == FAIL
    assert v["L3"].verdict == INCONCLUSIVE and "decode trial missing" in v["L3"].reason  # the forms agree; no decode
    rows = evaluate(attention_scaling.get_study("smoke"), t).set_index("claim_id")
    assert rows.loc["L2", "verdict"] == SUPPORTED and bool(rows["controls_ok"].all())


def test_l5_and_l6_on_a_single_lm_seed_decide_nothing():
    # One confirmation seed (seed 0 tunes): the hierarchical bootstrap falls back to the chunks of one run, a narrow
    # interval that must not decide.
    t = lm_tables(0.0, noise=0.02, seeds=(0, 1))
    v = aa.check_l5(t)
    assert v.verdict == INCONCLUSIVE and v.reason.startswith("too few seeds (n = 1 < 3)") and v.n_seeds == 1
    assert v.ci_high < aa.MARGIN  # it would have been SUPPORTED on the chunks alone
    l6 = aa.check_l6(l6_tables(lm_tables(0.0, noise=0.02, seeds=(0, 1), cos=0.2), cos_recall=-0.2))
    assert l6.verdict == INCONCLUSIVE and "too few seeds (recall 3, LM 1 < 3)" in l6.reason, l6.reason


def test_l5_names_a_diverged_run_and_does_not_decide_on_the_rest():
    v = aa.check_l5(lm_tables(0.0, noise=0.02, status={("linear_elu", 2): "diverged"}))
    assert v.verdict == INCONCLUSIVE and "too few seeds (n = 2 < 3)" in v.reason
    assert "left out: linear_elu seed 2: diverged" in v.reason


def test_l5_reads_the_confirmation_seeds_not_the_tuning_seed():
    v = aa.check_l5(lm_tables(0.0, noise=0.02))
    assert v.verdict == SUPPORTED and v.n_seeds == 3  # seeds 1-3; seed 0 chose the lr
    two = aa.check_l5(lm_tables(0.0, noise=0.02, seeds=(0, 1, 2)))
    assert two.verdict == INCONCLUSIVE and "too few seeds" in two.reason


def l6_tables(lm: Tables, cos_recall: float, softmax_acc: float = 0.9, kl=None) -> Tables:
    """`lm` plus MQAR runs (seeds 1-3, 16 values: chance 1/16) with linear_cos recall = linear_elu + cos_recall per
    batch, and row-KL samples on the softmax LM's seed-1 run at its chosen lr (`kl`: variant -> samples)."""
    rng = np.random.default_rng(1)
    trials, metrics = [], []
    for attn, acc in (("softmax", softmax_acc), ("linear_elu", 0.5), ("linear_cos", 0.5 + cos_recall)):
        for s in (1, 2, 3):
            vals = np.clip(acc + 0.02 * rng.standard_normal(20), 0, 1)
            trials.append({"trial_id": f"rc-{attn}-{s}", "seed": s, "status": "ok", "config/task": "recall",
                           "config/attn": attn, "config/lr": 3e-3, "config/seed": s, "config/values": 16,
                           "test/recall_acc": float(vals.mean())})  # fmt: skip
            metrics += [(f"rc-{attn}-{s}", 500, i, aa.CHUNK_RECALL, v) for i, v in enumerate(vals)]
    kl = kl or {"linear_elu": rng.gamma(2.0, 0.5, 200), "linear_cos": rng.gamma(2.0, 0.5, 200) + 0.5}
    lm_trials = lm.trials.copy()
    lm_trials["attn/row_kl/linear_elu"] = np.nan
    soft = lm_trials[lm_trials["config/attn"] == "softmax"]
    chosen = soft.loc[soft[soft["seed"] == 0]["val/nats"].idxmin(), "config/lr"]  # seed 0 tunes the lr
    tid = soft[(soft["seed"] == 1) & (soft["config/lr"] == chosen)]["trial_id"].iloc[0]  # the first confirmation seed
    lm_trials.loc[lm_trials["trial_id"] == tid, "attn/row_kl/linear_elu"] = float(np.median(kl["linear_elu"]))
    metrics += [(tid, 101, i, aa.ROW_KL_SAMPLE + name, v) for name, vs in kl.items() for i, v in enumerate(vs)]
    columns = ["trial_id", "step", "series", "metric", "value"]
    return Tables("local", pd.concat([lm_trials, pd.DataFrame(trials)], ignore_index=True),
                  pd.concat([lm.metrics, pd.DataFrame(metrics, columns=columns)], ignore_index=True), lm.checks)  # fmt: skip


def test_l6_supported_refuted_and_the_recall_validity_gate():
    worse = l6_tables(lm_tables(0.0, noise=0.02, cos=0.2), cos_recall=-0.2)
    v = aa.check_l6(worse)
    assert v.verdict == REFUTED and v.n_seeds == 3, v.reason
    better_kl = {"linear_elu": np.linspace(1.0, 2.0, 200), "linear_cos": np.linspace(0.1, 0.5, 200)}
    better = l6_tables(lm_tables(0.0, noise=0.02, cos=-0.2), cos_recall=0.2, kl=better_kl)
    assert aa.check_l6(better).verdict == SUPPORTED, aa.check_l6(better).reason
    unlearned = aa.check_l6(l6_tables(lm_tables(0.0, noise=0.02, cos=0.2), cos_recall=-0.2, softmax_acc=0.1))
    assert unlearned.verdict == INCONCLUSIVE and "recall not learned (softmax" in unlearned.reason


def test_l6_reads_the_median_row_kl_and_refutes_on_its_point_comparison():
    # linear_cos: larger median row KL, but elu has a heavy tail, so its MEAN is larger; and the medians are close.
    rng = np.random.default_rng(2)
    elu = np.concatenate([rng.uniform(0.0, 1.0, 180), np.full(20, 50.0)])
    kl = {"linear_elu": elu, "linear_cos": np.median(elu) + 0.01 + rng.uniform(-0.05, 0.05, 200)}
    v = aa.check_l6(l6_tables(lm_tables(0.0, noise=0.02, cos=0.2), cos_recall=-0.2, kl=kl))
    (row,) = [d for d in v.detail if d["metric"] == "median_row_kl"]
    assert kl["linear_cos"].mean() < elu.mean() and row["mean"] > 0 and row["ci"][0] < 0  # no significance needed
    assert v.verdict == REFUTED, v.reason


def decode_tables(rnn_growth: float, kv_slope: float, noise: float = 0.03) -> Tables:
    """Agreeing forms, and decode latencies at positions 0..4096: RNN 1 ms x (1 + growth x position / 4096) with 3%
    noise, KV-cached softmax 1 ms + kv_slope per position."""
    rng = np.random.default_rng(3)
    pos = np.arange(0, 4097, 256)
    rnn = 1.0 * (1 + rnn_growth * pos / 4096) * (1 + noise * rng.standard_normal(len(pos)))
    kv = 1.0 + kv_slope * pos + 0.01 * rng.standard_normal(len(pos))
    metrics = [
        ("dec", p, m, v) for m, vals in (("decode/rnn_ms", rnn), ("decode/kv_ms", kv)) for p, v in zip(pos, vals, strict=True)
    ]
    checks = {
        f"l3/{f}_vs_quadratic/{dt}": [1e-16] for f in ("chunked", "cumsum", "recurrent") for dt in ("float64", "float32")
    }
    trial = {"trial_id": "dec", "seed": 0, "status": "ok", "config/task": "decode"}
    return exact_tables(checks, [trial], metrics)


@pytest.mark.parametrize("growth,kv,expected", [(0.0, 1e-3, SUPPORTED), (0.3, 1e-3, REFUTED), (0.0, 0.0, INCONCLUSIVE)])
def test_l3_decode_latency(growth, kv, expected):
    v = aa.check_l3(decode_tables(growth, kv))
    assert v.verdict == expected, v.reason
    assert v.reason.startswith("max form errors: ") and "; RNN step" in v.reason


def test_l3_a_drift_without_a_trend_is_timing_noise():
    # 50% jitter: the OLS slope comes out above the 10% drift (0.23 here) with no significant trend (p ~ 0.7), which
    # decides nothing (the smoke run's decode shares two cores with the LM trials); 3% jitter refutes (above).
    v = aa.check_l3(decode_tables(0.2, 1e-3, noise=0.5))
    assert v.verdict == INCONCLUSIVE and v.effect > aa.DRIFT.tolerance and "but no RNN trend" in v.reason, v.reason


def test_l4_without_the_linformer_leak_test_is_undecided():
    t = exact_tables({"l4/leak/softmax": [0.0], "l4/leak/linear_elu": [0.0]})
    assert aa.check_l4(t).verdict == INCONCLUSIVE
    assert aa.check_l4(exact_tables({"l4/leak/softmax": [0.0], "l4/leak/linformer": [0.0]})).verdict == REFUTED
