"""Policy gradient vs zeroth-order: the measurements its claims are decided on, from the study's Parquet tables alone.

Statistics runs (`config/task = stats`) give the cosine of the ZO estimate to the gradient per q; optimisation runs
(`optimise`) give test accuracy and the AUC of validation accuracy in example-forwards. Z1, Z3 and Z-P1 are decided by
rule objects (`analysis/claims/pg_vs_zo.py`); the composite rules by the `check_*` functions here.
"""

import dataclasses
import math

import numpy as np
import pandas as pd
from scipy import stats

from analysis.rules import Cell, Superiority
from analysis.stats import bootstrap_ci
from analysis.verdict import FAIL, INCONCLUSIVE, PASS, REFUTED, SUPPORTED, Tables, Verdict

D = {"softmax_pool14": 1970, "softmax": 7850, "mlp32": 25450}  # MNIST-5k models; digits softmax is 650
CHANCE = 0.1
MISSING = Verdict(INCONCLUSIVE, "not_run_at_budget: exact checks missing")
IMPROVES = Superiority("test accuracy minus the initial model's", alpha=0.01)  # Z5's first half, Holm over cells
GAP = Superiority("AUC(pg_reinforce) - AUC(zo_acc)")  # Z6's first half: every model, Holm


def runs(t: Tables, task: str = "optimise", ok: bool = True) -> pd.DataFrame:
    """The trials of one task (`optimise` or `stats`), only the ok ones unless `ok=False`; columns `method`, `model`."""
    tr = t.trials
    if tr.empty or "config/task" not in tr:
        return pd.DataFrame(columns=["method", "model", "seed", "status"])
    rows = tr[(tr["config/task"] == task) & ((tr["status"] == "ok") | (not ok))]
    return rows.rename(columns={"config/method": "method", "config/model": "model"})


def _values(g: pd.DataFrame, method: str, metric) -> tuple[pd.Series, list[str]]:
    """One arm's per-seed `metric(rows)` from its ok runs, and every other seed of `g` named with why it is left out."""
    arm = g[g["method"] == method]
    ok = arm[arm["status"] == "ok"]
    v = pd.Series(metric(ok).to_numpy(dtype=float) if len(ok) else [], index=ok["seed"].to_numpy(), dtype=float).dropna()
    gone = [f"seed {s} of {method}: {'no value' if st == 'ok' else st}" for s, st in arm[["seed", "status"]].values]
    gone = [x for x, s in zip(gone, arm["seed"], strict=True) if s not in v.index]
    return v, gone + [f"seed {s} of {method}: no run" for s in sorted(set(g["seed"]) - set(arm["seed"]))]


def cosines(t: Tables, stat: str = "cos2") -> pd.DataFrame:
    """The statistics runs as a long table: `trial_id, model, sigma, dtype, d, q, value` (mean `stat`, cos or cos2, at q)."""
    s = runs(t, "stats").rename(columns={"config/stat_sigma": "sigma", "config/stat_dtype": "dtype", "stats/d": "d"})
    cols, keys = [c for c in s.columns if c.startswith(f"stats/{stat}@")], ["trial_id", "model", "sigma", "dtype", "d"]
    if s.empty or not cols:
        return pd.DataFrame(columns=[*keys, "q", "value"])
    long = s.melt(id_vars=keys, value_vars=cols, var_name="q").dropna(subset=["value"])
    return long.assign(q=long["q"].str.split("@").str[1].astype(int))


def cosine_fits(t: Tables) -> pd.DataFrame:
    """Per statistics run: slope and intercept of log E[cos^2] on log q, with intercept + ln d."""
    rows = []
    for (_, model, sigma, dtype, d), g in cosines(t).groupby(["trial_id", "model", "sigma", "dtype", "d"]):
        if len(g) >= 2:
            fit = stats.linregress(np.log(g["q"]), np.log(g["value"]))
            rows.append({"model": model, "sigma": sigma, "dtype": dtype, "d": d, "slope": fit.slope,
                         "intercept": fit.intercept, "intercept_plus_ln_d": fit.intercept + math.log(d)})  # fmt: skip
    return pd.DataFrame(rows, columns=["model", "sigma", "dtype", "d", "slope", "intercept", "intercept_plus_ln_d"])


def check_z2(t: Tables) -> Verdict:
    """Z2: bias and (d + 1) variance on quadratics; at local and full also every model's float64, sigma 1e-3 cos^2 ~ q / d."""
    ds, bias, var, n = t.check("z2/d"), t.check("z2/rel_bias"), t.check("z2/var_ratio"), t.check("z2/n")
    if not ds:
        return MISSING
    quad = list(zip(ds, bias, var, strict=True))
    ok = all(b < 3 * math.sqrt((d + 1) / n[0]) and abs(v / (d + 1) - 1) < 0.05 for d, b, v in quad)
    text = "quadratics: " + ", ".join(f"d={d:g}: bias {b:.4f}, var/||g||^2 {v:.2f} (d+1 = {d + 1:g})" for d, b, v in quad)
    fits = cosine_fits(t)
    sel = fits[(fits["dtype"] == "float64") & np.isclose(fits["sigma"].astype(float), 1e-3)]
    lost = sorted(set(runs(t, "stats", ok=False)["model"]) - set(sel["model"])) or ([] if len(sel) else ["every model"])
    if t.budget == "smoke":  # the at-scale half of the rule is for local and full
        text += "; smoke cosine slope in q (expect ~0.5): " + ", ".join(f"{s / 2:.3f}" for s in fits["slope"])
    elif lost:
        return Verdict(INCONCLUSIVE, f"{text}; at-scale statistics (float64, sigma 1e-3) missing for {', '.join(lost)}")
    else:
        ok &= bool(((sel["slope"] - 1).abs() <= 0.1).all() and (sel["intercept_plus_ln_d"].abs() <= 0.5).all())
        scale = (f"{r.model} slope {r.slope:.3f}, intercept + ln d {r.intercept_plus_ln_d:+.2f}" for r in sel.itertuples())
        text += "; at scale (float64, sigma 1e-3): " + ", ".join(scale)
    effect, detail = max(v / (d + 1) for d, _, v in quad), fits.to_dict("records")
    return Verdict(SUPPORTED if ok else REFUTED, text, effect, threshold=0.05, n_seeds=int(n[0]), detail=detail)


def check_z4(t: Tables) -> Verdict:
    """Z4: var(0) > var(f(theta)) >= var(b*) - 3 s.e.; the grid argmin is the grid point nearest b*."""
    if not t.check("z4/var_zero"):
        return MISSING
    v = {k: t.check(f"z4/var_{k}")[0] for k in ("zero", "f_theta", "mean_f", "b_star")}
    grid, argmin = np.array(t.check("z4/grid")), int(np.argmin(t.check("z4/grid_var")))
    nearest = int(np.argmin(np.abs(grid - t.check("z4/b_b_star")[0])))
    ok = v["zero"] > v["f_theta"] >= v["b_star"] - 3 * t.check("z4/se_b_star")[0] and argmin == nearest
    text = ", ".join(f"var(b={k}) {x:.4g}" for k, x in v.items()) + f"; grid argmin at index {argmin}, nearest b* {nearest}"
    return Verdict(SUPPORTED if ok else REFUTED, text, effect=v["b_star"] / v["zero"], n_seeds=20_000)


def check_zc1(t: Tables) -> Verdict:
    """Z-C1: the claim "sigma = 1e-8 gives non-zero estimates" must FAIL (>= 99% exact zeros)."""
    z = t.check("zc1/zero_fraction")
    if not z:
        return MISSING
    return Verdict(FAIL if z[0] >= 0.99 else PASS, f"exactly zero on {z[0]:.1%} of 200 draws", effect=z[0], threshold=0.99)


def check_zc2(t: Tables) -> Verdict:
    """Z-C2: the self-inclusive mean baseline "matches the exact gradient" must FAIL (> 3 s.e.); LOO must match."""
    m, loo = t.check("zc2_mean/max_z"), t.check("zc2_loo/max_z")
    if not m:
        return MISSING
    text = f"self-inclusive mean: max |z| {m[0]:.1f}; leave-one-out: max |z| {loo[0]:.1f}"
    if loo[0] > 3:  # the unbiased version must match; if it does not, the check itself is broken
        return Verdict(PASS, f"{text}: the leave-one-out baseline does not match either, so the check is broken", effect=m[0])
    return Verdict(PASS if m[0] <= 3 else FAIL, text, effect=m[0], threshold=3.0)


def check_zp2(t: Tables) -> Verdict:
    """Z-P2: bitwise regeneration; restore drift <= 1e-14 (float64), <= 1e-5 (float32)."""
    eq, d64, d32 = t.check("zp2/regen_equal"), t.check("zp2/drift_float64"), t.check("zp2/drift_float32")
    if not eq:
        return MISSING
    ok = eq[0] == 1 and d64[0] <= 1e-14 and d32[0] <= 1e-5
    text = f"regenerated equal: {bool(eq[0])}; drift float64 {d64[0]:.1e}, float32 {d32[0]:.1e}"
    return Verdict(PASS if ok else FAIL, text, effect=d64[0], threshold=1e-14)


def check_z5(t: Tables) -> Verdict:
    """Z5: IMPROVES in every model and the accuracy level reached (its rule in `analysis/claims/pg_vs_zo.py`)."""
    r, cells, level = runs(t, ok=False), [], []
    for model, g in r.groupby("model"):
        ce = g[(g["method"] == "ce_backprop") & (g["status"] == "ok")]["test/acc"].mean()
        for method in ("pg_reinforce", "zo_acc"):
            gain, gone = _values(g, method, lambda x: x["test/acc"] - x["test/acc_init"])
            acc, _ = _values(g, method, lambda x: x["test/acc"])
            cells.append(Cell(f"{model} {method}", gain.to_numpy(), tuple(gone)))
            reached = acc.mean() >= ce - 0.05 if t.budget == "full" else not gone and acc.min() >= CHANCE + 0.5
            level.append({"min_acc": acc.min(), "mean_acc": acc.mean(), "ce_mean": ce, "level_ok": bool(reached)})
    if not cells:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no optimisation runs")
    v = IMPROVES.decide(cells)
    rows = [row | lv for row, lv in zip(v.detail, level, strict=True)]
    short = [f"{r['cell']} (mean {r['mean_acc']:.3f}, min {r['min_acc']:.3f})" for r in rows if not r["level_ok"]]
    name, every = ("within 5 pp of ce_backprop", "") if t.budget == "full" else ("chance + 50 pp", " in every seed")
    reason = f"{v.reason}; level {name} " + (f"not reached in {', '.join(short)}" if short else f"reached{every}")
    small = [r["cell"] for r in rows if r["ci_high"] < 0.10]
    if any(r["test"] == "too few seeds" for r in rows):
        verdict = INCONCLUSIVE
    elif small:
        verdict, reason = REFUTED, f"{reason}; improvement's 95% CI ends below 10 pp in {', '.join(small)}"
    else:
        verdict = SUPPORTED if v.verdict == SUPPORTED and not short else INCONCLUSIVE
    return dataclasses.replace(v, verdict=verdict, reason=reason, detail=rows)


def auc_gaps(t: Tables) -> tuple[dict[str, tuple[pd.Series, list[str]]], dict[str, float]]:
    """Per model with runs, in order of d: AUC(pg_reinforce) - AUC(zo_acc) per seed with both ok, the runs left out; and d."""
    r, s = runs(t, ok=False), runs(t, "stats")
    known = s.dropna(subset=["stats/d"]).groupby("model")["stats/d"].first() if "stats/d" in s else {}
    d = {m: float(known.get(m, D.get(m, math.nan))) for m in set(r["model"]) | set(runs(t, "stats", ok=False)["model"])}
    gaps = {}
    for model in sorted(d, key=lambda m: np.nan_to_num(d[m], nan=np.inf)):
        g = r[r["model"] == model]
        (pg, a), (zo, b) = (_values(g, m, lambda x: x["val/auc_acc"]) for m in ("pg_reinforce", "zo_acc"))
        gaps[model] = ((pg - zo).dropna(), a + b)
    return gaps, d


def check_z6(t: Tables) -> Verdict:
    """Z6: GAP in every model, and the gap's growth from the smallest to the largest d (paired bootstrap over seeds)."""
    gaps, d = auc_gaps(t)
    if len(gaps) < 2:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: Z6 needs two or more model sizes")
    if unknown := [m for m, x in d.items() if math.isnan(x)]:
        return Verdict(INCONCLUSIVE, f"d unknown for {', '.join(unknown)}, so the largest model is unknown")
    v = GAP.decide([Cell(m, s.to_numpy(), tuple(gone)) for m, (s, gone) in gaps.items()])
    rows = [row | {"d": d[row["cell"]]} for row in v.detail]
    small, large = list(gaps)[0], list(gaps)[-1]
    growth = (gaps[large][0] - gaps[small][0]).dropna().to_numpy()
    if any(r["test"] == "too few seeds" for r in rows) or len(growth) < GAP.min_seeds:
        why = v.reason if "too few" in v.reason else f"too few seeds: {len(growth)} paired across {small} and {large}"
        return dataclasses.replace(v, verdict=INCONCLUSIVE, reason=why, detail=rows)
    lo, hi = bootstrap_ci(growth, np.mean)
    reason = f"{v.reason}; gap at {large} minus at {small} {growth.mean():+.3f}, bootstrap 95% CI [{lo:+.3f}, {hi:+.3f}]"
    if rows[-1]["p_other_holm"] < GAP.alpha or hi < 0:
        verdict = REFUTED
    else:
        verdict = SUPPORTED if v.verdict == SUPPORTED and lo > 0 else INCONCLUSIVE
    return dataclasses.replace(v, verdict=verdict, reason=reason, effect=float(growth.mean()), ci_low=lo, ci_high=hi,
                               detail=rows)  # fmt: skip
