"""Learning-rate finiteness (implicit gradient regularisation): claim checks and figures from the Parquet tables.

Cells are the activation at smoke and local, and (model, data set, protocol, batch) x activation at full.
Stable runs (the spec's stable range) reached the target loss without a spike above 2x the running minimum;
runs that spiked and still reached the target (catapults) are outside it, but appear in the figures and in a
sensitivity line of I4. EGR runs have `egr_mu > 0`; their effective step is h + 4 mu.
"""

import dataclasses
import math

import numpy as np
import pandas as pd
from scipy import stats

from analysis.stats import ALPHA, holm, holm_columns, loglog_slope, paired_test, spearman_ci
from analysis.verdict import FAIL, INCONCLUSIVE, PASS, REFUTED, SUPPORTED, Tables, Verdict, all_cells

CELL_KEYS = ("config/model", "config/dataset", "config/protocol", "config/batch_size")  # full-budget factors
LEVELS = (0.5, 0.2, 0.1, 0.05)
RHO, RHO_ALPHA, MIN_LEVELS = -0.7, 0.01, 3
MARGIN = {"smoke": 0.01, "local": 0.01, "full": 0.005}  # TOST margin of I5, accuracy units
I6_FLOOR = 0.005  # I6 is REFUTED when the CI upper bound of acc(h*) - acc(h_min) is below 0.5 pp
SLOPES = {"flow": (1.8, 2.2), "modified": (2.7, 3.3)}


def endpoints(t: Tables) -> pd.DataFrame:
    """One row per main-phase run (ok or diverged): cell keys, activation, h, mu, impl, seed, stability and finals.

    Returns:
        pd.DataFrame: columns `trial_id, seed, activation, h, mu, impl, status, reached, spiked, stable, val_acc,
        test_acc, rig, lambda_max, noise_drop, rig@<level>` and any cell keys.
    """
    tr = t.trials[t.trials["status"].isin(["ok", "diverged"])].copy()
    cols = {
        "config/activation": "activation",
        "config/lr": "h",
        "config/egr_mu": "mu",
        "val/acc": "val_acc",
        "test/acc": "test_acc",
        "train/rig": "rig",
        "train/lambda_max": "lambda_max",
        "noise/acc_drop": "noise_drop",
        **{f"rig_at/{lv:g}": f"rig@{lv:g}" for lv in LEVELS},
    }
    out = tr.rename(columns=cols)
    for c in cols.values():
        if c not in out:
            out[c] = math.nan
    out["impl"] = tr.get("config/egr_impl", "double_backprop")
    reached = tr["train/reached"] if "train/reached" in tr else pd.Series(0.0, index=tr.index)
    spiked = tr["train/spiked"] if "train/spiked" in tr else pd.Series(0.0, index=tr.index)
    out["reached"] = (tr["status"] == "ok") & (reached.fillna(0) > 0)
    out["spiked"] = spiked.fillna(1) > 0
    out["stable"] = out["reached"] & ~out["spiked"]
    keep = ["trial_id", "seed", "activation", "h", "mu", "impl", "status", "reached", "spiked", "stable"]
    keep += ["val_acc", "test_acc", "rig", "lambda_max", "noise_drop", *[f"rig@{lv:g}" for lv in LEVELS]]
    keep += [c for c in CELL_KEYS if c in out.columns]
    return out[keep].reset_index(drop=True)


def _cell_cols(ep: pd.DataFrame) -> list[str]:
    return [c for c in CELL_KEYS if c in ep.columns and ep[c].nunique() > 1] + ["activation"]


def _cells(ep: pd.DataFrame):
    cols = _cell_cols(ep)
    for key, g in ep.groupby(cols, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        yield {c.removeprefix("config/"): v for c, v in zip(cols, key, strict=True)}, g


def _label(cell: dict) -> str:
    return ", ".join(f"{v}" for v in cell.values())


# Exact claims and controls.


def check_i1(t: Tables) -> Verdict:
    """I1: on the quadratic, modified-flow ratio in [0.95, 1.05] and flow error within 5% for h <= 0.025."""
    hs, mod, plain = t.check("i1/h"), t.check("i1/mod_ratio"), t.check("i1/flow_ratio")
    if not hs:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: exact checks missing")
    small = [i for i, h in enumerate(hs) if h <= 0.025]
    ok = all(0.95 <= mod[i] <= 1.05 and abs(plain[i] - 1) <= 0.05 for i in small)
    ivp = max(t.check("i1/ivp_vs_expm") or [math.nan])
    text = "modified-flow ratios " + ", ".join(f"h={h:g}: {r:.3f}" for h, r in zip(hs, mod, strict=True))
    text += "; flow ratios " + ", ".join(f"{r:.3f}" for r in plain) + f"; solve_ivp vs expm {ivp:.1e}"
    detail = [{"h": h, "modified_ratio": m, "flow_ratio": p} for h, m, p in zip(hs, mod, plain, strict=True)]
    return Verdict(SUPPORTED if ok else REFUTED, text, effect=mod[small[-1]], threshold=0.05, n_seeds=1, detail=detail)


def check_i2(t: Tables) -> Verdict:
    """I2: log-log slopes of the one-step errors against flow and modified flow in [1.8, 2.2] and [2.7, 3.3]."""
    hs = t.check("i2/h")
    if not hs:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: exact checks missing")
    slopes = {k: loglog_slope(hs, t.check(f"i2/{k}_err")) for k in ("flow", "mod")}
    ok = (
        SLOPES["flow"][0] <= slopes["flow"] <= SLOPES["flow"][1]
        and SLOPES["modified"][0] <= slopes["mod"] <= SLOPES["modified"][1]
    )
    text = f"slope vs flow {slopes['flow']:.3f} (range {SLOPES['flow']}), "
    text += f"vs modified flow {slopes['mod']:.3f} (range {SLOPES['modified']})"
    detail = [{"against": k, "slope": v} for k, v in slopes.items()]
    return Verdict(
        SUPPORTED if ok else REFUTED,
        text,
        effect=slopes["mod"],
        threshold=SLOPES["modified"][0],
        n_seeds=len(hs),
        detail=detail,
    )


def check_i3(t: Tables) -> Verdict:
    """I3: D-ratio identity to 1e-12 and |a - b| strictly decreasing in h (h <= 0.1), all converged to ab = 1."""
    err, hs = t.check("i3/identity_rel_err"), t.check("i3/h")
    if not err or not hs:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: exact checks missing")
    gaps, res = t.check("i3/final_gap"), t.check("i3/final_residual")
    rule = [i for i, h in enumerate(hs) if h <= 0.1]
    g = [gaps[i] for i in rule]
    decreasing = all(b < a for a, b in zip(g, g[1:], strict=False))
    converged = all(res[i] < 1e-6 for i in rule)
    ok = err[0] <= 1e-12 and decreasing and converged
    ratio = t.check("i3/example_ratio")
    text = f"identity error {err[0]:.1e}; final |a-b| " + ", ".join(f"h={hs[i]:g}: {gaps[i]:.4f}" for i in rule)
    text += f"; {'all' if converged else 'not all'} converged; ratio at (2.8, 3.5), h=0.01: {ratio[0]:.6f}" if ratio else ""
    detail = [{"h": h, "final_gap": gp, "residual": r} for h, gp, r in zip(hs, gaps, res, strict=True)]
    return Verdict(SUPPORTED if ok else REFUTED, text, effect=err[0], threshold=1e-12, n_seeds=200, detail=detail)


def _control(t: Tables, metric: str, tol: float, what: str) -> Verdict:
    v = t.check(metric)
    if not v:
        return Verdict(FAIL, "exact checks missing")
    return Verdict(PASS if v[0] <= tol else FAIL, f"{what} {v[0]:.2e} (tolerance {tol:g})", effect=v[0], threshold=tol)


def check_ip1(t: Tables) -> Verdict:
    """I-P1: EGR with mu = 0 gives the same float64 iterates as plain GD (difference exactly 0)."""
    return _control(t, "ip1/max_abs_diff", 0.0, "max |EGR(mu=0) - GD| over 25 steps:")


def check_ip2(t: Tables) -> Verdict:
    """I-P2: penalty gradient vs 2 mu hvp (<= 1e-10) and vs a central difference (<= 1e-6), relative."""
    hvp, fd = t.check("ip2/hvp_rel_err"), t.check("ip2/fd_rel_err")
    if not hvp or not fd:
        return Verdict(FAIL, "exact checks missing")
    ok = hvp[0] <= 1e-10 and fd[0] <= 1e-6
    return Verdict(
        PASS if ok else FAIL, f"vs hvp {hvp[0]:.1e}, vs central difference {fd[0]:.1e}", effect=fd[0], threshold=1e-6
    )


def check_ip3(t: Tables) -> Verdict:
    """I-P3: R_IG accumulated over batches equals the single full batch to 1e-10."""
    return _control(t, "ip3/abs_err", 1e-10, "|R_IG(accumulated) - R_IG(full batch)|")


# Empirical claims.


def _spearman(x, y) -> tuple[float, float, int]:
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or len(np.unique(x[ok])) < 2 or np.ptp(y[ok]) == 0:
        return math.nan, math.nan, int(ok.sum())
    r = stats.spearmanr(x[ok], y[ok])
    return float(r.statistic), float(r.pvalue), int(ok.sum())


def _branch_slope(runs: pd.DataFrame) -> dict:
    """Quadratic fit of test accuracy in log h; OLS slope on the increasing branch (h up to the fitted optimum)."""
    u, acc = np.log(runs["h"].to_numpy(float)), runs["test_acc"].to_numpy(float)
    out = {"h_opt": math.nan, "slope": math.nan, "p_up": math.nan, "p_down_all": math.nan, "n_branch": 0}
    if len(np.unique(u)) < 2:
        return out
    lo, hi = u.min(), u.max()
    if len(np.unique(u)) >= 3:
        b2, b1, _ = np.polyfit(u, acc, 2)
        u_opt = -b1 / (2 * b2) if b2 < 0 else (hi if b1 + 2 * b2 * hi > 0 else lo)
    else:
        u_opt = hi
    u_opt = float(np.clip(u_opt, lo, hi))
    out["h_opt"] = math.exp(u_opt)
    branch = u <= u_opt + 1e-9
    out["n_branch"] = int(branch.sum())
    if len(np.unique(u[branch])) >= 2:
        fit = stats.linregress(u[branch], acc[branch], alternative="greater")
        out["slope"], out["p_up"] = float(fit.slope), float(fit.pvalue)
    out["p_down_all"] = float(stats.linregress(u, acc, alternative="less").pvalue)
    return out


def _i4_cell(plain: pd.DataFrame) -> dict:
    stable = plain[plain["stable"]]
    row: dict = {"n_runs": len(plain), "n_stable": len(stable), "stable_h": sorted(stable["h"].unique().tolist())}
    for lv in LEVELS:
        row[f"rho@{lv:g}"], row[f"p@{lv:g}"], row[f"n@{lv:g}"] = _spearman(stable["h"], stable[f"rig@{lv:g}"])
    row |= _branch_slope(stable)
    for name, col in [("rho_lambda_max", "lambda_max"), ("rho_noise_drop", "noise_drop"), ("rho_rig_end", "rig")]:
        row[name] = _spearman(stable["h"], stable[col])[0]
    return row


def _i4_decide(rows: list[dict]) -> list[tuple[str, str]]:
    for lv in LEVELS:
        for r, p in zip(rows, holm([r[f"p@{lv:g}"] for r in rows]), strict=True):
            r[f"p_holm@{lv:g}"] = p
    holm_columns(rows, "p_up", "p_down_all")
    out = []
    for r in rows:
        neg = sum(r[f"rho@{lv:g}"] <= RHO and r[f"p_holm@{lv:g}"] < RHO_ALPHA for lv in LEVELS)
        pos = sum(r[f"rho@{lv:g}"] >= -RHO and r[f"p_holm@{lv:g}"] < RHO_ALPHA for lv in LEVELS)
        r["levels_negative"], r["levels_positive"] = neg, pos
        a_ok, b_ok = neg >= MIN_LEVELS, r["p_up_holm"] < ALPHA
        opposite = pos >= MIN_LEVELS or (r["p_down_all_holm"] < ALPHA and not b_ok)
        r["verdict"] = REFUTED if opposite else SUPPORTED if a_ok and b_ok else INCONCLUSIVE
        out.append((r["cell"], r["verdict"]))
    return out


def check_i4(t: Tables) -> Verdict:
    """I4: per cell, rho(h, R_IG at matched loss) <= -0.7 (p < 0.01, Holm) at >= 3 levels, and a rising accuracy branch."""
    ep = endpoints(t)
    ep = ep[ep["mu"] == 0]
    if ep.empty:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no plain runs")
    rows = [{"cell": _label(cell), **cell, **_i4_cell(g)} for cell, g in _cells(ep)]
    cells = _i4_decide(rows)
    verdict = all_cells([v for _, v in cells])
    # Sensitivity (no verdict): the same rule with the runs that spiked but still reached the target.
    loose = [{"cell": _label(cell), **_i4_cell(g.assign(stable=g["reached"]))} for cell, g in _cells(ep)]
    loose_cells = _i4_decide(loose)
    decider = next((r for r in rows if r["verdict"] == verdict), rows[0])
    rho, (lo, hi) = decider["rho@0.05"], _rho_ci(ep, decider)
    parts = [
        f"{r['cell']}: {r['verdict']} (rho<=-0.7 at {r['levels_negative']}/{len(LEVELS)} levels; branch slope "
        f"{r['slope']:+.4f}/ln h, p={r['p_up_holm']:.3g}; stable h {r['stable_h']})"
        for r in rows
    ]
    text = "; ".join(parts) + " | with spiked runs that reached the target: " + ", ".join(f"{c} {v}" for c, v in loose_cells)
    common = dict(
        effect=rho,
        ci_low=lo,
        ci_high=hi,
        p_value=decider[f"p_holm@{0.05:g}"],
        threshold=RHO_ALPHA,
        n_seeds=int(ep["seed"].nunique()),
        detail=rows,
    )
    if t.budget == "smoke":
        return Verdict(INCONCLUSIVE, "underpowered at smoke; directions: " + _smoke_directions(ep, t), **common)
    return Verdict(verdict, text, **common)


def _rho_ci(ep: pd.DataFrame, row: dict) -> tuple[float, float]:
    sel = np.logical_and.reduce([ep[f"config/{k}" if f"config/{k}" in ep else k] == row[k] for k in _cell_names(ep)])
    s = ep[sel & ep["stable"]]
    s = s[np.isfinite(s["rig@0.05"])]
    return spearman_ci(s["h"], s["rig@0.05"]) if len(s) >= 3 else (math.nan, math.nan)


def _cell_names(ep: pd.DataFrame) -> list[str]:
    return [c.removeprefix("config/") for c in _cell_cols(ep)]


def _smoke_directions(ep: pd.DataFrame, t: Tables) -> str:
    """The spec's smoke directions: rho(h, R_IG) < 0 and rho(h, lambda_max) < 0 over stable h; EGR R_IG in between."""
    parts = []
    full = endpoints(t)
    for cell, g in _cells(ep):
        s = g[g["stable"]]
        r_rig, r_lam = _spearman(s["h"], s["rig"])[0], _spearman(s["h"], s["lambda_max"])[0]
        parts.append(f"{_label(cell)}: rho(h, R_IG)={r_rig:+.2f}, rho(h, lambda_max)={r_lam:+.2f}")
        sel = np.logical_and.reduce([full[k] == v for k, v in zip(_cell_cols(full), cell.values(), strict=True)])
        egr = full[sel & (full["mu"] > 0) & full["reached"]]
        for mu, e in egr.groupby("mu"):
            h, hb = e["h"].iloc[0], e["h"].iloc[0] + 4 * mu
            small, big = g[(g["h"] == h) & g["reached"]]["rig"].mean(), g[np.isclose(g["h"], hb) & g["reached"]]["rig"].mean()
            if np.isfinite(big):
                lo_, hi_ = sorted([small, big])
                parts.append(
                    f"EGR mu={mu:g} R_IG {e['rig'].mean():.2e} "
                    f"{'between' if lo_ <= e['rig'].mean() <= hi_ else 'outside'} h={h:g} and h={hb:g}"
                )
    return "; ".join(parts)


def check_i5(t: Tables) -> Verdict:
    """I5: EGR(mu*) beats mu = 0 at small h, is TOST-equivalent to h_big in test accuracy, and its R_IG lies between."""
    ep = endpoints(t)
    egr_all = ep[(ep["mu"] > 0) & ep["reached"]]
    if egr_all.empty:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no EGR runs reached the target")
    margin = MARGIN[t.budget]
    rows = []
    for cell, g in _cells(ep):
        egr = g[(g["mu"] > 0) & g["reached"]]
        if egr.empty:
            continue
        h = float(egr["h"].iloc[0])
        arms = egr.groupby(["mu", "impl"])["val_acc"].mean().sort_values(ascending=False)
        mu_star, impl = arms.index[0]
        plain = g[(g["mu"] == 0) & g["reached"]]
        grid = np.array(sorted(plain["h"].unique()))
        h_big = h + 4 * mu_star
        h_cmp = float(grid[np.argmin(np.abs(np.log(grid) - math.log(h_big)))]) if len(grid) else math.nan
        star = egr[(egr["mu"] == mu_star) & (egr["impl"] == impl)].set_index("seed")
        base = plain[plain["h"] == h].set_index("seed")
        big = plain[plain["h"] == h_cmp].set_index("seed")
        d0 = (star["test_acc"] - base["test_acc"]).dropna().to_numpy()
        d1 = (star["test_acc"] - big["test_acc"]).dropna().to_numpy()
        better, worse0 = paired_test(d0, "greater"), paired_test(d0, "less")
        p_low = _ttest(d1, -margin, "greater")
        p_high = _ttest(d1, margin, "less")
        p_worse = _ttest(d1, -margin, "less")
        rig = [base["rig"].mean(), star["rig"].mean(), big["rig"].mean()]
        rows.append(
            {
                "cell": _label(cell),
                **cell,
                "h": h,
                "mu_star": float(mu_star),
                "impl": impl,
                "h_big": h_big,
                "h_compared": h_cmp,
                "gain_vs_mu0": better.mean,
                "ci_low": better.ci_low,
                "ci_high": better.ci_high,
                "p_better": better.p,
                "p_worse_than_mu0": worse0.p,
                "diff_vs_h_big": float(d1.mean()) if len(d1) else math.nan,
                "p_tost": max(p_low, p_high),
                "p_worse_than_h_big": p_worse,
                "rig_h": rig[0],
                "rig_egr": rig[1],
                "rig_h_big": rig[2],
                "rig_between": bool(min(rig[0], rig[2]) <= rig[1] <= max(rig[0], rig[2])),
                "h_big_spiked": int(big["spiked"].sum()),
                "n": min(len(d0), len(d1)),
            }
        )
    if not rows:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no EGR runs")
    holm_columns(rows, "p_better", "p_worse_than_mu0", "p_tost", "p_worse_than_h_big")
    for r in rows:
        if not r["h_compared"] > r["h"]:  # no larger step on the grid to compare with
            r["verdict"] = INCONCLUSIVE
        elif r["p_worse_than_h_big_holm"] < ALPHA or r["p_worse_than_mu0_holm"] < ALPHA:
            r["verdict"] = REFUTED
        elif r["p_better_holm"] < ALPHA and r["p_tost_holm"] < ALPHA and r["rig_between"]:
            r["verdict"] = SUPPORTED
        else:
            r["verdict"] = INCONCLUSIVE
    verdict = all_cells([r["verdict"] for r in rows])
    text = "; ".join(
        f"{r['cell']}: {r['verdict']} (mu*={r['mu_star']:g} [{r['impl']}] vs mu=0: {r['gain_vs_mu0']:+.4f}, "
        f"p={r['p_better_holm']:.3g}; "
        f"vs h={r['h_compared']:g}: {r['diff_vs_h_big']:+.4f}, TOST p={r['p_tost_holm']:.3g} (margin {margin:g}); "
        f"R_IG {'between' if r['rig_between'] else 'not between'}; "
        f"h={r['h_compared']:g} spiked in {r['h_big_spiked']}/{r['n']} seeds)"
        for r in rows
    )
    decider = next(r for r in rows if r["verdict"] == verdict) if any(r["verdict"] == verdict for r in rows) else rows[0]
    common = dict(
        effect=decider["gain_vs_mu0"],
        ci_low=decider["ci_low"],
        ci_high=decider["ci_high"],
        p_value=decider["p_better_holm"],
        threshold=margin,
        n_seeds=min(r["n"] for r in rows),
        detail=rows,
    )
    if t.budget == "smoke":
        return Verdict(INCONCLUSIVE, f"underpowered at smoke; {text}", **common)
    return Verdict(verdict, text, **common)


def _ttest(d: np.ndarray, popmean: float, alternative: str) -> float:
    if len(d) < 2 or np.ptp(d) == 0:
        return math.nan
    return float(stats.ttest_1samp(d, popmean, alternative=alternative).pvalue)


def check_i6(t: Tables) -> Verdict:
    """I6: acc(h*) - acc(h_min), h* the stable h with the best mean validation accuracy; paired one-sided t, Holm."""
    ep = endpoints(t)
    ep = ep[ep["mu"] == 0]
    if ep.empty:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no plain runs")
    verdict = _i6(t, ep)
    # Sensitivity (no verdict): the same rule when runs that spiked but reached the target count as stable.
    loose = _i6(t, ep.assign(stable=ep["reached"]))
    return dataclasses.replace(verdict, reason=f"{verdict.reason} | with spiked runs that reached the target: {loose.reason}")


def _i6(t: Tables, ep: pd.DataFrame) -> Verdict:
    rows = []
    for cell, g in _cells(ep):
        stable_h = [h for h, s in g.groupby("h") if s["stable"].all()]
        h_min = float(g["h"].min())
        if h_min not in stable_h:
            rows.append({"cell": _label(cell), **cell, "h_star": math.nan, "h_min": h_min, "note": "h_min not stable"})
            continue
        means = g[g["h"].isin(stable_h)].groupby("h")["val_acc"].mean()
        h_star = float(means.idxmax())
        a, b = g[g["h"] == h_star].set_index("seed")["test_acc"], g[g["h"] == h_min].set_index("seed")["test_acc"]
        d = (a - b).dropna().to_numpy()
        res = paired_test(d, "greater")
        rows.append(
            {
                "cell": _label(cell),
                **cell,
                "h_star": h_star,
                "h_min": h_min,
                "diff": res.mean,
                "ci_low": res.ci_low,
                "ci_high": res.ci_high,
                "p": res.p,
                "n": res.n,
            }
        )
    tested = [r for r in rows if "diff" in r]
    holm_columns(tested, "p")
    for r in rows:
        if "diff" not in r:
            r["verdict"] = INCONCLUSIVE
        elif r["ci_high"] < I6_FLOOR:
            r["verdict"] = REFUTED
        elif r["diff"] > 0 and r["p_holm"] < ALPHA:
            r["verdict"] = SUPPORTED
        else:
            r["verdict"] = INCONCLUSIVE
    verdict = all_cells([r["verdict"] for r in rows])
    text = "; ".join(
        f"{r['cell']}: {r['verdict']} (h*={r['h_star']:g} vs h_min={r['h_min']:g}: {r['diff']:+.4f} "
        f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}], p={r['p_holm']:.3g})"
        if "diff" in r
        else f"{r['cell']}: INCONCLUSIVE ({r['note']})"
        for r in rows
    )
    decider = next((r for r in tested if r["verdict"] == verdict), tested[0] if tested else {})
    common = dict(
        effect=decider.get("diff", math.nan),
        ci_low=decider.get("ci_low", math.nan),
        ci_high=decider.get("ci_high", math.nan),
        p_value=decider.get("p_holm", math.nan),
        threshold=ALPHA,
        n_seeds=min((r["n"] for r in tested), default=0),
        detail=rows,
    )
    if t.budget == "smoke":
        return Verdict(INCONCLUSIVE, f"underpowered at smoke; {text}", **common)
    return Verdict(verdict, text, **common)


# Figures: each returns (file stem, matplotlib Figure), or None when its data is missing.
