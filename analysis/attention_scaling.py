"""Linear attention vs softmax: the measurements behind the claims, from the study's Parquet tables alone.

Timing trials (`config/task = scaling`) report at step n the median and repeats of forward (and forward + backward)
time and the bytes kept for backward; decode trials the per-token latency at step = position. LM and recall trials
report, at their last step, per-chunk test values as a series (the units of the hierarchical bootstrap); the softmax
LM also reports attention-row KL samples as series (the same sampled rows for every kernel).
"""

import math

import numpy as np
import pandas as pd
from scipy import stats

from analysis.rules import Exact
from analysis.stats import BOOTSTRAP_RESAMPLES, hierarchical_bootstrap
from analysis.verdict import INCONCLUSIVE, REFUTED, SUPPORTED, Tables, Verdict, all_cells

F64, F32, LEAK = Exact(1e-10, "float64 error"), Exact(1e-5, "float32 error"), Exact(1e-12, "max future gradient")
DRIFT = Exact(0.1, "RNN decode drift (|OLS slope| x max position / median step)")
KV_P = 0.01  # L3: the KV-cached softmax latency must grow at this p
L1 = {"gap": 0.4, "linear_max": 1.15, "softmax_min": 1.8, "refute": 1.5, "n_star_d": 8, "mem_d2": (0.5, 2.0)}
TOP_N = {"local": 2048, "full": 4096}  # L1 slopes over n >= this; smoke: over the three largest n
MARGIN = math.log(1.05)  # L5: perplexity ratio 1.05, in nats per token
MIN_SEEDS = 3  # L5, L6: paired seeds per comparison (spec README, "Minimum seeds")
CHUNK_NATS, CHUNK_ORACLE, CHUNK_RECALL = "test/chunk_nats", "test/chunk_oracle", "test/chunk_recall"
"""Series of one value per test chunk (LM nats, the oracle's nats, recall accuracy per batch of 64)."""
ROW_KL_SAMPLE = "attn/row_kl_sample/"
"""Prefix of the softmax LM's row-KL series, one per variant (`attn/row_kl_sample/linear_elu`)."""


def task_runs(t: Tables, task: str, ok: bool = True) -> pd.DataFrame:
    """The task's trials: those that finished ok, or (`ok=False`) all of them."""
    tr = t.trials[t.trials["config/task"] == task] if "config/task" in t.trials else pd.DataFrame(columns=["status"])
    return tr[tr["status"] == "ok"] if ok else tr


def timings(t: Tables) -> pd.DataFrame:
    """One row per (impl, d, causal, n): median times, forward repeats (`fwd_reps`), saved bytes; skipped points dropped."""
    runs = task_runs(t, "scaling")
    if runs.empty:
        return pd.DataFrame()
    m = t.metrics[t.metrics["trial_id"].isin(runs["trial_id"])]
    wide = m.pivot_table(index=["trial_id", "step"], columns="metric", values="value", aggfunc="last").reset_index()
    wide = wide.merge(runs[["trial_id", "config/impl", "config/d_head", "config/causal"]], on="trial_id")
    wide = wide.rename(columns={"config/impl": "impl", "config/d_head": "d", "config/causal": "causal", "step": "n"})
    wide = wide[wide["time/skipped"].isna()] if "time/skipped" in wide else wide
    reps = sorted(c for c in wide if c.startswith("time/fwd_ms_r"))
    wide["fwd_reps"] = wide[reps].apply(lambda r: r.dropna().to_numpy(), axis=1) if reps else None
    return wide.sort_values(["impl", "d", "causal", "n"]).reset_index(drop=True)


def _bootstrap(reps: list[np.ndarray], statistic, point: float, seed: int) -> tuple[float, float, float]:
    """`point` with the 95% percentile bootstrap interval of `statistic`, resampling the repeats of each cell (a nan
    interval where a cell has a single repeat)."""
    if any(len(r) < 2 for r in reps):
        return point, math.nan, math.nan
    with np.errstate(invalid="ignore"):  # scipy's standard error of a distribution that holds inf is nan; unused here
        res = stats.bootstrap(
            tuple(reps), statistic, n_resamples=BOOTSTRAP_RESAMPLES, method="percentile", rng=np.random.default_rng(seed)
        )
    return point, float(res.confidence_interval.low), float(res.confidence_interval.high)


def slope_with_ci(n: list[int], reps: list[np.ndarray], seed: int = 0) -> tuple[float, float, float]:
    """OLS slope of log(median time) on log n, with its bootstrap interval over the repeats within each n."""
    x = np.log(n) - np.mean(np.log(n))

    def slope(*samples, axis=-1):
        return (np.log(np.stack([np.median(s, axis=axis) for s in samples], axis=-1)) * x).sum(-1) / (x * x).sum()

    return _bootstrap(reps, slope, float(slope(*reps)), seed)


def stays_below(n: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """First n from which a < b holds at every larger n (nan if it does not hold at the largest n)."""
    not_below = np.flatnonzero(~(np.asarray(a) < np.asarray(b)))
    first = not_below[-1] + 1 if len(not_below) else 0
    return float(n[first]) if first < len(n) else math.nan


def crossover(table: pd.DataFrame, a: str, b: str) -> float:
    """`stays_below` of column a against column b of an n-indexed table, over the n where both ran."""
    both = table[[a, b]].dropna() if {a, b} <= set(table) else pd.DataFrame(columns=[a, b])
    return stays_below(both.index.to_numpy(), both[a].to_numpy(), both[b].to_numpy())


def n_star_with_ci(
    n: list[int], a_reps: list[np.ndarray], b_reps: list[np.ndarray], seed: int = 0
) -> tuple[float, float, float]:
    """n* of `a` against `b` (`stays_below` on the median times) with its bootstrap interval over the repeats of each
    (impl, n) cell (spec 01, amendment A1); a resample without a crossover up to the largest n counts as n* = inf, so an
    upper end of inf says the crossover may not appear at all."""
    grid, k = np.asarray(n, float), len(n)

    def n_star(*samples, axis=-1):
        med = [np.median(s, axis=axis) for s in samples]
        not_below = ~(np.stack(med[:k], axis=-1) < np.stack(med[k:], axis=-1))  # (..., k)
        first = np.where(not_below.any(-1), k - np.argmax(not_below[..., ::-1], axis=-1), 0)
        return np.where(first < k, grid[np.minimum(first, k - 1)], np.inf)

    point = stays_below(grid, [np.median(r) for r in a_reps], [np.median(r) for r in b_reps])
    return _bootstrap([*a_reps, *b_reps], n_star, point, seed)


def l1_cells(t: Tables) -> list[dict]:
    """Per head dim d: slopes (non-causal forward), n* vs softmax and SDPA, the causal cumsum memory crossover."""
    w, rows = timings(t), []
    for d, g in w.groupby("d") if len(w) else ():
        fwd, cau = g[~g["causal"].astype(bool)], g[g["causal"].astype(bool)]
        times = fwd.pivot(index="n", columns="impl", values="time/fwd_ms")
        mem = cau.pivot(index="n", columns="impl", values="mem/saved_bytes") if "mem/saved_bytes" in g else times.iloc[:0]
        common = list(times[["linear", "softmax"]].dropna().index) if {"linear", "softmax"} <= set(times) else []
        if len(common) < 3:
            continue
        top = [n for n in common if n >= TOP_N.get(t.budget, math.inf)]
        top = top if len(top) >= 2 else common[-3:]
        reps = fwd.set_index(["impl", "n"])["fwd_reps"]
        (s_lin, *ci_lin), (s_soft, *ci_soft) = (slope_with_ci(top, [reps[(i, n)] for n in top]) for i in ("linear", "softmax"))
        n_star, *ci_star = n_star_with_ci(common, *([reps[(i, n)] for n in common] for i in ("linear", "softmax")))
        mem_cross = crossover(mem, "cumsum", "softmax")
        rows.append({"d": int(d), "top_n": f"{top[0]}-{top[-1]}", "slope_linear": s_lin, "slope_linear_ci": ci_lin,
                     "slope_softmax": s_soft, "slope_softmax_ci": ci_soft, "n_star": n_star, "n_star_ci": ci_star,
                     "n_star_over_d": n_star / d,
                     "n_star_sdpa": crossover(times, "linear", "sdpa"), "mem_crossover": mem_cross,
                     "mem_crossover_over_d2": mem_cross / d**2})  # fmt: skip
    return rows


def check_l1(t: Tables) -> Verdict:
    """L1 (composite, per d): slopes, n* <= 8 d and the cumsum memory crossover in [0.5, 2] d^2."""
    cells = l1_cells(t)
    if not cells:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: timing trials missing")
    text = "; ".join(
        f"d={c['d']}: slopes linear {c['slope_linear']:.2f} [{c['slope_linear_ci'][0]:.2f}, {c['slope_linear_ci'][1]:.2f}] "
        f"vs softmax {c['slope_softmax']:.2f} (n {c['top_n']}), n* = {c['n_star']:g} ({c['n_star_over_d']:.1f} d; 95% "
        f"bootstrap interval over repeats [{c['n_star_ci'][0]:g}, {c['n_star_ci'][1]:g}]), "
        f"memory crossover {c['mem_crossover']:g} ({c['mem_crossover_over_d2']:.2f} d^2), n* vs SDPA {c['n_star_sdpa']:g}"
        for c in cells
    )
    verdicts = []
    for c in cells:  # per d, the spec's conditions: (a) the slopes at this budget, (b) n* and (c) the memory crossover
        lin, soft, low, high = c["slope_linear"], c["slope_softmax"], *L1["mem_d2"]
        a = soft - lin >= L1["gap"] if t.budget == "smoke" else lin <= L1["linear_max"] and soft >= L1["softmax_min"]
        # (b), amendment A1: holds if the interval's upper end is <= 8d, fails if its lower end is > 8d, else unsure
        b = c["n_star_ci"][1] <= L1["n_star_d"] * c["d"]
        ok = a and b and low <= c["mem_crossover_over_d2"] <= high
        verdicts.append(REFUTED if lin >= L1["refute"] or math.isnan(c["n_star"]) else SUPPORTED if ok else INCONCLUSIVE)
    worst = max(cells, key=lambda c: c["slope_linear"])
    return Verdict(all_cells(verdicts), text, effect=worst["slope_linear"],
                   ci_low=worst["slope_linear_ci"][0], ci_high=worst["slope_linear_ci"][1], n_seeds=len(cells),
                   threshold=L1["gap" if t.budget == "smoke" else "linear_max"], detail=cells)  # fmt: skip


def exact_values(t: Tables, prefix: str, dtype: str = "") -> dict[str, list[float]]:
    """Exact-check values of the metrics `<prefix><name>` (ending in `dtype`), by name."""
    names = [m for m in (t.checks["metric"].unique() if len(t.checks) else []) if m.startswith(prefix) and m.endswith(dtype)]
    return {m.removeprefix(prefix): t.check(m) for m in names}


def joined(parts: list[Verdict], head: str = "") -> Verdict:
    """Parts that must all hold: SUPPORTED if every one does, REFUTED if any is refuted; the reasons joined."""
    deciding = next((v for v in parts if v.verdict != SUPPORTED), parts[0])
    return Verdict(all_cells([v.verdict for v in parts]), head + "; ".join(v.reason for v in parts),
                   effect=deciding.effect, threshold=deciding.threshold)  # fmt: skip


def check_l2(t: Tables) -> Verdict:
    """L2: non-negative unit rows and associative form = A V (float64); associative form = A V (float32)."""
    f64 = {k: t.check(f"l2/{k}/float64") for k in ("negative", "rowsum_err", "assoc_err")}
    return joined([F64.decide(f64), F32.decide({"assoc_err": t.check("l2/assoc_err/float32")})])


def check_l3(t: Tables) -> Verdict:
    """L3: the causal forms agree (outputs and gradients); RNN decode latency is flat while KV-cached softmax grows."""
    forms = [F64.decide(exact_values(t, "l3/", "float64")), F32.decide(exact_values(t, "l3/", "float32"))]
    if task_runs(t, "decode").empty:
        return joined([*forms, Verdict(INCONCLUSIVE, "decode trial missing")], "max form errors: ")
    c, kv = t.curves("decode/rnn_ms"), t.curves("decode/kv_ms")
    fit_kv = stats.linregress(kv["step"], kv["value"], alternative="greater")
    fit_rnn = stats.linregress(c["step"], c["value"])
    v = DRIFT.decide([abs(fit_rnn.slope) * c["step"].max() / c["value"].median()])
    text = (f"RNN step {c['value'].median() * 1e3:.0f} us, drift over {c['step'].max():.0f} positions: {v.reason} (trend "
            f"p = {fit_rnn.pvalue:.1e}); KV-cached softmax slope {fit_kv.slope * 1e6:.2f} ns/position (p = "
            f"{fit_kv.pvalue:.1e})")  # fmt: skip
    blind = v.verdict == SUPPORTED and not (fit_kv.slope > 0 and fit_kv.pvalue < KV_P)
    noise = v.verdict == REFUTED and not fit_rnn.pvalue < KV_P  # a drift that is no trend: timing noise decides nothing
    why = f", no growth at p < {KV_P:g}" if blind else f", but no RNN trend at p < {KV_P:g}" if noise else ""
    decode = Verdict(INCONCLUSIVE if blind or noise else v.verdict, text + why, effect=v.effect, threshold=v.threshold,
                     p_value=float(fit_kv.pvalue))  # fmt: skip
    return joined([*forms, decode], "max form errors: ")


def check_l4(t: Tables) -> Verdict:
    """L4: every causal variant passes the leak test and the Linformer layer fails it."""
    leaks = exact_values(t, "l4/leak/")
    if not leaks:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: exact checks missing")
    lin = LEAK.decide({"linformer": leaks.pop("linformer", [])})
    must_leak = {SUPPORTED: REFUTED, REFUTED: SUPPORTED}.get(lin.verdict, INCONCLUSIVE)
    return joined([LEAK.decide(leaks), Verdict(must_leak, f"Linformer must leak: {lin.reason}", lin.effect)])


# Quality (L5, L6).


def chosen_runs(t: Tables, task: str = "lm", ok: bool = False) -> pd.DataFrame:
    """Every run (`ok`: those that finished ok) at each variant's chosen lr: with several lrs, seed 0 tunes (lowest
    seed-0 validation nats) and only the other seeds confirm, so the runs that chose the lr never judge it."""
    runs = task_runs(t, task, ok=False).rename(columns={"config/attn": "attn", "config/lr": "lr"})
    keep = []
    for _, g in runs.groupby("attn") if len(runs) else ():
        if g["lr"].nunique() < 2:
            keep.append(g)
            continue
        tune = g[(g["seed"] == 0) & (g["status"] == "ok")].dropna(subset=["val/nats"]) if "val/nats" in g else g.iloc[:0]
        chosen = tune.loc[tune["val/nats"].idxmin(), "lr"] if len(tune) else g["lr"].iloc[0]
        keep.append(g[(g["lr"] == chosen) & (g["seed"] != 0)])
    runs = pd.concat(keep) if keep else pd.DataFrame()
    return runs[runs["status"] == "ok"] if ok and len(runs) else runs


def paired(t: Tables, task: str, metric: str, a: str, b: str) -> tuple[list[np.ndarray], list[str]]:
    """Per seed that ran ok in both arms (at their chosen lrs), the per-chunk differences a - b; and every run of the
    two arms left out, named with why."""
    runs = chosen_runs(t, task)
    runs = runs[runs["attn"].isin([a, b])].set_index(["attn", "seed"]) if len(runs) else runs
    diffs, gone = [], []
    for s in sorted({int(s) for _, s in runs.index}):
        why = [f"{v} seed {s}: {runs['status'].get((v, s), 'missing')}" for v in (a, b) if runs["status"].get((v, s)) != "ok"]
        x, y = (t.series(metric, runs["trial_id"][(v, s)]) if not why else [] for v in (a, b))
        if not why and len(x) == len(y) > 0:
            diffs.append(x - y)
        else:
            gone += why or [f"seed {s}: no paired test chunks"]
    return diffs, gone


def l5_estimate(t: Tables, attn: str = "linear_elu") -> tuple[float, float, float, int, list[str]]:
    """attn - softmax in test nats per token: mean and one-sided 95% bounds (hierarchical bootstrap, test chunks nested
    in seeds), the paired seeds and the runs left out."""
    diffs, gone = paired(t, "lm", CHUNK_NATS, attn, "softmax")
    return *(hierarchical_bootstrap(diffs, level=0.90) if diffs else (math.nan,) * 3), len(diffs), gone


def check_l5(t: Tables) -> Verdict:
    """L5: TOST non-inferiority of linear_elu vs softmax, margin ln 1.05 nats per token, hierarchical bootstrap."""
    mean, low, high, n, gone = l5_estimate(t)
    if not n and not gone:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no linear_elu / softmax LM runs")
    text = (f"linear_elu - softmax {mean:+.4f} nats/token, one-sided 95% bounds [{low:+.4f}, {high:+.4f}] vs margin "
            f"{MARGIN:.4f}; {n} seeds; chosen lr {chosen_runs(t).groupby('attn')['lr'].first().to_dict()}"
            + (f"; left out: {', '.join(gone)}" if gone else ""))  # fmt: skip
    verdict = SUPPORTED if high < MARGIN else REFUTED if low > MARGIN else INCONCLUSIVE
    if n < MIN_SEEDS:
        verdict, text = INCONCLUSIVE, f"too few seeds (n = {n} < {MIN_SEEDS}): {text}"
    return Verdict(verdict, text, effect=mean, ci_low=low, ci_high=high, threshold=MARGIN, n_seeds=n)


def row_kl_samples(t: Tables) -> pd.DataFrame:
    """Row KL samples of the softmax LM's first confirmation seed at its chosen lr, long: `variant, row, kl`."""
    runs = chosen_runs(t, ok=True)
    soft = runs[runs["attn"] == "softmax"].sort_values("seed")["trial_id"] if len(runs) else []
    m = t.metrics[t.metrics["trial_id"].isin(soft[:1]) & t.metrics["metric"].str.startswith(ROW_KL_SAMPLE)]
    return pd.DataFrame({"variant": m["metric"].str.removeprefix(ROW_KL_SAMPLE), "row": m["series"], "kl": m["value"]})


def recall_validity(t: Tables) -> tuple[float, float]:
    """Softmax's mean test recall accuracy and the task's chance level 1 / values (nan where the table lacks it)."""
    rc = task_runs(t, "recall")
    values = rc["config/values"].dropna() if "config/values" in rc else []
    soft = rc[rc["config/attn"] == "softmax"]["test/recall_acc"] if len(rc) else []
    return float(np.mean(soft)) if len(soft) else math.nan, 1 / float(values.iloc[0]) if len(values) else math.nan


def check_l6(t: Tables) -> Verdict:
    """L6: linear_cos vs linear_elu on recall accuracy, bits per char and the median attention-row KL to softmax."""
    rec, rec_gone = paired(t, "recall", CHUNK_RECALL, "linear_cos", "linear_elu")
    lm, lm_gone = paired(t, "lm", CHUNK_NATS, "linear_cos", "linear_elu")
    kl = row_kl_samples(t)
    if not (rec or rec_gone) or not (lm or lm_gone) or kl.empty:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: recall, LM or row-KL results missing")
    r, b = (hierarchical_bootstrap(x) if x else (math.nan,) * 3 for x in (rec, lm))
    b = [x / math.log(2) for x in b]
    cos, elu = (kl[kl["variant"] == v].sort_values("row")["kl"].to_numpy() for v in ("linear_cos", "linear_elu"))
    k = hierarchical_bootstrap([np.column_stack([cos, elu])], statistic=lambda x: np.median(x[:, 0]) - np.median(x[:, 1]))
    soft_acc, chance = recall_validity(t)
    stop = [f"too few seeds (recall {len(rec)}, LM {len(lm)} < {MIN_SEEDS})"] if min(len(rec), len(lm)) < MIN_SEEDS else []
    if not soft_acc >= 2 * chance:  # amendment A2: a recall task softmax did not learn cannot rank kernels
        stop.append(f"recall not learned (softmax {soft_acc:.3f} < 2 x chance {chance:.3f})")
    better, worse = r[1] > 0 and b[2] < 0 and k[2] < 0, r[2] < 0 and b[1] > 0 and k[0] > 0
    text = (f"cos - elu: recall {r[0]:+.3f} [{r[1]:+.3f}, {r[2]:+.3f}], bits/char {b[0]:+.4f} [{b[1]:+.4f}, {b[2]:+.4f}], "
            f"median row KL {k[0]:+.3f} [{k[1]:+.3f}, {k[2]:+.3f}] (cos {np.median(cos):.3f}, elu {np.median(elu):.3f})"
            + (f"; left out: {', '.join(rec_gone + lm_gone)}" if rec_gone + lm_gone else ""))  # fmt: skip
    verdict = INCONCLUSIVE if stop else SUPPORTED if better else REFUTED if worse else INCONCLUSIVE
    detail = [{"metric": m, "mean": x[0], "ci": [x[1], x[2]]} for m, x in (("recall", r), ("bpc", b), ("median_row_kl", k))]
    return Verdict(verdict, "; ".join([*stop, text]), effect=r[0], ci_low=r[1], ci_high=r[2], threshold=0.0,
                   n_seeds=min(len(rec), len(lm)), detail=detail)  # fmt: skip
