"""Flooding: claim checks and figures, computed from the study's Parquet tables alone.

Cells are (label noise eta, early stopping E) at local, (eta, off) at smoke; the full budget adds data set,
weight decay and augmentation to the cell. Early stopping is post hoc: E = on reads each trial at the epoch of
its best (noisy) validation accuracy, E = off at the last epoch. b* is chosen per cell among b > 0 by mean
validation accuracy over seeds (ties go to the smaller b).
"""

import math

import numpy as np
import pandas as pd
from scipy import stats

from analysis.stats import ALPHA, bootstrap_ci, holm_columns, loglog_slope, paired_test, spearman_ci
from analysis.verdict import FAIL, INCONCLUSIVE, PASS, REFUTED, SUPPORTED, Tables, Verdict

CELL_KEYS = ("config/dataset", "config/weight_decay", "config/augment")  # full-budget factors, when present
SLOPE_RANGE = (2.7, 3.3)
E1_TOLERANCE = 1e-12


def _cell_cols(df: pd.DataFrame) -> list[str]:
    return [c for c in CELL_KEYS if c in df.columns and df[c].nunique() > 1] + ["eta"]


def endpoints(t: Tables) -> pd.DataFrame:
    """One row per (ok trial, E): eta, b, seed, val/test accuracy at the read-out epoch, lambda_max, test-loss curve id.

    Args:
        t (Tables):
            The study's tables.

    Returns:
        pd.DataFrame: columns `trial_id, eta, b, seed, E, epoch, val_acc, test_acc, lambda_max` and any cell keys.
    """
    ok = t.trials[t.trials["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=["trial_id", "eta", "b", "seed", "E", "epoch", "val_acc", "test_acc", "lambda_max"])
    acc = t.metrics[t.metrics["metric"].isin(["val/acc", "test/acc"]) & t.metrics["trial_id"].isin(ok["trial_id"])]
    wide = acc.pivot_table(index=["trial_id", "step"], columns="metric", values="value").reset_index()
    last = wide.loc[wide.groupby("trial_id")["step"].idxmax()].assign(E="off")
    best = wide.loc[wide.groupby("trial_id")["val/acc"].idxmax()].assign(E="on")  # first epoch of the best val acc
    keep = ["trial_id", "seed", "config/label_noise", "config/flood_level", *[c for c in CELL_KEYS if c in ok.columns]]
    out = pd.concat([last, best]).merge(ok[keep + (["train/lambda_max"] if "train/lambda_max" in ok else [])], on="trial_id")
    out = out.rename(
        columns={
            "config/label_noise": "eta",
            "config/flood_level": "b",
            "step": "epoch",
            "val/acc": "val_acc",
            "test/acc": "test_acc",
            "train/lambda_max": "lambda_max",
        }
    )
    return out.reset_index(drop=True)


def best_levels(ep: pd.DataFrame) -> dict[tuple, float]:
    """b* per cell (cell columns + E): the b > 0 with the highest mean validation accuracy over seeds."""
    cols = _cell_cols(ep) + ["E"]
    flooded = ep[ep["b"] > 0].groupby([*cols, "b"], as_index=False)["val_acc"].mean()
    flooded = flooded.sort_values([*cols, "val_acc", "b"], ascending=[True] * len(cols) + [False, True])
    return {tuple(k if isinstance(k, tuple) else (k,)): float(g["b"].iloc[0]) for k, g in flooded.groupby(cols)}


def _pairs(ep: pd.DataFrame, cell: dict, b_star: float, value: str) -> pd.DataFrame:
    sel = np.logical_and.reduce([ep[k] == v for k, v in cell.items()])
    sub = ep[sel]
    a = sub[sub["b"] == b_star].set_index("seed")[value]
    z = sub[sub["b"] == 0].set_index("seed")[value]
    return pd.DataFrame({"flooded": a, "baseline": z}).dropna()


def _cells(ep: pd.DataFrame, with_e: bool = True):
    cols = _cell_cols(ep) + (["E"] if with_e else [])
    b_star = best_levels(ep)
    for key in sorted(b_star):
        cell = dict(zip(_cell_cols(ep) + ["E"], key, strict=True))
        if not with_e and cell["E"] != "off":
            continue
        yield {k: cell[k] for k in cols}, cell, b_star[key]


def check_f1(t: Tables) -> Verdict:
    """F1: test accuracy at b* (chosen on validation) minus at b = 0, paired by seed, Holm across cells."""
    ep = endpoints(t)
    rows = []
    for label, cell, b_star in _cells(ep):
        pairs = _pairs(ep, cell, b_star, "test_acc")
        d = (pairs["flooded"] - pairs["baseline"]).to_numpy()
        up, down = paired_test(d, "greater"), paired_test(d, "less")
        rows.append(
            {
                **label,
                "b_star": b_star,
                "delta": up.mean,
                "ci_low": up.ci_low,
                "ci_high": up.ci_high,
                "p_greater": up.p,
                "p_less": down.p,
                "n": up.n,
                "all_positive": bool(len(d) and (d > 0).all()),
            }
        )
    if not rows:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no finished trials with b = 0 and b > 0")
    holm_columns(rows, "p_greater", "p_less")
    sig_up = sum(r["p_greater_holm"] < ALPHA for r in rows)
    sig_down = sum(r["p_less_holm"] < ALPHA for r in rows)
    per_seed = pd.concat([_pairs(ep, c, b, "test_acc").pipe(lambda p: p["flooded"] - p["baseline"]) for _, c, b in _cells(ep)])
    overall = paired_test(per_seed.groupby(level=0).mean().to_numpy())
    p_best = min((r["p_greater_holm"] for r in rows if not math.isnan(r["p_greater_holm"])), default=math.nan)
    common = dict(
        effect=overall.mean,
        ci_low=overall.ci_low,
        ci_high=overall.ci_high,
        p_value=p_best,
        threshold=ALPHA,
        n_seeds=overall.n,
        detail=rows,
    )
    counts = f"{sig_up}/{len(rows)} cells significantly better, {sig_down} significantly worse (Holm, one-sided paired t)"
    if t.budget == "smoke":
        consistent = all(r["all_positive"] for r in rows)
        return Verdict(
            INCONCLUSIVE,
            f"underpowered at smoke; direction {'consistent' if consistent else 'not consistent'}: {counts}",
            **common,
        )
    if sig_down:
        return Verdict(REFUTED, counts, **common)
    if overall.mean > 0 and sig_up >= len(rows) / 2:
        return Verdict(SUPPORTED, counts, **common)
    return Verdict(INCONCLUSIVE, f"underpowered: {counts}", **common)


def second_descent(loss: np.ndarray, window: int = 5, rise: float = 0.05, drop: float = 0.05) -> bool:
    """F2's detector on one test-loss curve.

    Smooth with a trailing `window`-epoch mean; overfitting starts at the first epoch where the smoothed loss
    exceeds its running minimum by `rise`; the detector fires if after that some maximum is followed by a fall
    of at least `drop` of that maximum.

    Args:
        loss (np.ndarray):
            Test loss per epoch.
        window (int):
            Moving-average width.
        rise (float):
            Relative rise that marks overfitting onset.
        drop (float):
            Relative fall from a later maximum that counts as a second descent.

    Returns:
        bool: whether the detector fires.
    """
    s = pd.Series(loss).rolling(window, min_periods=window).mean().dropna().to_numpy()
    if len(s) < 2:
        return False
    onset = np.flatnonzero(s > (1 + rise) * np.minimum.accumulate(s))
    if not len(onset):
        return False
    after = s[onset[0] :]
    peaks = np.maximum.accumulate(after)
    return bool(((peaks - after) >= drop * peaks).any())


def check_f2(t: Tables) -> Verdict:
    """F2: in every noisy cell the detector fires for b* in >= 4/5 seeds and for b = 0 in <= 1/5."""
    ep = endpoints(t)
    curves = t.curves("test/loss")
    fires = {tid: second_descent(g["value"].to_numpy()) for tid, g in curves.groupby("trial_id")}
    rows = []
    for label, cell, b_star in _cells(ep):
        if cell["eta"] == 0:
            continue
        sel = np.logical_and.reduce([ep[k] == v for k, v in cell.items()])
        sub = ep[sel]
        f_star = [fires.get(i, False) for i in sub.loc[sub["b"] == b_star, "trial_id"]]
        f_zero = [fires.get(i, False) for i in sub.loc[sub["b"] == 0, "trial_id"]]
        rows.append(
            {
                **label,
                "b_star": b_star,
                "fires_b_star": float(np.mean(f_star)) if f_star else math.nan,
                "fires_b0": float(np.mean(f_zero)) if f_zero else math.nan,
                "n": min(len(f_star), len(f_zero)),
            }
        )
    if not rows:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no noisy cell")
    n = min(r["n"] for r in rows)
    effect = float(np.mean([r["fires_b_star"] - r["fires_b0"] for r in rows]))
    text = "; ".join(
        f"eta={r['eta']} E={r['E']}: b*={r['b_star']} fires {r['fires_b_star']:.0%}, b=0 {r['fires_b0']:.0%}" for r in rows
    )
    common = dict(effect=effect, n_seeds=n, threshold=0.8, detail=rows)
    if t.budget == "smoke":
        consistent = all(r["fires_b_star"] == 1 and r["fires_b0"] == 0 for r in rows)
        return Verdict(
            INCONCLUSIVE,
            f"underpowered at smoke; direction {'consistent' if consistent else 'not consistent'}: {text}",
            **common,
        )
    if all(r["fires_b_star"] >= 0.8 and r["fires_b0"] <= 0.2 for r in rows):
        return Verdict(SUPPORTED, text, **common)
    if all(r["fires_b_star"] <= 0.4 or r["fires_b0"] >= r["fires_b_star"] for r in rows):
        return Verdict(REFUTED, text, **common)
    return Verdict(INCONCLUSIVE, text, **common)


def check_f3(t: Tables) -> Verdict:
    """F3: for each reached b >= 0.05, last-20% training loss in [0.8b, 1.2b] and flood proportion in [0.3, 0.7]."""
    ok = t.trials[t.trials["status"] == "ok"]
    m = t.metrics[t.metrics["metric"].isin(["train/loss", "train/flood_prop"]) & t.metrics["trial_id"].isin(ok["trial_id"])]
    if m.empty:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no finished trials")
    wide = m.pivot_table(index=["trial_id", "step"], columns="metric", values="value").reset_index()
    wide = wide.merge(ok[["trial_id", "seed", "config/label_noise", "config/flood_level"]], on="trial_id")
    rows = []
    for (eta, b), g in wide[wide["config/flood_level"] >= 0.05].groupby(["config/label_noise", "config/flood_level"]):
        per_trial = []
        for _, tr in g.groupby("trial_id"):
            if (tr["train/flood_prop"] > 0).any():
                tail = tr[tr["step"] > tr["step"].max() * 0.8]
                per_trial.append((tail["train/loss"].mean(), tail["train/flood_prop"].mean()))
        if per_trial:
            loss, prop = np.mean(per_trial, axis=0)
            rows.append(
                {
                    "eta": eta,
                    "b": b,
                    "loss_over_b": loss / b,
                    "flood_prop": prop,
                    "n": len(per_trial),
                    "holds": bool(0.8 <= loss / b <= 1.2 and 0.3 <= prop <= 0.7),
                }
            )
    if not rows:
        return Verdict(INCONCLUSIVE, "no flood level >= 0.05 was reached")
    held = sum(r["holds"] for r in rows)
    text = f"holds for {held}/{len(rows)} reached (eta, b)"
    fails = [
        f"eta={r['eta']} b={r['b']}: loss/b={r['loss_over_b']:.2f}, prop={r['flood_prop']:.2f}" for r in rows if not r["holds"]
    ]
    if fails:
        text += "; fails at " + ", ".join(fails)
    common = dict(effect=held / len(rows), n_seeds=min(r["n"] for r in rows), threshold=1.0, detail=rows)
    if held == len(rows):
        return Verdict(SUPPORTED, text, **common)
    if len(rows) - held > len(rows) / 2:
        return Verdict(REFUTED, text, **common)
    return Verdict(INCONCLUSIVE, text, **common)


def _slopes(t: Tables, names: list[str]) -> dict[str, float]:
    eps = t.check("eps")
    return {n: loglog_slope(eps, t.check(f"{n}/err")) for n in names if len(t.check(f"{n}/err")) == len(eps) > 1}


def check_f4(t: Tables) -> Verdict:
    """F4: E1 error <= 1e-12 on random SPD quadratics and E2 slopes in [2.7, 3.3]."""
    e1 = t.check("e1/abs_err")
    slopes = _slopes(t, ["e2_product", "e2_mlp"])
    if not e1 or len(slopes) < 2:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: exact checks missing")
    e1_ok = max(e1) <= E1_TOLERANCE
    e2_ok = all(SLOPE_RANGE[0] <= s <= SLOPE_RANGE[1] for s in slopes.values())
    text = f"E1 max error {max(e1):.1e} (tol {E1_TOLERANCE:g}); E2 slopes " + ", ".join(
        f"{k} {v:.2f}" for k, v in slopes.items()
    )
    detail = [{"check": "E1", "value": max(e1)}, *({"check": k, "value": v} for k, v in slopes.items())]
    return Verdict(
        SUPPORTED if e1_ok and e2_ok else REFUTED,
        text,
        effect=min(slopes.values()),
        threshold=E1_TOLERANCE,
        n_seeds=len(e1),
        detail=detail,
    )


def check_f5(t: Tables) -> Verdict:
    """F5: lambda_max(b*) < lambda_max(0), one-sided paired t per eta cell (E = off), Holm; >= 50% of cells."""
    ep = endpoints(t)
    if "lambda_max" not in ep:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: lambda_max not logged")
    rows = []
    for label, cell, b_star in _cells(ep, with_e=False):
        pairs = _pairs(ep, cell, b_star, "lambda_max")
        d = (pairs["baseline"] - pairs["flooded"]).to_numpy()  # > 0: flooded is flatter
        flatter, sharper = paired_test(d, "greater"), paired_test(d, "less")
        rows.append(
            {
                **label,
                "b_star": b_star,
                "ci_low": flatter.ci_low,
                "ci_high": flatter.ci_high,
                "lambda_b0": pairs["baseline"].mean(),
                "lambda_b_star": pairs["flooded"].mean(),
                "reduction": flatter.mean,
                "p_flatter": flatter.p,
                "p_sharper": sharper.p,
                "n": flatter.n,
            }
        )
    if not rows:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no finished trials")
    holm_columns(rows, "p_flatter", "p_sharper")
    flat = sum(r["p_flatter_holm"] < ALPHA for r in rows)
    sharp = sum(r["p_sharper_holm"] < ALPHA for r in rows)
    text = f"{flat}/{len(rows)} cells significantly flatter at b*, {sharp} significantly sharper (Holm, one-sided paired t)"
    key = "p_sharper_holm" if sharp else "p_flatter_holm"  # report the cell that decides the verdict
    best = min(rows, key=lambda r: r[key] if not math.isnan(r[key]) else 2)
    common = dict(
        effect=best["reduction"],
        ci_low=best["ci_low"],
        ci_high=best["ci_high"],
        p_value=best[key],
        threshold=ALPHA,
        n_seeds=min(r["n"] for r in rows),
        detail=rows,
    )
    if sharp:
        return Verdict(REFUTED, text, **common)
    if flat >= len(rows) / 2:
        return Verdict(SUPPORTED, text, **common)
    return Verdict(INCONCLUSIVE, f"underpowered: {text}", **common)


def noisy_label_entropy(eta: float, k: int = 10) -> float:
    """H(eta) = -(1 - eta) ln(1 - eta) - eta ln(eta / (K - 1)), the entropy of a symmetric-noise label in nats."""
    return 0.0 if eta == 0 else -(1 - eta) * math.log(1 - eta) - eta * math.log(eta / (k - 1))


def per_seed_best(ep: pd.DataFrame) -> pd.DataFrame:
    """Per (eta, seed), the b > 0 with the best validation accuracy at the last epoch (ties to the smaller b)."""
    off = ep[(ep["E"] == "off") & (ep["b"] > 0)].sort_values(
        ["eta", "seed", "val_acc", "b"], ascending=[True, True, False, True]
    )
    return off.groupby(["eta", "seed"], as_index=False).first()[["eta", "seed", "b"]]


def check_f6(t: Tables) -> Verdict:
    """F6: Spearman rho(eta, per-seed b*) > 0 (p < 0.05) and median b*/H(eta) in [0.5, 2] for every eta > 0."""
    best = per_seed_best(endpoints(t))
    if best["eta"].nunique() < 2:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: needs at least two noise levels")
    if best["b"].nunique() < 2:
        return Verdict(
            INCONCLUSIVE,
            f"b* = {best['b'].iloc[0]} at every noise level and seed: no rank correlation",
            n_seeds=int(best["seed"].nunique()),
        )
    rho_up = stats.spearmanr(best["eta"], best["b"], alternative="greater")
    rho_down = stats.spearmanr(best["eta"], best["b"], alternative="less")
    rho_ci = spearman_ci(best["eta"].to_numpy(), best["b"].to_numpy())
    rows = []
    for eta, g in best[best["eta"] > 0].groupby("eta"):
        ratio = g["b"].to_numpy() / noisy_label_entropy(eta)
        lo, hi = bootstrap_ci(ratio, np.median)
        rows.append(
            {
                "eta": eta,
                "H": noisy_label_entropy(eta),
                "median_ratio": float(np.median(ratio)),
                "ci_low": lo,
                "ci_high": hi,
                "n": len(ratio),
            }
        )
    inside = all(0.5 <= r["median_ratio"] <= 2 for r in rows)
    outside = bool(rows) and all(r["ci_high"] < 0.5 or r["ci_low"] > 2 for r in rows)
    text = f"rho={rho_up.statistic:.2f} (p={rho_up.pvalue:.3g}); median b*/H: " + ", ".join(
        f"eta={r['eta']} {r['median_ratio']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]" for r in rows
    )
    common = dict(
        effect=float(rho_up.statistic),
        ci_low=rho_ci[0],
        ci_high=rho_ci[1],
        p_value=float(rho_up.pvalue),
        threshold=ALPHA,
        n_seeds=int(best["seed"].nunique()),
        detail=rows,
    )
    if rho_down.pvalue < ALPHA or outside:
        return Verdict(REFUTED, text, **common)
    if rho_up.pvalue < ALPHA and inside:
        return Verdict(SUPPORTED, text, **common)
    return Verdict(INCONCLUSIVE, text, **common)


def check_fp1(t: Tables) -> Verdict:
    """F-P1: b = 0 leaves value and gradient unchanged exactly; gradient sign +1 above b, -1 below."""
    vals = {k: t.check(f"fp1/{k}") for k in ("value_err", "grad_err", "sign_above_b", "sign_below_b")}
    if not all(vals.values()):
        return Verdict(FAIL, "exact checks missing")
    ok = (
        vals["value_err"][0] == 0
        and vals["grad_err"][0] == 0
        and vals["sign_above_b"][0] == 1
        and vals["sign_below_b"][0] == -1
    )
    text = ", ".join(f"{k}={v[0]:g}" for k, v in vals.items())
    return Verdict(PASS if ok else FAIL, text, effect=vals["grad_err"][0], threshold=0.0)


def check_fc1(t: Tables) -> Verdict:
    """F-C1: two flooded steps on different mini-batches pass the E2 slope test (they must not: slope ~ 1)."""
    slopes = _slopes(t, ["fc1_mlp"])
    if not slopes:
        return Verdict(PASS, "exact checks missing, so the control cannot show it fails")
    s = slopes["fc1_mlp"]
    passes = SLOPE_RANGE[0] <= s <= SLOPE_RANGE[1]
    return Verdict(
        PASS if passes else FAIL,
        f"different-batch error slope {s:.2f} vs E2 range {SLOPE_RANGE}",
        effect=s,
        threshold=SLOPE_RANGE[0],
    )


def check_fp2(t: Tables) -> Verdict:
    """F-P2: realised flip fraction equals eta within 1/n; no flipped label keeps its class."""
    etas, realised, kept, n = t.check("fp2/eta"), t.check("fp2/realised"), t.check("fp2/kept_class"), t.check("fp2/n")
    if not etas:
        return Verdict(FAIL, "exact checks missing")
    err = max(abs(r - e) for r, e in zip(realised, etas, strict=True))
    ok = err <= 1 / n[0] and max(kept) == 0
    return Verdict(
        PASS if ok else FAIL,
        f"max |realised - eta| = {err:.4f} (1/n = {1 / n[0]:.4f}), kept class {int(max(kept))}",
        effect=err,
        threshold=1 / n[0],
        n_seeds=len(etas),
    )


# Figures: each returns (file stem, matplotlib Figure), or None when its data is missing.
