"""Learning-rate finiteness (implicit gradient regularisation): the measurements behind the claims; the composite rules
(I3, I4, I5, I6, I-P2) decide here, from the rule objects below. Cells: the activation (x model, data set, protocol,
batch at full). Stable runs reached the target loss without a spike above 2x the running minimum; runs that spiked and
still reached it are outside the stable range but in the figures and a sensitivity line. EGR runs have mu > 0."""

import dataclasses
import math

import numpy as np
import pandas as pd
from scipy import stats

from analysis.rules import Cell, Control, Equivalence, Exact, Superiority
from analysis.stats import ALPHA, holm_columns, loglog_slope, spearman_ci
from analysis.verdict import INCONCLUSIVE, PASS, REFUTED, SUPPORTED, Tables, Verdict, all_cells

CELL_KEYS = ("config/model", "config/dataset", "config/protocol", "config/batch_size")  # full-budget factors
LEVELS = (0.5, 0.2, 0.1, 0.05)
MIN_SEEDS = 3  # the spec README's minimum per cell at local
I1_H_MAX, I3_H_MAX, I3_IDENTITY, I3_RESIDUAL = 0.025, 0.1, 1e-12, 1e-6  # h ranges; I3's identity error and |1 - ab|
RHO, RHO_ALPHA, MIN_LEVELS = -0.7, 0.01, 3  # I4 (a): rho <= -0.7 at p < 0.01 (Holm) at >= 3 levels
I5_BETTER = Superiority("test accuracy of EGR(mu*) minus mu = 0 at the same h", min_seeds=MIN_SEEDS)
I5_SAME = {b: Equivalence("test accuracy of EGR(mu*) minus the h_big run", m, min_seeds=MIN_SEEDS)
           for b, m in (("smoke", 0.01), ("local", 0.01), ("full", 0.005))}  # fmt: skip
I6_BETTER = Superiority("test accuracy at h* minus at h_min", min_seeds=MIN_SEEDS)
I6_FLOOR = 0.005  # I6 is REFUTED when the 95% upper bound of acc(h*) - acc(h_min) is below 0.5 pp
IP2 = {"ip2/hvp_rel_err": Exact(1e-10, "relative error against hvp"),
       "ip2/fd_rel_err": Exact(1e-6, "relative error of the central difference")}  # fmt: skip
RENAME = {"config/activation": "activation", "config/lr": "h", "config/egr_mu": "mu",
          "val/acc": "val_acc", "test/acc": "test_acc", "train/rig": "rig", "train/lambda_max": "lambda_max",
          "noise/acc_drop": "noise_drop", "train/reached": "reached", "train/spiked": "spiked",
          **{f"rig_at/{lv:g}": f"rig@{lv:g}" for lv in LEVELS}}  # fmt: skip


def endpoints(t: Tables) -> pd.DataFrame:
    """One row per main-phase run (ok, diverged or failed): `trial_id, seed, status`, cell keys, the `RENAME` columns,
    `impl, reached, spiked, stable` and `arm` (e.g. `h=0.1, mu=0.075`)."""
    tr = t.trials
    out = tr[["trial_id", "seed", "status", *[c for c in CELL_KEYS if c in tr]]].copy()
    out = out.assign(**{new: tr.get(old, math.nan) for old, new in RENAME.items()})
    out["impl"] = tr.get("config/egr_impl", "double_backprop")
    out["reached"] = (out["status"] == "ok") & (out["reached"].fillna(0) > 0)
    out["spiked"] = out["spiked"].fillna(int("train/spiked" in tr)) > 0  # a run without its flag counts as spiked
    out["stable"] = out["reached"] & ~out["spiked"]
    out["arm"] = [f"h={h:g}" + (f", mu={m:g}" if m > 0 else "") for h, m in zip(out["h"], out["mu"], strict=True)]
    return out.reset_index(drop=True)


def _cells(ep: pd.DataFrame):
    """(label, runs) per cell: the activation, with the full budget's factors that vary."""
    cols = [c for c in CELL_KEYS if c in ep.columns and ep[c].nunique() > 1] + ["activation"]
    for key, g in ep.groupby(cols, sort=True):
        yield ", ".join(map(str, key if isinstance(key, tuple) else (key,))), g


def _gone(runs: pd.DataFrame, used: pd.Series) -> list[str]:
    """The runs a measurement did not use, by arm and why, e.g. `h=1.6: diverged (seeds 0, 3)`."""
    out = runs[~used]
    why = np.select([out["status"] != "ok", ~out["reached"], out["spiked"]], [out["status"], "target not reached", "spiked"],
                    "no test accuracy")  # fmt: skip
    return [f"{arm}: {w} (seeds {', '.join(map(str, sorted(s['seed'])))})" for (arm, w), s in out.groupby(["arm", why])]


def _pair(label: str, a: pd.DataFrame, b: pd.DataFrame, use: str) -> Cell:
    """Per-seed test-accuracy differences a - b over the seeds whose runs are `use` in both arms; the rest named."""
    xa, xb = (x[x[use] & x["test_acc"].notna()].set_index("seed")["test_acc"] for x in (a, b))
    both = pd.concat([a, b]).drop_duplicates("trial_id")
    ok = both[use] & both["test_acc"].notna()
    lone = sorted(set(xa.index) ^ set(xb.index) - set(both.loc[~ok, "seed"]))
    gone = _gone(both, ok) + ([f"seeds {', '.join(map(str, lone))}: no run in the other arm"] if lone else [])
    return Cell(label, (xa - xb).dropna().to_numpy(), tuple(gone))


def _few(*verdicts: Verdict) -> list[str]:
    return [r["cell"] for v in verdicts for r in v.detail if r.get("test") == "too few seeds"]


def check_i1(t: Tables) -> dict[str, list[float]]:
    """I1: |ratio - 1| of the modified-flow and flow one-step errors to their leading terms, at h <= I1_H_MAX."""
    small = [i for i, h in enumerate(t.check("i1/h")) if h <= I1_H_MAX]
    ratios = {"modified flow": t.check("i1/mod_ratio"), "flow": t.check("i1/flow_ratio")}
    return {k: [abs(r[i] - 1) for i in small] for k, r in ratios.items()}


def check_i2(t: Tables) -> dict[str, list[float]]:
    """I2: |slope / order - 1| of the log-log one-step errors (order 2 against the flow, 3 against the modified flow)."""
    hs = t.check("i2/h")
    slopes = {(k, order): loglog_slope(hs, t.check(f"i2/{k}_err")) for k, order in (("flow", 2), ("mod", 3))} if hs else {}
    return {f"{k} slope {s:.3f} vs {order}": [abs(s / order - 1)] for (k, order), s in slopes.items()}


def check_i3(t: Tables) -> Verdict:
    """I3: D-ratio identity to I3_IDENTITY and final |a - b| strictly decreasing in h <= I3_H_MAX, all converged to ab = 1."""
    err, hs, gaps, res = (t.check(f"i3/{k}") for k in ("identity_rel_err", "h", "final_gap", "final_residual"))
    if not err or not hs:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: exact checks missing")
    rule = [i for i, h in enumerate(hs) if h <= I3_H_MAX]
    decreasing = all(gaps[j] < gaps[i] for i, j in zip(rule, rule[1:], strict=False))
    converged = all(res[i] < I3_RESIDUAL for i in rule)
    text = f"identity error {max(err):.1e}; final |a-b| " + ", ".join(f"h={hs[i]:g}: {gaps[i]:.4f}" for i in rule)
    text += f" ({'' if decreasing else 'not '}strictly decreasing); {'all' if converged else 'not all'} converged"
    ok = max(err) <= I3_IDENTITY and decreasing and converged
    detail = [{"h": h, "final_gap": gp, "residual": r} for h, gp, r in zip(hs, gaps, res, strict=True)]
    return Verdict(SUPPORTED if ok else REFUTED, text, effect=max(err), threshold=I3_IDENTITY, n_seeds=len(err), detail=detail)


def check_ip2(t: Tables) -> Verdict:
    """I-P2: the penalty gradient against 2 mu hvp and against a central difference, each within its tolerance."""
    vs = [Control(rule).decide(t.check(metric)) for metric, rule in IP2.items()]
    return dataclasses.replace(next((v for v in vs if v.verdict != PASS), vs[-1]), reason="; ".join(v.reason for v in vs))


def _spearman(x, y) -> tuple[float, float]:
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan, math.nan
    return tuple(map(float, stats.spearmanr(x[ok], y[ok])))


def quadratic_fit(runs: pd.DataFrame) -> tuple[np.ndarray | None, float]:
    """Quadratic fit of test accuracy in log h (coefficients; None under 3 distinct h) and its optimum's log h."""
    u, acc = np.log(runs["h"].to_numpy(float)), runs["test_acc"].to_numpy(float)
    if len(np.unique(u)) < 3:
        return None, float(u.max()) if len(u) else math.nan
    coef = np.polyfit(u, acc, 2)
    u_opt = -coef[1] / (2 * coef[0]) if coef[0] < 0 else (u.max() if np.polyval(np.polyder(coef), u.max()) > 0 else u.min())
    return coef, float(np.clip(u_opt, u.min(), u.max()))


def _branch_slope(runs: pd.DataFrame) -> dict:
    """OLS slope of test accuracy on log h over the increasing branch (h up to the fitted optimum), and over all h."""
    u, acc = np.log(runs["h"].to_numpy(float)), runs["test_acc"].to_numpy(float)
    out = {"h_opt": math.nan, "slope": math.nan, "p_up": math.nan, "p_down_all": math.nan}
    if len(np.unique(u)) < 2:
        return out
    out["h_opt"] = math.exp(u_opt := quadratic_fit(runs)[1])
    if len(np.unique(u[branch := u <= u_opt + 1e-9])) >= 2:
        fit = stats.linregress(u[branch], acc[branch], alternative="greater")
        out["slope"], out["p_up"] = float(fit.slope), float(fit.pvalue)
    out["p_down_all"] = float(stats.linregress(u, acc, alternative="less").pvalue)
    return out


def _i4(ep: pd.DataFrame) -> list[dict]:
    """Per cell over stable plain runs: Spearman rho(h, R_IG) per loss level, the branch slope, Holm, the decision."""
    rows = []
    for label, g in _cells(ep):
        s = g[g["stable"]]
        row = {"cell": label, "seeds": s["seed"].nunique(), "stable_h": sorted(s["h"].unique().tolist())}
        for lv in LEVELS:
            row[f"rho@{lv:g}"], row[f"p@{lv:g}"] = _spearman(s["h"], s[f"rig@{lv:g}"])
        for name, col in [("lambda_max", "lambda_max"), ("noise drop", "noise_drop"), ("final R_IG", "rig")]:
            row[f"rho(h, {name})"] = _spearman(s["h"], s[col])[0]
        rows.append(row | _branch_slope(s) | {"left_out": _gone(g, g["stable"])})
    holm_columns(rows, *[f"p@{lv:g}" for lv in LEVELS], "p_up", "p_down_all")
    for r in rows:
        neg = r["levels_negative"] = sum(r[f"rho@{lv:g}"] <= RHO and r[f"p@{lv:g}_holm"] < RHO_ALPHA for lv in LEVELS)
        pos = r["levels_positive"] = sum(r[f"rho@{lv:g}"] >= -RHO and r[f"p@{lv:g}_holm"] < RHO_ALPHA for lv in LEVELS)
        rising = r["p_up_holm"] < ALPHA
        opposite = pos >= MIN_LEVELS or (r["p_down_all_holm"] < ALPHA and not rising)
        r["decision"] = REFUTED if opposite else SUPPORTED if neg >= MIN_LEVELS and rising else INCONCLUSIVE
    return rows


def check_i4(t: Tables) -> Verdict:
    """I4: per cell, rho(h, R_IG at matched loss) <= -0.7 (p < 0.01, Holm) at >= 3 levels, and a rising accuracy branch."""
    if (ep := endpoints(t).query("mu == 0")).empty:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no plain runs")
    rows = _i4(ep)
    few = [f"{r['cell']} (n = {r['seeds']} < {MIN_SEEDS})" for r in rows if r["seeds"] < MIN_SEEDS]
    verdict = INCONCLUSIVE if few else all_cells([r["decision"] for r in rows])
    loose = _i4(ep.assign(stable=ep["reached"]))  # sensitivity, no verdict: spiked runs that reached count as stable
    text = (f"too few seeds in {', '.join(few)}; " if few else "") + "; ".join(
        f"{r['cell']}: {r['decision']} (rho <= {RHO:g} at {r['levels_negative']}/{len(LEVELS)} levels; branch slope "
        f"{r['slope']:+.4f}/ln h, p={r['p_up_holm']:.3g}; stable h {r['stable_h']}; "
        + ", ".join([f"{k} {r[k]:+.2f}" for k in r if k.startswith("rho(h")] + [f"left out: {x}" for x in r["left_out"]]) + ")"
        for r in rows
    ) + " | with spiked runs that reached the target: " + ", ".join(f"{r['cell']} {r['decision']}" for r in loose)  # fmt: skip
    top = next((r for r in rows if r["decision"] == verdict), rows[0])
    s = next(g[g["stable"] & np.isfinite(g["rig@0.05"])] for label, g in _cells(ep) if label == top["cell"])
    lo, hi = spearman_ci(s["h"], s["rig@0.05"]) if len(s) >= 3 else (math.nan, math.nan)
    return Verdict(verdict, text, effect=top["rho@0.05"], ci_low=lo, ci_high=hi, p_value=top["p@0.05_holm"],
                   threshold=RHO_ALPHA, n_seeds=min(r["seeds"] for r in rows), detail=rows)  # fmt: skip


def check_i5(t: Tables) -> Verdict:
    """I5: EGR(mu*) beats mu = 0 at small h, is TOST-equivalent to h_big in test accuracy, and its R_IG lies between."""
    ep = endpoints(t)
    if not ((ep["mu"] > 0) & ep["reached"]).any():
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no EGR runs reached the target")
    better, same, rows = [], [], []
    for label, g in _cells(ep):
        egr, plain = g[g["mu"] > 0], g[g["mu"] == 0]
        if not egr["reached"].any():  # the cell keeps its place, undecidable
            nothing = Cell(label, [], tuple(_gone(egr, egr["reached"])))
            better, same, rows = [*better, nothing], [*same, nothing], [*rows, {"cell": label}]
            continue
        h = float(egr["h"].iloc[0])
        mu, impl = egr[egr["reached"]].groupby(["mu", "impl"])["val_acc"].mean().idxmax()
        grid = np.array(sorted(plain.loc[plain["reached"], "h"].unique()))
        h_cmp = float(grid[np.argmin(np.abs(np.log(grid / (h + 4 * mu))))]) if len(grid) else math.nan
        star, base, big = egr[(egr["mu"] == mu) & (egr["impl"] == impl)], plain[plain["h"] == h], plain[plain["h"] == h_cmp]
        better.append(_pair(label, star, base, "reached"))
        same.append(_pair(label, star, big, "reached") if h_cmp > h else Cell(label, [], (f"no step above h={h:g}",)))
        rig = [x.loc[x["reached"], "rig"].mean() for x in (base, star, big)]
        rows.append({"cell": label, "h": h, "mu_star": float(mu), "impl": impl, "h_big": h + 4 * mu, "h_compared": h_cmp,
                     "rig_h": rig[0], "rig_egr": rig[1], "rig_h_big": rig[2], "h_big_spiked": int(big["spiked"].sum()),
                     "rig_between": bool(min(rig[0], rig[2]) <= rig[1] <= max(rig[0], rig[2]))})  # fmt: skip
    a, b = I5_BETTER.decide(better), (tost := I5_SAME[t.budget]).decide(same)
    for r, ra, rb in zip(rows, a.detail, b.detail, strict=True):
        r |= {f"{vs}_{k}": x[k] for vs, x in (("vs_mu0", ra), ("vs_h_big", rb)) for k in ("mean", "ci_high", "p", "test")}
    worse = [r["cell"] for r in rows if r.get("vs_h_big_ci_high", math.nan) < -tost.margin]
    ok = a.verdict == b.verdict == SUPPORTED and all(r.get("rig_between", False) for r in rows)
    verdict = INCONCLUSIVE if _few(a, b) else REFUTED if a.verdict == REFUTED or worse else SUPPORTED if ok else INCONCLUSIVE
    arms = "; ".join(f"{r['cell']}: mu*={r['mu_star']:g} [{r['impl']}], h_big={r['h_compared']:g} (spiked in "
                     f"{r['h_big_spiked']} seeds), R_IG {'' if r['rig_between'] else 'not '}between"
                     for r in rows if "h" in r)  # fmt: skip
    text = (f"mu* vs mu = 0: {a.verdict}, {a.reason} | mu* vs h_big: {b.verdict}, {b.reason}"
            + (f"; 95% interval below -{tost.margin:g} in {', '.join(worse)}" if worse else "") + f" | {arms}")  # fmt: skip
    return dataclasses.replace(a, verdict=verdict, reason=text, threshold=tost.margin, n_seeds=min(a.n_seeds, b.n_seeds),
                               detail=rows)  # fmt: skip


def _i6(ep: pd.DataFrame) -> Verdict:
    cells, rows = [], []
    for label, g in _cells(ep):
        stable_h = [h for h, s in g[g["status"] != "failed"].groupby("h") if s["stable"].all()]  # failed: no evidence
        h_min = float(g["h"].min())
        h_star = float(g[g["h"].isin(stable_h)].groupby("h")["val_acc"].mean().idxmax()) if h_min in stable_h else math.nan
        pair = _pair(label, g[g["h"] == h_star], g[g["h"] == h_min], "stable")
        cells.append(pair if h_min in stable_h else Cell(label, [], (f"h_min={h_min:g} not stable",)))
        rows.append({"h_star": h_star, "h_min": h_min})
    v = I6_BETTER.decide(cells)
    for r, extra in zip(v.detail, rows, strict=True):
        r |= extra
    short = [r for r in v.detail if r["ci_high"] < I6_FLOOR]
    verdict = INCONCLUSIVE if _few(v) else REFUTED if short else SUPPORTED if v.verdict == SUPPORTED else INCONCLUSIVE
    text = ", ".join(f"{r['cell']}: h*={r['h_star']:g} vs h_min={r['h_min']:g}" for r in v.detail) + f"; {v.reason}"
    text += f"; 95% upper bound < {I6_FLOOR:g} in {', '.join(r['cell'] for r in short)}" if short else ""
    top = short[0] if verdict == REFUTED else {"mean": v.effect, "ci_low": v.ci_low, "ci_high": v.ci_high, "p_holm": v.p_value}
    return dataclasses.replace(v, verdict=verdict, reason=text, effect=top["mean"], ci_low=top["ci_low"],
                               ci_high=top["ci_high"], p_value=top["p_holm"])  # fmt: skip


def check_i6(t: Tables) -> Verdict:
    """I6: acc(h*) - acc(h_min), h* the stable h with the best mean validation accuracy; paired one-sided test, Holm."""
    if (ep := endpoints(t).query("mu == 0")).empty:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no plain runs")
    v, loose = _i6(ep), _i6(ep.assign(stable=ep["reached"]))  # sensitivity, no verdict: spiked runs count as stable
    return dataclasses.replace(v, reason=f"{v.reason} | with spiked runs that reached the target: {loose.verdict}, "
                                         f"{loose.reason}")  # fmt: skip
