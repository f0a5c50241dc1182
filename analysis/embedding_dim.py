"""Embedding dimension vs ln N: the measurements behind the claims, from the study's Parquet tables alone.

Word-vector runs (`config/task = w2v`) have one row per (corpus, algo, N, T, n, seed) with final metrics; the
planted-tree fits (`task = tree`) store the exact KL per n in the metrics table (step = n). The primary quality is
Q = -(held-out SGNS loss), higher is better. Knees are found per (corpus, algo, N, T) condition on the seeds whose
curve is complete; every run a measurement cannot use (failed, diverged, missing) is named, never dropped silently.
The rules that decide are the claims' (`analysis/claims/embedding_dim.py`).
"""

import math

import numpy as np
import pandas as pd
from scipy import stats

from analysis.rules import Cell, Estimate
from analysis.verdict import FAIL, INCONCLUSIVE, Tables, Verdict
from core.embeddings.knee import fit_models, knee, kneedle, origin_slope

SU = 8.33  # the article's constant: n > 8.33 ln N
EPS = 0.05  # the knee's tolerance (spec 3), and D3's margin in units of the curve's range
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
HEAD_METRIC, HEAD_ARM = "head/val_nats", "d_model"  # D4 reads the d_model-fixed arm; the heads-fixed arm is reported
NOT_RUN = "not_run_at_budget: no word-vector runs at this budget (smoke runs the exact checks and the planted tree only)"


def _task(t: Tables, task: str) -> pd.DataFrame:
    """Trial rows of one task, of every status."""
    return t.trials[t.trials["config/task"] == task] if "config/task" in t.trials else pd.DataFrame()


def _runs(t: Tables, corpus: str | None = None, oov: str = "drop") -> pd.DataFrame:
    """Word-vector runs (every status) of `corpus` (default: the non-Chinese one with the most runs) and OOV policy
    (`drop`, or `unk`: the full budget's ablation for D-D4; runs without `oov` in their config drop)."""
    w2v = _task(t, "w2v")
    if w2v.empty:
        return w2v
    policy = w2v["config/oov"].fillna("drop") if "config/oov" in w2v else pd.Series("drop", index=w2v.index)
    runs = w2v[policy == oov].rename(columns={f"config/{k}": k for k in ("corpus", "algo", "vocab_size", "tokens", "dim")})
    main = runs["corpus"][~runs["corpus"].isin(ZH_CORPORA)]
    return runs[runs["corpus"] == (corpus or (main.value_counts().idxmax() if len(main) else None))]


def quality(runs: pd.DataFrame, metric: str = PRIMARY, dim: str = "dim", sign: float | None = None):
    """One condition's curves: dimensions `[G]`, quality `[S, G]` (higher is better; nan where no finished run has a
    value), seeds `[S]`, and why each missing (seed, n) is missing (`failed`, `diverged`, `missing`, `no value`)."""
    ok = runs[runs["status"] == "ok"]
    wide = ok.pivot_table(index="seed", columns=dim, values=metric) if metric in ok else pd.DataFrame()
    wide = wide.reindex(index=sorted(runs["seed"].unique()), columns=sorted(runs[dim].unique()))
    status = runs.groupby(["seed", dim])["status"].first().replace("ok", "no value")
    gaps = [(wide.index[i], wide.columns[j]) for i, j in np.argwhere(wide.isna().to_numpy())]
    q = (METRICS[metric][1] if sign is None else sign) * wide.to_numpy(float)
    return wide.columns.to_numpy(float), q, wide.index.to_list(), {g: status.get(g, "missing") for g in gaps}


def _gone(why: dict, dims=None) -> tuple[str, ...]:
    return tuple(f"seed {s} at n = {n:g}: {w}" for (s, n), w in why.items() if dims is None or n in dims)


def _knee_row(curves: tuple, size: int) -> dict:
    """The 5%-knee of `quality`'s complete curves (bootstrap over their seeds), with the sensitivity knees and Kneedle."""
    n, q, _, why = curves
    full = q[~np.isnan(q).any(1)]
    row = {"N": int(size), "seeds": len(full), "left_out": _gone(why), "su": SU * math.log(size), "grid": n}
    row |= {"knee": math.nan, "ci_low": math.nan, "ci_high": math.nan, "non_monotone": False, "boot": math.nan}
    if len(full) and len(n) >= 3:
        k = knee(n, full, EPS, seed=int(size))
        row |= {"knee": k.knee, "ci_low": k.ci_low, "ci_high": k.ci_high, "non_monotone": k.non_monotone, "boot": k.boot,
                "knee_isotonic": k.knee_isotonic, "knee_raw": k.knee_raw, "kneedle": kneedle(n, full.mean(0)),
                "knee_eps02": knee(n, full, 0.02, resamples=1).knee,
                "knee_eps10": knee(n, full, 0.10, resamples=1).knee}  # fmt: skip
    return row


def conditions(t: Tables, corpus: str | None = None, oov: str = "drop") -> pd.DataFrame:
    """One row per (corpus, algo, N, T) condition with its knee on the primary metric (nan without a complete seed)."""
    runs = _runs(t, corpus, oov)
    groups = runs.groupby(["corpus", "algo", "vocab_size", "tokens"]) if len(runs) else ()
    rows = [{"corpus": c, "algo": a, "T": int(T)} | _knee_row(quality(g), N) for (c, a, N, T), g in groups]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["corpus", "algo", "T", "N", "seeds", "knee", "ci_low"])


def _main(t: Tables, c: pd.DataFrame | None = None) -> pd.DataFrame:
    """The main-grid conditions: SGNS at the token count shared by the most vocabulary sizes."""
    c = conditions(t) if c is None else c
    sg = c[c["algo"] == "sgns"]
    return sg[sg["T"] == sg.groupby("T")["N"].nunique().idxmax()].sort_values("N").reset_index(drop=True) if len(sg) else sg


def _missing(t: Tables) -> Verdict:
    """Nothing run at this budget, or too few vocabulary sizes yet (a stopped or running study)."""
    return Verdict(INCONCLUSIVE, NOT_RUN if _runs(t).empty else "incomplete: fewer than two vocabulary sizes")


def ratio_interval(lo_row, hi_row) -> tuple[float, float]:
    """95% interval of r = knee(N_max) / knee(N_min) over the seed bootstrap, with the grid's resolution: a knee k lies
    in (previous grid point p(k), k], so it runs from the 2.5% quantile of p(k_max) / k_min to the 97.5% quantile of
    k_max / p(k_min) (inf when k_min is the grid's first point)."""
    lo_p, hi_p = (np.append(0.0, r["grid"])[np.searchsorted(r["grid"], r["boot"])] for r in (lo_row, hi_row))
    with np.errstate(divide="ignore"):
        high = np.quantile(hi_row["boot"] / lo_p, 0.975, method="inverted_cdf")
    return float(np.quantile(hi_p / lo_row["boot"], 0.025, method="inverted_cdf")), float(high)


def _knee_text(r) -> str:
    """A condition's knee with its interval; a non-monotone curve gives both definitions."""
    flag = f" (non-monotone; isotonic {r.knee_isotonic:g}, raw {r.knee_raw:g})" if r.non_monotone else ""
    return f"{r.knee:g} [{r.ci_low:g}, {r.ci_high:g}]{flag}"


def knee_ratio(m: pd.DataFrame, x: str = "N") -> tuple[Estimate, float, float, str]:
    """D1's measurement: r = n_eps(largest size) / n_eps(smallest), the two sizes, and a note with knees and model AICs."""
    lo, hi, done = m.iloc[0], m.iloc[-1], m[m["knee"].notna()]
    ci = ratio_interval(lo, hi) if lo.knee == lo.knee and hi.knee == hi.knee else (math.nan, math.nan)
    fits = fit_models(done["N"].to_numpy(), done["knee"].to_numpy()) if len(done) >= 2 else {}
    note = ", ".join(f"{k} AIC {v['aic']:.1f}" for k, v in fits.items()) + "".join(
        f"; {x}={r.N}: knee {_knee_text(r)} (eps 0.02 / 0.10: {r.knee_eps02:g} / {r.knee_eps10:g}, Kneedle {r.kneedle:g}), "
        f"8.33 ln {x} = {r.su:.1f}" for r in done.itertuples())  # fmt: skip
    gone = tuple(f"{x}={r.N} {g}" for r in (lo, hi) for g in r.left_out)
    r = Estimate(hi.knee / lo.knee, *ci, int(min(lo.seeds, hi.seeds)), label=f"r = n_eps({x}={hi.N}) / n_eps({x}={lo.N})",
                 left_out=gone)  # fmt: skip
    return r, float(lo.N), float(hi.N), note


def knee_magnitude(m: pd.DataFrame, x: str = "N") -> tuple[list[Estimate], str]:
    """D2's measurement: per size, n_eps / (8.33 ln size); the note gives the slope a of n_eps = a ln size (no verdict)."""
    cells = [Estimate(r.knee / r.su, *np.quantile(r.boot / r.su, [0.025, 0.975]), r.seeds, label=f"{x}={r.N}",
                      left_out=r.left_out) for r in m.itertuples()]  # fmt: skip
    if m["knee"].isna().any():
        return cells, f"slope a in n_eps = a ln {x}: not every size has a knee"
    sizes, boots = m["N"].to_numpy(), np.stack(m["boot"].to_list())  # [sizes, resamples]
    lo, hi = np.quantile([origin_slope(sizes, boots[:, i]) for i in range(boots.shape[1])], [0.025, 0.975])
    where = "inside" if lo <= SU <= hi else "outside"
    return cells, f"slope a in n_eps = a ln {x}: {origin_slope(sizes, m['knee']):.2f} [{lo:.2f}, {hi:.2f}] (8.33 {where})"


def _main_runs(runs: pd.DataFrame, r) -> pd.DataFrame:
    return runs[(runs["algo"] == "sgns") & (runs["vocab_size"] == r.N) & (runs["tokens"] == r.T)]


def check_d1(t: Tables):
    """D1: the knee ratio between the largest and the smallest N of the main grid."""
    m = _main(t)
    return knee_ratio(m) if len(m) >= 2 else _missing(t)


def check_d2(t: Tables):
    """D2: every N's n_eps / (8.33 ln N); the secondary metrics' knees (M3, benchmarks) are reported in the note."""
    runs, m = _runs(t), _main(t)
    if m.empty:
        return _missing(t)
    cells, note = knee_magnitude(m)
    for r in m.itertuples():
        g = _main_runs(runs, r)
        for metric in (k for k in METRICS if k != PRIMARY and k in g and g[k].notna().any()):
            cov = f"coverage/{metric.split('/')[1]}"
            note += f"; {metric.split('/')[1]} N={r.N}: {_knee_row(quality(g, metric), r.N)['knee']:g}"
            note += f" (cov {g[cov].mean():.2f})" if cov in g else ""
    return cells, note


def check_d3(t: Tables):
    """D3: per N of the main grid, the plateau and deficit differences over seeds (range: max - min of the mean curve)."""
    runs, m = _runs(t), _main(t)
    if m.empty:
        return _missing(t)
    plateau, deficit = [], []
    for r in m.itertuples():
        n, q, seeds, why = quality(_main_runs(runs, r))
        star, quarter, mean = math.ceil(SU * math.log(r.N)), math.ceil(SU * math.log(r.N) / 4), pd.DataFrame(q).mean()
        at = {d: q[:, list(n).index(d)] if d in n else np.full(len(q), np.nan) for d in (star, quarter)}
        for cells, d, dims in (((plateau, (at[star] - q[:, -1]) / (mean.max() - mean.min()), (star, n[-1])),
                                (deficit, q[:, -1] - at[quarter], (n[-1], quarter)))):  # fmt: skip
            absent = tuple(f"seed {s} at n = {dim}: not in the grid" for dim in dims if dim not in n for s in seeds)
            cells.append(Cell(f"N={r.N}", d[~np.isnan(d)], _gone(why, dims) + absent))
    return plateau, deficit


def head_knees(t: Tables) -> pd.DataFrame:
    """D4: one row per (arm, L) with the knee of -(validation nats) over head_dim, bootstrap over complete seeds."""
    heads = _task(t, "head")
    groups = heads.groupby(["config/arm", "config/context"]) if len(heads) else ()
    return pd.DataFrame([{"arm": a} | _knee_row(quality(g, HEAD_METRIC, "config/head_dim", -1.0), L) for (a, L), g in groups])


def check_d4(t: Tables):
    """D4: the D1 and D2 measurements on the d_model-fixed arm's head-size knees, L for N; both arms' knees noted."""
    h = head_knees(t)
    if h.empty:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: the head-size grid (decoder LMs on WikiText) runs at the full "
                       "budget only (spec 5.3)")  # fmt: skip
    m = h[h["arm"] == HEAD_ARM].sort_values("N").reset_index(drop=True)
    if len(m) < 2:
        return Verdict(INCONCLUSIVE, "incomplete: fewer than two context lengths with head_dim curves")
    knees = "; ".join(f"{r.arm} L={r.N}: knee {r.knee:g}" for r in h.sort_values(["arm", "N"]).itertuples())
    cells, note = knee_magnitude(m, "L")
    return knee_ratio(m, "L"), (cells, f"{note}; {knees}" if note else knees)


def shift_conditions(t: Tables):
    """D5's conditions at the N with the most of them; `reference` marks SGNS at the main T."""
    c = conditions(t)
    m = _main(t, c)
    if m.empty:
        return _missing(t)
    N, T = int(c.groupby("N").size().idxmax()), int(m["T"].iloc[0])
    at = c[c["N"] == N].assign(reference=lambda d: (d["algo"] == "sgns") & (d["T"] == T))
    if at["reference"].all() or not at["reference"].any():
        return Verdict(INCONCLUSIVE, f"N={N}: no corpus-size or algorithm conditions beside SGNS at T={T}")
    return at


def check_d5(t: Tables):
    """D5: the largest |relative knee shift| over the other conditions, with its interval over the seed bootstrap."""
    at = shift_conditions(t)
    if isinstance(at, Verdict):
        return at
    ref, others = at[at["reference"]].iloc[0], at[~at["reference"]]
    shift, ci = (others["knee"] / ref["knee"] - 1).to_numpy(), (math.nan, math.nan)
    if not np.isnan(shift).any():
        boots = np.stack([o.boot / ref["boot"] - 1 for o in others.itertuples()])
        ci = tuple(np.quantile(np.abs(boots).max(0), [0.025, 0.975]))
    gone = tuple(f"{r.algo} T={r.T}: {g}" for r in [ref, *others.itertuples()] for g in r.left_out)
    note = f"N={ref['N']}, reference SGNS T={ref['T']}: knee {_knee_text(ref)}; "
    note += "; ".join(f"{o.algo} T={o.T}: {o.knee:g} ({s:+.0%})" for o, s in zip(others.itertuples(), shift, strict=True))
    seeds = int(min(ref["seeds"], others["seeds"].min()))
    return [Estimate(float(np.abs(shift).max()), *ci, seeds, label="largest |shift|", left_out=gone)], note


def check_dp1(t: Tables) -> dict[str, list[float]]:
    """D-P1: |h_n - table| over n = 32 ... 512, and |h_n / n + (1/2) ln phi| at the largest n."""
    h, table, gap = t.check("dp1/h"), t.check("dp1/table"), t.check("dp1/limit_gap")
    largest = f"|h_n/n + (1/2) ln phi| at n = {t.check('dp1/limit_n')[-1]:g}" if h else ""
    return {"|h_n - table|": [abs(a - b) for a, b in zip(h, table, strict=True)], largest: gap[-1:]} if h else {}


def tree_curves(t: Tables) -> pd.DataFrame:
    """The planted-tree fits' exact KL per n (step = n), joined with their configs; trials of every status."""
    trees = _task(t, "tree")
    return t.metrics[t.metrics["metric"] == "tree/kl"].merge(trees, on="trial_id") if len(trees) else pd.DataFrame()


def tree_knees(t: Tables) -> pd.DataFrame:
    """Per planted tree (b, N): the exact-KL curve's 5%-knee (Q = -KL) over its finished seeds."""
    c, rows = tree_curves(t), []
    for (b, N), g in c[c["status"] == "ok"].groupby(["config/b", "config/vocab_size"]) if len(c) else ():
        wide = g.pivot_table(index="seed", columns="step", values="value").sort_index(axis=1)
        n, q = wide.columns.to_numpy(float), -wide.to_numpy(float)
        rows.append({"b": int(b), "N": int(N), "knee": knee(n, q, EPS, resamples=200).knee, "kl_min": float(-q.max()),
                     "generator": (b - 1) * math.log(N) / math.log(b)})  # fmt: skip
    return pd.DataFrame(rows).sort_values(["b", "N"]).reset_index(drop=True) if rows else pd.DataFrame()


def check_dp2(t: Tables):
    """D-P2: how far the planted-tree knee falls (0 where it does not) from one N to the next per b, and from one b to
    the next per shared N; a tree that did not finish leaves the control undecided, named."""
    k, trees = tree_knees(t), _task(t, "tree")
    if k.empty:
        return Verdict(FAIL, "no planted-tree fits")
    if len(bad := trees[trees["status"] != "ok"]):
        gone = (f"b={r['config/b']} N={r['config/vocab_size']} seed {r['seed']}: {r['status']}" for _, r in bad.iterrows())
        return Verdict(INCONCLUSIVE, f"too few trees: left out: {'; '.join(gone)}")
    shared = k.pivot_table(index="N", columns="b", values="knee").dropna()
    knees = {f"fall over N at b={b} (knees {_listed(g['knee'])} at N={_listed(g['N'])})": g["knee"] for b, g in k.groupby("b")}
    knees |= {f"fall over b at N={N} (knees {_listed(r)})": r for N, r in shared.iterrows() if len(r) > 1}
    return {what: np.maximum(0.0, v.to_numpy(float)[:-1] - v.to_numpy(float)[1:]) for what, v in knees.items()}


def _listed(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


def divergence(t: Tables) -> dict[int, float]:
    """D-D1: per N, the first n where the sampling approximation is > 1 nat from the exact entropy (nan if none)."""
    ns = np.array(t.check("dd1/n"))
    gaps = {N: np.abs(np.subtract(t.check(f"dd1/exact_{N}"), t.check(f"dd1/approx_{N}"))) for N in (250, 500, 1000)}
    return {N: float(ns[g > 1][0]) if (g > 1).any() else math.nan for N, g in gaps.items()} if len(ns) else {}


def check_dd1(t: Tables) -> Verdict:
    """D-D1: where the approximation departs, per N, beside 8.33 ln N; no verdict."""
    rows = [{"N": N, "diverge_n": n, "su": SU * math.log(N)} for N, n in divergence(t).items()]
    text = "; ".join(f"N={r['N']}: > 1 nat from n = {r['diverge_n']:g} (8.33 ln N = {r['su']:.1f})" for r in rows)
    return Verdict(INCONCLUSIVE, f"diagnostic: {text}" if rows else "exact checks missing", detail=rows)


def check_dd2(t: Tables) -> Verdict:
    """D-D2: capacity fits n_0.9 = slope ln N + intercept for random and sphere-fitted tied vectors; no verdict."""
    Ns, parts, rows = np.array(t.check("dd2/N")), [], []
    for arm in ("random_n", "fitted_n") if len(Ns) else ():
        y = np.array(t.check(f"dd2/{arm}"))
        if (ok := np.isfinite(y)).sum() >= 2:
            fit = stats.linregress(np.log(Ns[ok]), y[ok])
            rows.append({"arm": arm, "slope": float(fit.slope), "intercept": float(fit.intercept)})
            parts.append(f"{arm[:-2]}: n = {fit.slope:.2f} ln N + {fit.intercept:.1f} ({', '.join(f'{v:g}' for v in y[ok])})")
    text = "diagnostic: " + "; ".join(parts) if len(Ns) else "exact checks missing"
    return Verdict(INCONCLUSIVE, text, effect=rows[0]["slope"] if rows else math.nan, detail=rows)


def check_dd3(t: Tables) -> Verdict:
    """D-D3: the Chinese arm's knees per N (held-out SGNS loss), beside 8.33 ln N; no verdict."""
    c = pd.concat([conditions(t, corpus) for corpus in ZH_CORPORA], ignore_index=True).sort_values(["corpus", "N"])
    if c.empty:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no Chinese (PKU, Chinese Wikipedia) runs at this budget")
    text = "; ".join(f"{r.corpus} N={r.N} (T={r.T}): knee {_knee_text(r)}, n_eps / 8.33 ln N = {r.knee / r.su:.2f}"
                     for r in c.itertuples())  # fmt: skip
    detail = c.drop(columns=["boot", "grid"]).to_dict("records")
    return Verdict(INCONCLUSIVE, f"diagnostic: {text}", n_seeds=int(c["seeds"].min()), detail=detail)


def check_dd4(t: Tables) -> Verdict:
    """D-D4: knees with OOV tokens mapped to `<unk>` beside the knees with OOV dropped, per N (full only); no verdict."""
    unk, drop = conditions(t, oov="unk"), conditions(t)
    if unk.empty:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no <unk> runs at this budget (the OOV ablation is full only)")
    both = unk.merge(drop[["algo", "N", "T", "knee"]], on=["algo", "N", "T"], how="left", suffixes=("", "_drop"))
    both = both.assign(shift=both["knee"] / both["knee_drop"] - 1).sort_values("N").drop(columns=["boot", "grid"])
    text = "; ".join(f"N={r.N}: <unk> {_knee_text(r)} vs "
                     + (f"drop {r.knee_drop:g} ({r.shift:+.0%})" if r.knee_drop == r.knee_drop else "no drop arm")
                     for r in both.itertuples())  # fmt: skip
    return Verdict(INCONCLUSIVE, f"diagnostic: {text}", n_seeds=int(unk["seeds"].min()), detail=both.to_dict("records"))


def check_dd5(t: Tables) -> Verdict:
    """D-D5: the PIP-optimal dimension (M5) per (N, T) beside the M1 knee at the same condition; no verdict."""
    pip = _task(t, "pip")
    pip = pip[pip["status"] == "ok"] if "pip/dim" in pip else pip.iloc[0:0]
    if pip.empty:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no PIP-optimal dimension (M5) at this budget")
    cols = {"config/corpus": "corpus", "config/vocab_size": "N", "config/tokens": "T", "pip/dim": "pip_dim"}
    rows = pip.rename(columns=cols).assign(
        sigma=pip["pip/sigma"], lo=pip.get("pip/dim_lo", math.nan), hi=pip.get("pip/dim_hi", math.nan)
    )
    c = conditions(t)
    rows = rows.astype({"N": int, "T": int}).merge(c[c["algo"] == "sgns"][["corpus", "N", "T", "knee"]], how="left")
    rows = rows.sort_values(["N", "T"])[["corpus", "N", "T", "pip_dim", "lo", "hi", "sigma", "knee"]]
    parts = [f"N={r.N} T={r.T}: PIP {r.pip_dim:g} [{r.lo:g}, {r.hi:g}] (sigma {r.sigma:.3f}), knee {r.knee:g}, 8.33 ln N "
             f"{SU * math.log(r.N):.1f}" for r in rows.itertuples()]  # fmt: skip
    return Verdict(INCONCLUSIVE, "diagnostic: " + "; ".join(parts), detail=rows.to_dict("records"))
