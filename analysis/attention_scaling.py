"""Linear attention vs softmax: claim checks and figures, computed from the study's Parquet tables alone.

Timing trials (`config/task = scaling`) report, at step n, the median and the repeats of the forward and
forward + backward times and the bytes kept for backward. Decode trials report per-token latency at step =
position. Language-model and recall trials report validation curves, and at their last step per-chunk test values
as a series (`series` = chunk; the units of the hierarchical bootstrap); the softmax LM also reports attention-row
KL samples as series (`series` = sampled row).
"""

import json
import math

import numpy as np
import pandas as pd
from scipy import stats

from analysis import style
from analysis.stats import ALPHA, bootstrap_ci, hierarchical_bootstrap
from analysis.verdict import FAIL, INCONCLUSIVE, PASS, REFUTED, SUPPORTED, Tables, Verdict, all_cells

MARGIN = math.log(1.05)  # L5: perplexity ratio 1.05 in nats per token
LEAK_TOL = 1e-12
IMPL_COLOURS = {"softmax": style.BASELINE, "sdpa": "#7f7f7f", "linear": style.FLOODED, "cumsum": style.HIGHLIGHT}
VARIANT_COLOURS = {
    "softmax": style.BASELINE,
    "linear_elu": style.FLOODED,
    "linear_cos": style.HIGHLIGHT,
    "taylor2": "#2ca02c",
    "softmax_per_token": "#9467bd",
}
CHUNK_NATS, CHUNK_ORACLE, CHUNK_RECALL = "test/chunk_nats", "test/chunk_oracle", "test/chunk_recall"
"""Series of one value per test chunk (LM nats, the oracle's nats, recall accuracy per batch of 64)."""
ROW_KL_SAMPLE = "attn/row_kl_sample/"
"""Prefix of the softmax LM's row-KL series, one per variant (`attn/row_kl_sample/linear_elu`)."""


def _ok(t: Tables, task: str) -> pd.DataFrame:
    tr = t.trials
    if tr.empty or "config/task" not in tr:
        return pd.DataFrame()
    return tr[(tr["status"] == "ok") & (tr["config/task"] == task)]


def timings(t: Tables) -> pd.DataFrame:
    """One row per (impl, d, causal, n): median times, repeats (lists), saved bytes; skipped points dropped."""
    runs = _ok(t, "scaling")
    if runs.empty:
        return pd.DataFrame()
    m = t.metrics[t.metrics["trial_id"].isin(runs["trial_id"])]
    wide = m.pivot_table(index=["trial_id", "step"], columns="metric", values="value", aggfunc="last").reset_index()
    wide = wide.merge(runs[["trial_id", "config/impl", "config/d_head", "config/causal"]], on="trial_id")
    wide = wide.rename(columns={"config/impl": "impl", "config/d_head": "d", "config/causal": "causal", "step": "n"})
    if "time/skipped" in wide:
        wide = wide[wide["time/skipped"].isna()]
    for p in ("fwd", "fwdbwd"):
        cols = sorted(c for c in wide if c.startswith(f"time/{p}_ms_r"))
        wide[f"{p}_reps"] = wide[cols].apply(lambda r: r.dropna().to_numpy(), axis=1) if cols else None
    return wide.sort_values(["impl", "d", "causal", "n"]).reset_index(drop=True)


def slope_with_ci(n: np.ndarray, reps: list[np.ndarray], seed: int = 0) -> tuple[float, float, float]:
    """OLS slope of log(median time) on log n, with a 95% percentile bootstrap CI resampling repeats within each n."""
    logn = np.log(np.asarray(n, float))
    slope = float(stats.linregress(logn, np.log([np.median(r) for r in reps])).slope)
    if any(len(r) < 2 for r in reps):
        return slope, slope, slope

    def stat(*samples, axis=-1):
        return stats.linregress(logn, np.log([np.median(s, axis=axis) for s in samples])).slope

    res = stats.bootstrap(tuple(reps), stat, n_resamples=2000, method="percentile", vectorized=False,
                          rng=np.random.default_rng(seed))  # fmt: skip
    return slope, float(res.confidence_interval.low), float(res.confidence_interval.high)


def stays_below(n: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """First n from which a < b holds at every larger n (nan if it does not hold at the largest n)."""
    ok = a < b
    if not ok[-1]:
        return math.nan
    i = len(ok) - 1
    while i > 0 and ok[i - 1]:
        i -= 1
    return float(n[i])


def l1_cells(t: Tables) -> list[dict]:
    """Per head dim d: slopes (non-causal forward), n* vs softmax and SDPA, the cumsum memory crossover."""
    w = timings(t)
    if w.empty:
        return []
    rows = []
    for d, g in w.groupby("d"):
        fwd = g[~g["causal"].astype(bool)]
        lin, soft, sd = (fwd[fwd["impl"] == i].set_index("n") for i in ("linear", "softmax", "sdpa"))
        common = sorted(set(lin.index) & set(soft.index))
        if len(common) < 3:
            continue
        top = [n for n in common if n >= (4096 if t.budget == "full" else 2048)] if t.budget != "smoke" else common[-3:]
        if len(top) < 2:
            top = common[-3:]
        s_lin = slope_with_ci(top, list(lin.loc[top, "fwd_reps"]))
        s_soft = slope_with_ci(top, list(soft.loc[top, "fwd_reps"]))
        n_arr = np.array(common)
        n_star = stays_below(n_arr, lin.loc[common, "time/fwd_ms"].to_numpy(), soft.loc[common, "time/fwd_ms"].to_numpy())
        common_sd = sorted(set(lin.index) & set(sd.index))
        n_star_sdpa = stays_below(
            np.array(common_sd), lin.loc[common_sd, "time/fwd_ms"].to_numpy(), sd.loc[common_sd, "time/fwd_ms"].to_numpy()
        )
        cau = g[g["causal"].astype(bool) & g["mem/saved_bytes"].notna()] if "mem/saved_bytes" in g else g.iloc[:0]
        cs, sm, ch = (cau[cau["impl"] == i].set_index("n") for i in ("cumsum", "softmax", "linear"))
        mem_n = sorted(set(cs.index) & set(sm.index))
        cross = (
            stays_below(
                np.array(mem_n), cs.loc[mem_n, "mem/saved_bytes"].to_numpy(), sm.loc[mem_n, "mem/saved_bytes"].to_numpy()
            )
            if mem_n
            else math.nan
        )
        top_bwd = [n for n in ch.index if n >= (4096 if t.budget == "full" else 2048)]
        mem_slope = (
            float(stats.linregress(np.log(top_bwd), np.log(ch.loc[top_bwd, "mem/saved_bytes"])).slope)
            if len(top_bwd) >= 2
            else math.nan
        )
        rows.append(
            {
                "d": int(d),
                "top_n": f"{top[0]}-{top[-1]}",
                "slope_linear": s_lin[0],
                "slope_linear_ci": [s_lin[1], s_lin[2]],
                "slope_softmax": s_soft[0],
                "slope_softmax_ci": [s_soft[1], s_soft[2]],
                "n_star": n_star,
                "n_star_over_d": n_star / d,
                "n_star_sdpa": n_star_sdpa,
                "mem_crossover": cross,
                "mem_crossover_over_d2": cross / d**2,
                "chunked_mem_slope": mem_slope,
            }
        )
    return rows


def check_l1(t: Tables) -> Verdict:
    """L1: slopes, n* <= 8 d and the cumsum memory crossover in [0.5, 2] d^2, per d."""
    cells = l1_cells(t)
    if not cells:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: timing trials missing")
    verdicts = []
    for c in cells:
        if c["slope_linear"] >= 1.5 or math.isnan(c["n_star"]):
            verdicts.append(REFUTED)
            continue
        if t.budget == "smoke":
            slopes_ok = c["slope_softmax"] - c["slope_linear"] >= 0.4
        else:
            slopes_ok = c["slope_linear"] <= 1.15 and c["slope_softmax"] >= 1.8
        ok = slopes_ok and c["n_star_over_d"] <= 8 and 0.5 <= c["mem_crossover_over_d2"] <= 2
        verdicts.append(SUPPORTED if ok else INCONCLUSIVE)
    text = "; ".join(
        f"d={c['d']}: slopes linear {c['slope_linear']:.2f} [{c['slope_linear_ci'][0]:.2f}, {c['slope_linear_ci'][1]:.2f}] "
        f"vs softmax {c['slope_softmax']:.2f} (n {c['top_n']}), n* = {c['n_star']:g} ({c['n_star_over_d']:.1f} d), "
        f"memory crossover {c['mem_crossover']:g} ({c['mem_crossover_over_d2']:.2f} d^2), n* vs SDPA {c['n_star_sdpa']:g}"
        for c in cells
    )
    worst = max(cells, key=lambda c: c["slope_linear"])
    return Verdict(
        all_cells(verdicts),
        text,
        effect=worst["slope_linear"],
        ci_low=worst["slope_linear_ci"][0],
        ci_high=worst["slope_linear_ci"][1],
        threshold=1.15 if t.budget != "smoke" else 0.4,
        n_seeds=len(cells),
        detail=cells,
    )


def check_l2(t: Tables) -> Verdict:
    """L2: non-negative unit rows (float64) and associative form = A V (float64 1e-10, float32 1e-5)."""
    rs = t.check("l2/rowsum_err/float64")
    if not rs:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: exact checks missing")
    neg, a64, a32 = t.check("l2/negative/float64")[0], t.check("l2/assoc_err/float64")[0], t.check("l2/assoc_err/float32")[0]
    ok = rs[0] <= 1e-10 and neg == 0 and a64 <= 1e-10 and a32 <= 1e-5
    return Verdict(
        SUPPORTED if ok else REFUTED,
        f"max |row sum - 1| {rs[0]:.1e}, most negative entry {-neg:.1e}, "
        f"|assoc - A V| {a64:.1e} (float64), {a32:.1e} (float32)",
        effect=max(rs[0], a64),
        threshold=1e-10,
    )


def _form_errors(t: Tables) -> dict[str, float]:
    return {m: t.check(m)[0] for m in t.checks["metric"].unique() if m.startswith("l3/")} if len(t.checks) else {}


def check_l3(t: Tables) -> Verdict:
    """L3: the causal forms agree (outputs and gradients); RNN decode latency is flat while KV-cached softmax grows."""
    errs = _form_errors(t)
    if not errs:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: exact checks missing")
    agree = all(v <= (1e-10 if m.endswith("float64") else 1e-5) for m, v in errs.items())
    text = "max form errors: " + ", ".join(f"{m.removeprefix('l3/')} {v:.1e}" for m, v in sorted(errs.items()))
    if not agree:
        return Verdict(REFUTED, text, effect=max(errs.values()), threshold=1e-10)
    runs = _ok(t, "decode")
    if runs.empty:
        return Verdict(INCONCLUSIVE, text + "; decode trial missing")
    c = t.curves("decode/rnn_ms")
    kv = t.curves("decode/kv_ms")
    fit_rnn = stats.linregress(c["step"], c["value"], alternative="greater")
    fit_kv = stats.linregress(kv["step"], kv["value"], alternative="greater")
    drift = abs(fit_rnn.slope) * c["step"].max() / c["value"].median()
    flat = drift <= 0.1
    grows = fit_kv.slope > 0 and fit_kv.pvalue < 0.01
    text += (
        f"; RNN step {c['value'].median() * 1e3:.0f} us, drift over {c['step'].max():.0f} positions {drift:.1%} of it "
        f"(growth p = {fit_rnn.pvalue:.1e}); KV-cached softmax slope {fit_kv.slope * 1e6:.2f} ns/position "
        f"(p = {fit_kv.pvalue:.1e})"
    )
    # Timing noise alone must not refute: the RNN must grow by > 10% and significantly so.
    verdict = SUPPORTED if flat and grows else (REFUTED if not flat and fit_rnn.pvalue < 0.01 else INCONCLUSIVE)
    return Verdict(verdict, text, effect=drift, threshold=0.1, p_value=float(fit_kv.pvalue))


def check_l4(t: Tables) -> Verdict:
    """L4: every causal variant passes the leak test and the Linformer layer fails it."""
    names = sorted(m for m in t.checks["metric"].unique() if m.startswith("l4/leak/")) if len(t.checks) else []
    if not names:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: exact checks missing")
    leaks = {m.removeprefix("l4/leak/"): t.check(m)[0] for m in names}
    safe = all(v <= LEAK_TOL for k, v in leaks.items() if k != "linformer")
    ok = safe and leaks.get("linformer", 0.0) > LEAK_TOL
    text = ", ".join(f"{k} {v:.1e}" for k, v in leaks.items())
    return Verdict(SUPPORTED if ok else REFUTED, f"max future gradient: {text}", effect=leaks.get("linformer", math.nan),
                   threshold=LEAK_TOL)  # fmt: skip


def check_lc1(t: Tables) -> Verdict:
    """L-C1: Efficient Attention in a causal model must leak the future (FAIL)."""
    v = t.check("lc1/leak/efficient")
    if not v:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: exact checks missing")
    return Verdict(FAIL if v[0] > LEAK_TOL else PASS, f"max future gradient {v[0]:.2e}", effect=v[0], threshold=LEAK_TOL)


def check_lc2(t: Tables) -> Verdict:
    """L-C2: elu + 1 without zeroing padded keys must leak them (FAIL); with zeroing it does not."""
    off, on = t.check("lc2/padding_leak/unzeroed"), t.check("lc2/padding_leak/zeroed")
    if not off:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: exact checks missing")
    return Verdict(FAIL if off[0] > LEAK_TOL else PASS, f"padded-key gradient {off[0]:.2e} unzeroed, {on[0]:.1e} zeroed",
                   effect=off[0], threshold=LEAK_TOL)  # fmt: skip


# Quality (L5, L6).


def chosen_runs(t: Tables, task: str = "lm") -> pd.DataFrame:
    """Confirmation runs at each variant's chosen lr: the lr with the lower seed-0 validation nats (where several lrs
    ran, seed 0 tunes and the other seeds confirm); with one lr, every seed confirms."""
    runs = _ok(t, task)
    if runs.empty:
        return runs
    runs = runs.rename(columns={"config/attn": "attn", "config/lr": "lr"})
    keep = []
    for _, g in runs.groupby("attn"):
        if g["lr"].nunique() > 1:
            tune_rows = g[g["seed"] == 0]
            best = tune_rows.loc[tune_rows["val/nats"].idxmin(), "lr"] if len(tune_rows) else g["lr"].iloc[0]
            keep.append(g[(g["lr"] == best) & (g["seed"] != 0)])
        else:
            keep.append(g)
    return pd.concat(keep)


def _chunks(t: Tables, runs: pd.DataFrame, metric: str) -> dict[tuple[str, int], np.ndarray]:
    return {
        (attn, int(seed)): t.series(metric, tid) for (attn, seed), tid in runs.set_index(["attn", "seed"])["trial_id"].items()
    }


def paired_chunks(t: Tables, task: str, metric: str, a: str, b: str) -> list[np.ndarray]:
    """Per confirmation seed, the per-chunk differences a - b (same test chunks, same seed)."""
    runs = chosen_runs(t, task)
    if runs.empty:
        return []
    ch = _chunks(t, runs, metric)
    seeds = sorted({s for (v, s) in ch if v == a} & {s for (v, s) in ch if v == b})
    return [ch[(a, s)] - ch[(b, s)] for s in seeds if len(ch[(a, s)]) == len(ch[(b, s)]) > 0]


def check_l5(t: Tables) -> Verdict:
    """L5: TOST non-inferiority of linear_elu vs softmax, margin ln 1.05 nats per token, hierarchical bootstrap."""
    diffs = paired_chunks(t, "lm", CHUNK_NATS, "linear_elu", "softmax")
    if not diffs:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no paired linear_elu / softmax LM runs")
    mean, low, high = hierarchical_bootstrap(diffs, level=0.90)
    verdict = SUPPORTED if high < MARGIN else (REFUTED if low > MARGIN else INCONCLUSIVE)
    if t.budget == "smoke":
        verdict = INCONCLUSIVE  # smoke trains for 80 steps: a sanity check, never a verdict
    lr = chosen_runs(t).groupby("attn")["lr"].first().to_dict()
    return Verdict(
        verdict,
        f"linear_elu - softmax {mean:+.4f} nats/token, one-sided 95% bounds [{low:+.4f}, {high:+.4f}] vs margin "
        f"{MARGIN:.4f}; {len(diffs)} seeds x {len(diffs[0])} test chunks; chosen lr {lr}"
        + ("; smoke: sanity only" if t.budget == "smoke" else ""),
        effect=mean,
        ci_low=low,
        ci_high=high,
        threshold=MARGIN,
        n_seeds=len(diffs),
    )


def row_kl_samples(t: Tables) -> pd.DataFrame:
    """Row KL samples of the softmax LM at the tuning seed (or the first seed), long: `variant, row, kl`."""
    runs = _ok(t, "lm")
    if runs.empty:
        return pd.DataFrame()
    soft = runs[runs["config/attn"] == "softmax"].sort_values("config/seed")
    if "attn/row_kl/linear_elu" not in soft or soft["attn/row_kl/linear_elu"].isna().all():
        return pd.DataFrame()
    seed0 = soft[soft["config/seed"] == soft["config/seed"].min()]
    tid = seed0.loc[seed0["val/nats"].idxmin(), "trial_id"]
    m = t.metrics[(t.metrics["trial_id"] == tid) & t.metrics["metric"].str.startswith(ROW_KL_SAMPLE)]
    return pd.DataFrame({"variant": m["metric"].str.removeprefix(ROW_KL_SAMPLE), "row": m["series"], "kl": m["value"]})


def check_l6(t: Tables) -> Verdict:
    """L6: linear_cos vs linear_elu on recall accuracy, bits per char and attention-row KL to softmax."""
    rec = paired_chunks(t, "recall", CHUNK_RECALL, "linear_cos", "linear_elu")
    lm = paired_chunks(t, "lm", CHUNK_NATS, "linear_cos", "linear_elu")
    kl = row_kl_samples(t)
    if not rec or not lm or kl.empty:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: recall, LM or row-KL results missing")
    # A recall task no model learned cannot rank kernels: softmax must reach twice chance (1 / values).
    recall_runs = chosen_runs(t, "recall")
    if "config/values" in recall_runs and recall_runs["config/values"].notna().any():
        values = float(recall_runs["config/values"].dropna().iloc[0])
    elif "config/recall" in recall_runs:  # results from before the recall task had a sub-grid of its own
        values = float(json.loads(recall_runs["config/recall"].dropna().iloc[0])["values"])
    else:
        values = math.inf
    chance = 1 / values
    soft_acc = float(recall_runs[recall_runs["attn"] == "softmax"]["test/recall_acc"].mean())
    r_mean, r_lo, r_hi = hierarchical_bootstrap(rec)
    l_mean, l_lo, l_hi = (x / math.log(2) for x in hierarchical_bootstrap(lm))
    wide = kl.pivot(index="row", columns="variant", values="kl")
    dkl = (wide["linear_cos"] - wide["linear_elu"]).to_numpy()
    k_lo, k_hi = bootstrap_ci(dkl, statistic=np.mean)
    better = r_lo > 0 and l_hi < 0 and k_hi < 0
    worse = r_hi < 0 and l_lo > 0 and k_lo > 0
    verdict = SUPPORTED if better else (REFUTED if worse else INCONCLUSIVE)
    unlearned = soft_acc < 2 * chance
    if t.budget == "smoke" or unlearned:
        verdict = INCONCLUSIVE  # smoke: a sanity check; an unlearned recall task: no ranking
    medians = wide.median()
    return Verdict(
        verdict,
        f"cos - elu: recall {r_mean:+.3f} [{r_lo:+.3f}, {r_hi:+.3f}], bits/char {l_mean:+.4f} [{l_lo:+.4f}, {l_hi:+.4f}], "
        f"row KL {dkl.mean():+.3f} [{k_lo:+.3f}, {k_hi:+.3f}] (median KL cos {medians['linear_cos']:.3f}, "
        f"elu {medians['linear_elu']:.3f})"
        + (f"; recall not learned (softmax {soft_acc:.3f} < 2 x chance {chance:.3f})" if unlearned else "")
        + ("; smoke: sanity only" if t.budget == "smoke" else ""),
        effect=r_mean,
        ci_low=r_lo,
        ci_high=r_hi,
        threshold=ALPHA,
        n_seeds=len(rec),
        detail=[
            {"metric": "recall", "mean": r_mean, "ci": [r_lo, r_hi]},
            {"metric": "bpc", "mean": l_mean, "ci": [l_lo, l_hi]},
            {"metric": "row_kl", "mean": float(dkl.mean()), "ci": [k_lo, k_hi]},
        ],  # fmt: skip
    )


# Figures.
