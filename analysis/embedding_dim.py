"""Embedding dimension vs ln N: claim checks and figures, computed from the study's Parquet tables alone.

Word-vector runs (`config/task = w2v`) have one row per (corpus, algo, N, T, n, seed) with final metrics; the
planted-tree fits (`task = tree`) store the exact KL per n in the metrics table (step = n). The primary
quality is Q = -(held-out SGNS loss), higher is better; knees are found per (corpus, algo, N, T) condition.
"""

import math

import numpy as np
import pandas as pd
from scipy import stats

from analysis.stats import ALPHA, holm
from analysis.verdict import FAIL, INCONCLUSIVE, PASS, REFUTED, SUPPORTED, Tables, Verdict
from core.embeddings.knee import fit_models, knee, kneedle, origin_slope

SU = 8.33
EPS = 0.05
PRIMARY = "heldout/sgns_loss"
METRICS = {  # metric column -> (label, sign that makes it higher-is-better)
    "heldout/sgns_loss": ("-held-out SGNS loss", -1.0),
    "heldout/softmax_ce": ("-held-out softmax CE", -1.0),
    "heldout/pmi_rho": ("held-out PMI rho (M3)", 1.0),
    "heldout/mrr": ("held-out retrieval MRR (M3)", 1.0),
    "bench/ws353": ("WS-353 rho", 1.0),
    "bench/simlex": ("SimLex-999 rho", 1.0),
    "bench/men": ("MEN rho", 1.0),
    "bench/google": ("Google analogy acc.", 1.0),
}
ZH_CORPORA = ("pku", "zhwiki")  # the Chinese arm: PKU People's Daily (local), Chinese Wikipedia (full)
NOT_RUN = "not_run_at_budget: no word-vector runs at this budget (smoke runs the exact checks and the planted tree only)"


def _missing(t: Tables) -> str:
    """Why a claim has no data: nothing run at this budget, or curves still incomplete (a stopped or running study)."""
    return NOT_RUN if _runs(t).empty else "incomplete: fewer than two vocabulary sizes with complete curves over seeds"


def su_dim(N: float) -> int:
    return math.ceil(SU * math.log(N))


def _runs(t: Tables, corpus: str | None = None, oov: str = "drop") -> pd.DataFrame:
    """Finished word-vector runs of one corpus and OOV policy: `corpus`, or by default the main one (the non-Chinese
    corpus with the most runs; the Chinese arm's corpora are read by D-D3 only); out-of-vocabulary tokens dropped, or
    mapped to `<unk>` (the full budget's ablation, read by D-D4 only; runs without `oov` in their config dropped)."""
    tr = t.trials
    if tr.empty or "config/task" not in tr:
        return pd.DataFrame()
    ok = tr[(tr["status"] == "ok") & (tr["config/task"] == "w2v")]
    policy = ok["config/oov"].fillna("drop") if "config/oov" in ok else pd.Series("drop", index=ok.index)
    ok = ok[policy == oov]
    ok = ok.rename(columns={f"config/{k}": k for k in ("corpus", "algo", "vocab_size", "tokens", "dim")})  # `seed` too
    if corpus is None:
        main = ok["corpus"][~ok["corpus"].isin(ZH_CORPORA)]
        if main.empty:
            return ok.iloc[0:0]
        corpus = main.value_counts().idxmax()
    return ok[ok["corpus"] == corpus]


def quality(
    runs: pd.DataFrame, metric: str = PRIMARY, dim: str = "dim", sign: float | None = None
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Dimensions `[G]`, quality `[S, G]` (higher is better) and seeds of one condition's runs.

    Only the dimensions (column `dim`) run on the most seeds are kept (a stopped run, or runs of an older grid,
    leave some dimensions on fewer seeds), then only the seeds that have all of them. `sign` defaults to the
    metric's entry in `METRICS`.
    """
    if metric not in runs:
        return np.zeros(0), np.zeros((0, 0)), []
    sign = METRICS[metric][1] if sign is None else sign
    wide = runs.pivot_table(index="seed", columns=dim, values=metric, aggfunc="mean").sort_index(axis=1)
    counts = wide.notna().sum(axis=0)
    wide = wide.loc[:, counts == counts.max()]  # dims every seed has (runs of an older grid drop out)
    wide = wide.dropna(axis=0, how="any")
    return wide.columns.to_numpy(float), sign * wide.to_numpy(float), [int(s) for s in wide.index]


def conditions(t: Tables, corpus: str | None = None, oov: str = "drop") -> pd.DataFrame:
    """One row per (corpus, algo, N, T) condition with its knee on the primary metric (and Kneedle, sensitivity);
    the main corpus unless `corpus` names another, OOV dropped unless `oov = unk`."""
    runs = _runs(t, corpus, oov)
    rows = []
    if runs.empty:
        return pd.DataFrame()
    for (corpus, algo, N, T), g in runs.groupby(["corpus", "algo", "vocab_size", "tokens"]):
        n, q, seeds = quality(g)
        if len(seeds) == 0 or len(n) < 3:
            continue
        k = knee(n, q, EPS, seed=int(N))
        rows.append(
            {
                "corpus": corpus,
                "algo": algo,
                "N": int(N),
                "T": int(T),
                "seeds": len(seeds),
                "knee": k.knee,
                "ci_low": k.ci_low,
                "ci_high": k.ci_high,
                "non_monotone": k.non_monotone,
                "knee_isotonic": k.knee_isotonic,
                "knee_raw": k.knee_raw,
                "knee_eps02": knee(n, q, 0.02, resamples=1).knee,
                "knee_eps10": knee(n, q, 0.10, resamples=1).knee,
                "kneedle": kneedle(n, q.mean(0)),
                "su": SU * math.log(N),
                "boot": k.boot,
                "grid": n,
            }
        )
    return pd.DataFrame(rows)


def metric_knees(t: Tables) -> pd.DataFrame:
    """Knees of the secondary metrics (held-out softmax CE, benchmarks) on the main grid, reported beside M1."""
    runs, m = _runs(t), _main(t)
    rows = []
    if m.empty:
        return pd.DataFrame()
    for r in m.itertuples():
        g = runs[(runs["algo"] == "sgns") & (runs["vocab_size"] == r.N) & (runs["tokens"] == r.T)]
        for metric in METRICS:
            if metric == PRIMARY or metric not in g or g[metric].isna().any():
                continue
            n, q, seeds = quality(g, metric)
            if len(seeds) == 0:
                continue
            k = knee(n, q, EPS, seed=r.N)
            cov = f"coverage/{metric.split('/')[1]}"
            coverage = float(g[cov].mean()) if cov in g else math.nan
            rows.append({"N": r.N, "metric": metric, "knee": k.knee, "ci_low": k.ci_low, "ci_high": k.ci_high,
                         "non_monotone": k.non_monotone, "coverage": coverage})  # fmt: skip
    return pd.DataFrame(rows)


def _main(t: Tables) -> pd.DataFrame:
    """The main-grid conditions: SGNS at the token count shared by the most vocabulary sizes."""
    c = conditions(t)
    if c.empty:
        return c
    sg = c[c["algo"] == "sgns"]
    T = sg.groupby("T")["N"].nunique().idxmax()
    return sg[sg["T"] == T].sort_values("N").reset_index(drop=True)


def _ci(x: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(x, [0.025, 0.975])
    return float(lo), float(hi)


def _previous(grid: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The grid point below each knee (0 below the smallest): the true knee lies in (previous, knee]."""
    idx = np.searchsorted(grid, k)
    return np.where(idx > 0, grid[np.maximum(idx - 1, 0)], 0.0)


def ratio_interval(lo_row, hi_row) -> tuple[float, float]:
    """95% interval of r = knee(N_max) / knee(N_min) over the seed bootstrap, with the grid's resolution.

    A knee on the grid says only that the curve reaches the plateau somewhere in (previous grid point, knee]; the
    interval therefore runs from the 2.5% quantile of prev(k_max) / k_min to the 97.5% quantile of
    k_max / prev(k_min) (infinite when the smaller knee is the smallest grid point).
    """
    lo_b, hi_b = lo_row["boot"], hi_row["boot"]
    low = _previous(hi_row["grid"], hi_b) / lo_b
    with np.errstate(divide="ignore"):
        high = hi_b / _previous(lo_row["grid"], lo_b)
    # No interpolation: `high` may hold inf.
    return float(np.quantile(low, 0.025, method="inverted_cdf")), float(np.quantile(high, 0.975, method="inverted_cdf"))


def _knee_text(m: pd.DataFrame) -> str:
    return "; ".join(
        f"N={r.N}: knee {r.knee:g} [{r.ci_low:g}, {r.ci_high:g}]{' (non-monotone)' if r.non_monotone else ''}, "
        f"8.33 ln N = {r.su:.1f}"
        for r in m.itertuples()
    )


def ratio_rule(m: pd.DataFrame, x: str = "N") -> tuple[str, str, float, tuple[float, float], float, dict]:
    """The D1 rule on knees per size (`N`, or `L` for D4): r = knee(max) / knee(min) against the ln-ratio, 1 and the
    power law's (max / min)^0.2; returns verdict, text, r, its interval, the ln-ratio and the AIC fits."""
    lo_r, hi_r = m.iloc[0], m.iloc[-1]
    ratio = hi_r["knee"] / lo_r["knee"]
    ci = ratio_interval(lo_r, hi_r)
    pred = math.log(hi_r["N"]) / math.log(lo_r["N"])
    power = (hi_r["N"] / lo_r["N"]) ** 0.2
    inside = ci[0] <= pred <= ci[1]
    excl = not (ci[0] <= 1.0 <= ci[1]) and not (ci[0] <= power <= ci[1])
    verdict = SUPPORTED if inside and excl else (REFUTED if not inside else INCONCLUSIVE)
    fits = fit_models(m["N"].to_numpy(), m["knee"].to_numpy())
    aic = ", ".join(f"{k} AIC {v['aic']:.1f}" for k, v in fits.items())
    text = (
        f"r = {ratio:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] vs ln-ratio {pred:.3f}, constant 1, power {power:.3f}; {aic} "
        f"(log fit {fits['log']['a']:.2f} ln {x} + {fits['log']['b']:.1f})"
    )
    return verdict, text, ratio, ci, pred, fits


def magnitude_rule(m: pd.DataFrame, x: str = "N") -> tuple[str, str, list[dict], float, tuple[float, float]]:
    """The D2 rule: every size's bootstrap CI of knee / (8.33 ln size) within [0.5, 2] (REFUTED if one lies wholly
    outside); returns verdict, text, per-size rows, and the through-origin slope with its CI (no verdict)."""
    rows, verdicts = [], []
    for r in m.itertuples():
        ratio_ci = _ci(r.boot / r.su)
        rows.append({x: r.N, "knee": r.knee, "ratio": r.knee / r.su, "ci_low": ratio_ci[0], "ci_high": ratio_ci[1]})
        if ratio_ci[0] >= 0.5 and ratio_ci[1] <= 2:
            verdicts.append(SUPPORTED)
        elif ratio_ci[1] < 0.5 or ratio_ci[0] > 2:
            verdicts.append(REFUTED)
        else:
            verdicts.append(INCONCLUSIVE)
    verdict = REFUTED if REFUTED in verdicts else (SUPPORTED if all(v == SUPPORTED for v in verdicts) else INCONCLUSIVE)
    sizes = m["N"].to_numpy()
    slope = origin_slope(sizes, m["knee"].to_numpy())
    boots = np.stack(m["boot"].to_list())  # [sizes, resamples]
    slope_ci = _ci(np.array([origin_slope(sizes, boots[:, i]) for i in range(boots.shape[1])]))
    text = (
        "; ".join(f"{x}={r[x]}: n_eps / 8.33 ln {x} = {r['ratio']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]" for r in rows)
        + f"; slope a in n_eps = a ln {x}: {slope:.2f} [{slope_ci[0]:.2f}, {slope_ci[1]:.2f}] (8.33 "
        + ("inside" if slope_ci[0] <= SU <= slope_ci[1] else "outside")
        + ")"
    )
    return verdict, text, rows, slope, slope_ci


def check_d1(t: Tables) -> Verdict:
    """D1: ratio of the knees at the largest and smallest N against ln N_max / ln N_min, 1 and (N_max / N_min)^0.2."""
    m = _main(t)
    if len(m) < 2:
        return Verdict(INCONCLUSIVE, _missing(t))
    verdict, text, ratio, ci, pred, fits = ratio_rule(m)
    detail = [{k: v for k, v in r.items() if k not in ("boot", "grid")} for r in m.to_dict("records")]
    return Verdict(verdict, f"{text}; {_knee_text(m)}", effect=ratio, ci_low=ci[0], ci_high=ci[1], threshold=pred,
                   n_seeds=int(m["seeds"].min()), detail=detail + [{"model": k, **v} for k, v in fits.items()])  # fmt: skip


def check_d2(t: Tables) -> Verdict:
    """D2: every N's CI of knee / (8.33 ln N) within [0.5, 2]; the through-origin slope's CI is reported."""
    m = _main(t)
    if m.empty:
        return Verdict(INCONCLUSIVE, _missing(t))
    verdict, text, rows, slope, slope_ci = magnitude_rule(m)
    others = metric_knees(t)
    if len(others):
        text += "; other metrics' knees (reported, no verdict): " + ", ".join(
            f"{r.metric.split('/')[1]} N={r.N}: {r.knee:g}" + (f" (cov {r.coverage:.2f})" if math.isfinite(r.coverage) else "")
            for r in others.itertuples()
        )
    worst = max(rows, key=lambda r: abs(math.log(r["ratio"])) if r["ratio"] > 0 else math.inf)
    rows += others.to_dict("records")
    return Verdict(verdict, text, effect=slope, ci_low=slope_ci[0], ci_high=slope_ci[1], threshold=SU,
                   n_seeds=int(m["seeds"].min()), detail=rows + [{"worst_N": worst["N"]}])  # fmt: skip


def _boot_p_greater(d: np.ndarray, seed: int = 0, resamples: int = 10_000) -> float:
    """One-sided paired bootstrap p of mean(d) > 0: share of resampled means <= 0, (count + 1) / (B + 1)."""
    if len(d) < 2:
        return math.nan  # one seed: no resampling distribution
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), (resamples, len(d)))].mean(1)
    return float(((means <= 0).sum() + 1) / (resamples + 1))


def _t_p(d: np.ndarray, alternative: str) -> float:
    if len(d) < 2:
        return math.nan
    if np.ptp(d) == 0:
        return 0.0 if (alternative == "greater" and d.mean() > 0) or (alternative == "less" and d.mean() < 0) else 1.0
    return float(stats.ttest_1samp(d, 0.0, alternative=alternative).pvalue)


def check_d3(t: Tables) -> Verdict:
    """D3: per N, TOST of Q(ceil(8.33 ln N)) vs Q(n_max) within 0.05 x range, and Q(ceil(8.33 ln N / 4)) < Q(n_max)."""
    runs = _runs(t)
    m = _main(t)
    if m.empty:
        return Verdict(INCONCLUSIVE, _missing(t))
    rows = []
    for r in m.itertuples():
        g = runs[(runs["algo"] == "sgns") & (runs["vocab_size"] == r.N) & (runs["tokens"] == r.T)]
        n, q, _ = quality(g)
        star, quarter = su_dim(r.N), math.ceil(SU * math.log(r.N) / 4)
        col = {int(v): i for i, v in enumerate(n)}
        if star not in col or quarter not in col:
            continue
        # The range of the seed-mean curve, max - min: Q_plat - Q(n_min) on a rising curve, and still positive on a
        # curve that peaks at n_min and then falls (where Q_plat - Q(n_min) would be negative).
        mean = q.mean(0)
        span = mean.max() - mean.min()
        margin = EPS * span
        d_star = q[:, col[star]] - q[:, -1]  # Q(n*) - Q(n_max)
        d_quarter = q[:, -1] - q[:, col[quarter]]  # Q(n_max) - Q(n*/4)
        p_tost = max(_t_p(d_star + margin, "greater"), _t_p(d_star - margin, "less"))
        rows.append(
            {
                "N": r.N,
                "n_star": star,
                "n_quarter": quarter,
                "n_max": int(n[-1]),
                "margin": margin,
                "d_star": float(d_star.mean()),
                "d_quarter": float(d_quarter.mean()),
                "p_tost": p_tost,
                "p_lower": _boot_p_greater(d_quarter, seed=r.N),
                "p_below_margin": _t_p(d_star + margin, "less"),
                "n": len(d_star),
            }
        )
    if not rows:
        return Verdict(INCONCLUSIVE, "the grid lacks ceil(8.33 ln N) or its quarter")
    for key in ("p_tost", "p_lower", "p_below_margin"):
        for row, p in zip(rows, holm([x[key] for x in rows]), strict=True):
            row[f"{key}_holm"] = p
    ok = all(x["p_tost_holm"] < ALPHA and x["p_lower_holm"] < ALPHA for x in rows)
    bad = any(x["p_below_margin_holm"] < ALPHA for x in rows)
    verdict = REFUTED if bad else (SUPPORTED if ok else INCONCLUSIVE)
    text = "; ".join(
        f"N={x['N']}: Q(n*={x['n_star']}) - Q({x['n_max']}) = {x['d_star']:+.4f} (margin {x['margin']:.4f}, TOST p_holm "
        f"{x['p_tost_holm']:.3f}); Q({x['n_max']}) - Q({x['n_quarter']}) = {x['d_quarter']:+.4f} "
        f"(p_holm {x['p_lower_holm']:.3f})"
        for x in rows
    )
    worst = max(rows, key=lambda x: x["p_tost_holm"])
    return Verdict(verdict, text, effect=worst["d_star"], p_value=worst["p_tost_holm"], threshold=ALPHA,
                   n_seeds=min(x["n"] for x in rows), detail=rows)  # fmt: skip


HEAD_METRIC = "head/val_nats"
HEAD_ARMS = ("d_model", "heads")  # d_model fixed (heads vary; primary) or the number of heads fixed


def head_knees(t: Tables) -> pd.DataFrame:
    """D4: one row per (arm, L) with the knee of -(validation nats) over head_dim, bootstrap over seeds."""
    tr = t.trials
    if tr.empty or "config/task" not in tr:
        return pd.DataFrame()
    runs = tr[(tr["status"] == "ok") & (tr["config/task"] == "head")]
    rows = []
    for (arm, L), g in runs.groupby(["config/arm", "config/context"]):
        n, q, seeds = quality(g, HEAD_METRIC, dim="config/head_dim", sign=-1.0)
        if len(seeds) == 0 or len(n) < 3:
            continue
        k = knee(n, q, EPS, seed=int(L))
        rows.append({"arm": arm, "N": int(L), "seeds": len(seeds), "knee": k.knee, "ci_low": k.ci_low, "ci_high": k.ci_high,
                     "non_monotone": k.non_monotone, "su": SU * math.log(L), "boot": k.boot, "grid": n})  # fmt: skip
    return pd.DataFrame(rows)


def check_d4(t: Tables) -> Verdict:
    """D4: the D1 and D2 rules on the knee of validation loss vs head_dim, with L (context length) in place of N.

    The verdict reads the d_model-fixed arm (spec 5.3 lists it first); the heads-fixed arm's knees are reported.
    SUPPORTED only if both rules support; REFUTED if either refutes; else INCONCLUSIVE.
    """
    h = head_knees(t)
    if h.empty:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: the head-size grid (decoder LMs on WikiText) runs at the full "
                       "budget only (spec 5.3)")  # fmt: skip
    m = h[h["arm"] == HEAD_ARMS[0]].sort_values("N").reset_index(drop=True)
    if len(m) < 2:
        return Verdict(INCONCLUSIVE, "incomplete: fewer than two context lengths with complete head_dim curves")
    v1, text1, ratio, ci, pred, _ = ratio_rule(m, "L")
    v2, text2, rows, _, _ = magnitude_rule(m, "L")
    verdict = REFUTED if REFUTED in (v1, v2) else (SUPPORTED if v1 == v2 == SUPPORTED else INCONCLUSIVE)
    knees = "; ".join(
        f"{r.arm} L={r.N}: knee {r.knee:g} [{r.ci_low:g}, {r.ci_high:g}]{' (non-monotone)' if r.non_monotone else ''}"
        for r in h.sort_values(["arm", "N"]).itertuples()
    )
    su = ", ".join(f"{r.su:.1f}" for r in m.itertuples())
    detail = rows + [{k: v for k, v in r.items() if k not in ("boot", "grid")} for r in h.to_dict("records")]
    return Verdict(verdict, f"D1 rule {v1}: {text1}; D2 rule {v2}: {text2}; {knees} (8.33 ln L: {su})", effect=ratio,
                   ci_low=ci[0], ci_high=ci[1], threshold=pred, n_seeds=int(m["seeds"].min()), detail=detail)  # fmt: skip


def check_d5(t: Tables) -> Verdict:
    """D5: largest relative knee shift over corpus sizes and CBOW at one N, against SGNS at the main T."""
    c = conditions(t)
    m = _main(t)
    if c.empty or m.empty:
        return Verdict(INCONCLUSIVE, _missing(t))
    T_ref = int(m["T"].iloc[0])
    counts = c.groupby("N").size()
    if counts.max() < 2:
        return Verdict(INCONCLUSIVE, "no corpus-size or algorithm conditions")
    N = int(counts.idxmax())
    at = c[c["N"] == N]
    ref = at[(at["algo"] == "sgns") & (at["T"] == T_ref)]
    others = at.drop(ref.index)
    if ref.empty or others.empty:
        return Verdict(INCONCLUSIVE, f"N={N}: the reference (SGNS, T={T_ref}) or the other conditions are missing")
    ref = ref.iloc[0]
    shifts = np.stack([o.boot / ref["boot"] - 1 for o in others.itertuples()])  # [conditions, resamples]
    worst_boot = np.abs(shifts).max(0)
    point = max(abs(o.knee / ref["knee"] - 1) for o in others.itertuples())
    ci = _ci(worst_boot)
    verdict = SUPPORTED if ci[1] <= 0.30 else (REFUTED if ci[0] > 0.30 else INCONCLUSIVE)
    rows = [
        {"algo": o.algo, "T": o.T, "knee": o.knee, "ci_low": o.ci_low, "ci_high": o.ci_high, "shift": o.knee / ref["knee"] - 1}
        for o in others.itertuples()
    ]
    text = (
        f"N={N}, reference SGNS T={T_ref}: knee {ref['knee']:g} [{ref['ci_low']:g}, {ref['ci_high']:g}]; "
        + "; ".join(f"{r['algo']} T={r['T']}: {r['knee']:g} ({r['shift']:+.0%})" for r in rows)
        + f"; largest |shift| {point:.0%} [{ci[0]:.0%}, {ci[1]:.0%}]"
    )
    return Verdict(verdict, text, effect=point, ci_low=ci[0], ci_high=ci[1], threshold=0.30,
                   n_seeds=int(at["seeds"].min()), detail=rows)  # fmt: skip


def check_dp1(t: Tables) -> Verdict:
    """D-P1: h_n table within 1e-3, the gap to -(1/2) ln phi falls with n and is < 2e-5 at the largest n."""
    h, table, gap = t.check("dp1/h"), t.check("dp1/table"), t.check("dp1/limit_gap")
    if not h:
        return Verdict(FAIL, "exact checks missing")
    err = max(abs(a - b) for a, b in zip(h, table, strict=True))
    falling = all(b < a for a, b in zip(gap, gap[1:], strict=False))
    ok = err < 1e-3 and falling and gap[-1] < 2e-5
    return Verdict(
        PASS if ok else FAIL,
        f"max |h_n - table| {err:.1e} over n = 32..512; |h_n/n + 0.240606| {gap[0]:.1e} (n=4) -> {gap[-1]:.1e} "
        f"(n={t.check('dp1/limit_n')[-1]:g}), {'decreasing' if falling else 'not decreasing'}",
        effect=err,
        threshold=1e-3,
    )


def tree_knees(t: Tables) -> pd.DataFrame:
    """Per planted tree (b, N): the exact-KL curve's 5%-knee (Q = -KL)."""
    tr = t.trials
    if tr.empty or "config/task" not in tr:
        return pd.DataFrame()
    trees = tr[(tr["status"] == "ok") & (tr["config/task"] == "tree")]
    curves = t.metrics[t.metrics["metric"] == "tree/kl"].merge(trees, on="trial_id")
    rows = []
    for (b, N), g in curves.groupby(["config/b", "config/vocab_size"]):
        wide = g.pivot_table(index="seed", columns="step", values="value").sort_index(axis=1)
        n, q = wide.columns.to_numpy(float), -wide.to_numpy(float)
        k = knee(n, q, EPS, resamples=200)
        rows.append({"b": int(b), "N": int(N), "knee": k.knee, "kl_min": float(-q.max()), "kl_n1": float(-q[:, 0].mean()),
                     "generator": (b - 1) * math.log(N) / math.log(b)})  # fmt: skip
    return pd.DataFrame(rows).sort_values(["b", "N"]).reset_index(drop=True) if rows else pd.DataFrame()


def check_dp2(t: Tables) -> Verdict:
    """D-P2: planted-tree knees non-decreasing in N (per b) and in b (per shared N)."""
    k = tree_knees(t)
    if k.empty:
        return Verdict(FAIL, "no planted-tree fits")
    in_n = all(np.all(np.diff(g["knee"].to_numpy()) >= 0) for _, g in k.groupby("b"))
    shared = k.pivot_table(index="N", columns="b", values="knee").dropna()
    in_b = bool((np.diff(shared.to_numpy(), axis=1) >= 0).all()) if shared.shape[1] > 1 else True
    text = "; ".join(f"b={b}: " + ", ".join(f"N={r.N}: {r.knee:g}" for r in g.itertuples()) for b, g in k.groupby("b"))
    return Verdict(
        PASS if in_n and in_b and len(k) >= 3 else FAIL,
        f"knees {text}; monotone in N: {in_n}, in b: {in_b}",
        n_seeds=1,
        detail=k.to_dict("records"),
    )


def check_dd1(t: Tables) -> Verdict:
    """D-D1: first n where the approximation is > 1 nat from the exact entropy, per N."""
    ns = t.check("dd1/n")
    if not ns:
        return Verdict(INCONCLUSIVE, "exact checks missing")
    rows = []
    for N in (250, 500, 1000):
        ex, ap = np.array(t.check(f"dd1/exact_{N}")), np.array(t.check(f"dd1/approx_{N}"))
        far = np.flatnonzero(np.abs(ex - ap) > 1)
        rows.append({"N": N, "diverge_n": float(ns[far[0]]) if len(far) else math.nan, "su": SU * math.log(N)})
    text = "; ".join(f"N={r['N']}: > 1 nat from n = {r['diverge_n']:g} (8.33 ln N = {r['su']:.1f})" for r in rows)
    return Verdict(INCONCLUSIVE, f"diagnostic: {text}", detail=rows)


def check_dd3(t: Tables) -> Verdict:
    """D-D3: the Chinese arm's knees per N (held-out SGNS loss), beside 8.33 ln N; no verdict."""
    parts = [p for p in (conditions(t, corpus) for corpus in ZH_CORPORA) if not p.empty]
    if not parts:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no Chinese (PKU, Chinese Wikipedia) runs at this budget")
    c = pd.concat(parts, ignore_index=True).sort_values(["corpus", "N"])
    text = "; ".join(
        f"{r.corpus} N={r.N} (T={r.T}): knee {r.knee:g} [{r.ci_low:g}, {r.ci_high:g}]"
        f"{' (non-monotone)' if r.non_monotone else ''}, n_eps / 8.33 ln N = {r.knee / r.su:.2f}"
        for r in c.itertuples()
    )
    detail = [{k: v for k, v in r.items() if k not in ("boot", "grid")} for r in c.to_dict("records")]
    return Verdict(INCONCLUSIVE, f"diagnostic: {text}", n_seeds=int(c["seeds"].min()), detail=detail)


def check_dd4(t: Tables) -> Verdict:
    """D-D4: knees with OOV tokens mapped to `<unk>` beside the knees with OOV dropped, per N (full only); no verdict."""
    unk = conditions(t, oov="unk")
    if unk.empty:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no <unk> runs at this budget (the OOV ablation is full only)")
    drop = conditions(t)
    rows, parts = [], []
    for r in unk.sort_values("N").itertuples():
        same = drop[(drop["algo"] == r.algo) & (drop["N"] == r.N) & (drop["T"] == r.T)] if not drop.empty else drop
        ref = same.iloc[0] if len(same) else None
        shift = r.knee / ref["knee"] - 1 if ref is not None else math.nan
        rows.append({"N": r.N, "T": r.T, "knee_unk": r.knee, "ci_low": r.ci_low, "ci_high": r.ci_high,
                     "knee_drop": ref["knee"] if ref is not None else math.nan, "shift": shift})  # fmt: skip
        drop_text = f"drop {ref['knee']:g} ({shift:+.0%})" if ref is not None else "no drop arm"
        parts.append(f"N={r.N}: <unk> {r.knee:g} [{r.ci_low:g}, {r.ci_high:g}] vs {drop_text}")
    return Verdict(INCONCLUSIVE, "diagnostic: " + "; ".join(parts), n_seeds=int(unk["seeds"].min()), detail=rows)


def check_dd5(t: Tables) -> Verdict:
    """D-D5: the PIP-optimal dimension (M5) per (N, T) beside the M1 knee at the same condition; no verdict."""
    tr = t.trials
    if tr.empty or "config/task" not in tr or "pip/dim" not in tr:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no PIP-optimal dimension (M5) at this budget")
    pip = tr[(tr["status"] == "ok") & (tr["config/task"] == "pip")].sort_values(["config/vocab_size", "config/tokens"])
    if pip.empty:
        return Verdict(INCONCLUSIVE, "no finished PIP fits")
    c = conditions(t)
    rows, parts = [], []
    for _, r in pip.iterrows():
        N, T, corpus = int(r["config/vocab_size"]), int(r["config/tokens"]), r["config/corpus"]
        at = c[(c["algo"] == "sgns") & (c["N"] == N) & (c["T"] == T) & (c["corpus"] == corpus)] if not c.empty else c
        knee_ = float(at["knee"].iloc[0]) if len(at) else math.nan
        lo, hi = r.get("pip/dim_lo", math.nan), r.get("pip/dim_hi", math.nan)
        rows.append({"corpus": corpus, "N": N, "T": T, "pip_dim": r["pip/dim"], "pip_lo": lo, "pip_hi": hi,
                     "sigma": r["pip/sigma"], "knee": knee_, "su": SU * math.log(N)})  # fmt: skip
        parts.append(f"N={N} T={T}: PIP {r['pip/dim']:g} [{lo:g}, {hi:g}] (sigma {r['pip/sigma']:.3f}), knee {knee_:g}, "
                     f"8.33 ln N {SU * math.log(N):.1f}")  # fmt: skip
    return Verdict(INCONCLUSIVE, "diagnostic: " + "; ".join(parts), detail=rows)


def check_dd2(t: Tables) -> Verdict:
    """D-D2: capacity fits n_0.9 = slope ln N + intercept for random and sphere-fitted tied vectors."""
    Ns = t.check("dd2/N")
    if not Ns:
        return Verdict(INCONCLUSIVE, "exact checks missing")
    parts, rows = [], []
    for arm in ("random_n", "fitted_n"):
        y = np.array(t.check(f"dd2/{arm}"))
        ok = np.isfinite(y)
        if ok.sum() >= 2:
            fit = stats.linregress(np.log(np.array(Ns)[ok]), y[ok])
            rows.append({"arm": arm, "slope": float(fit.slope), "intercept": float(fit.intercept)})
            values = ", ".join(f"{v:g}" for v in y[ok])
            parts.append(f"{arm.removesuffix('_n')}: n = {fit.slope:.2f} ln N + {fit.intercept:.1f} ({values})")
    return Verdict(INCONCLUSIVE, "diagnostic: " + "; ".join(parts), effect=rows[0]["slope"] if rows else math.nan, detail=rows)


# Figures.
