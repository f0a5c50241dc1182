"""Flooding: the measurements behind the claims, computed from the study's Parquet tables alone.

Cells are (label noise eta, early stopping E) at local, (eta, E = off) at smoke; the full budget adds data set,
weight decay and augmentation to the cell. Early stopping is post hoc: E = on reads each trial at the epoch of
its best (noisy) validation accuracy, E = off at the last epoch. b* is chosen per cell among b > 0 by mean
validation accuracy over the ok seeds (ties go to the smaller b). Runs that are not ok (diverged, failed) or
missing are named where a measurement would have read them, never dropped silently.
"""

import math

import numpy as np
import pandas as pd

from analysis.rules import Cell
from analysis.stats import loglog_slope
from analysis.verdict import FAIL, INCONCLUSIVE, Tables, Verdict

CELL_KEYS = ("config/dataset", "config/weight_decay", "config/augment")  # full-budget factors, when present
SHARPNESS, SUBSET_LOSS = "train/asam_sharpness", "train/subset_loss"
"""F-D1 at the end of training: (ii) the largest rise of the loss on the lambda_max examples within the adaptive box;
(i)'s L_train, the loss on the examples (and noisy labels) lambda_max is measured on."""
EQ = {f"train/equal_loss_{k}": k.removeprefix("asam_") for k in ("level", "lambda_max", "subset_loss", "asam_sharpness")}
"""F-D1 (iii), logged by b = 0 runs at the first epoch (the step) whose training loss fell to each flood level of
their cell: one series element per level first reached then, the level and the measures at that epoch."""
EQ_LEVEL, EQ_LAMBDA_MAX, EQ_SUBSET_LOSS, EQ_SHARPNESS = EQ
RENAME = {"config/label_noise": "eta", "config/flood_level": "b", "train/lambda_max": "lambda_max",
          SHARPNESS: "sharpness", SUBSET_LOSS: "subset_loss"}  # fmt: skip
FD1_MEASURES = {
    "(i) lambda_max/L_train, end": ("curvature_per_loss", "end"),
    "(ii) sharpness, end": ("sharpness", "end"),
    "(iii) lambda_max/L_train, b=0 at equal loss": ("curvature_per_loss", "equal_loss"),
    "(iii) sharpness, b=0 at equal loss": ("sharpness", "equal_loss"),
}
"""F-D1's comparisons: the value at b* (end of training) against b = 0 at the end or at equal loss."""
E2_ORDER = 3  # the two-step error is O(eps^3): F4's E2 rule bounds |slope - 3|


def runs(t: Tables) -> pd.DataFrame:
    """Every training run, whatever its status, with `eta`, `b` (and `lambda_max` when logged) named."""
    return t.trials.rename(columns=RENAME)


def endpoints(t: Tables) -> pd.DataFrame:
    """One row per (ok trial, E): columns `trial_id, eta, b, seed, E, epoch, val_acc, test_acc`, `lambda_max`,
    `sharpness` and `subset_loss` when logged and any cell keys (accuracies at the read-out epoch)."""
    ok = runs(t).query("status == 'ok'")
    if ok.empty:
        return pd.DataFrame(columns=["trial_id", "eta", "b", "seed", "E", "epoch", "val_acc", "test_acc"])
    acc = t.metrics[t.metrics["metric"].isin(["val/acc", "test/acc"]) & t.metrics["trial_id"].isin(ok["trial_id"])]
    wide = acc.pivot_table(index=["trial_id", "step"], columns="metric", values="value").reset_index()
    last = wide.loc[wide.groupby("trial_id")["step"].idxmax()].assign(E="off")
    best = wide.loc[wide.groupby("trial_id")["val/acc"].idxmax()].assign(E="on")  # first epoch of the best val acc
    keep = ["trial_id", "seed", "eta", "b", *[c for c in (*CELL_KEYS, "lambda_max", "sharpness", "subset_loss") if c in ok]]
    out = pd.concat([last, best]).merge(ok[keep], on="trial_id")
    return out.rename(columns={"step": "epoch", "val/acc": "val_acc", "test/acc": "test_acc"}).reset_index(drop=True)


def _named(planned: pd.DataFrame, levels) -> tuple[str, ...]:
    """`seed s of b=x: status` for each planned seed whose run at level x is not ok (or is missing)."""
    gone = []
    for b in levels:
        arm = planned[planned["b"] == b]
        gone += [f"seed {s} of b={b:g}: {st}" for s, st in zip(arm["seed"], arm["status"], strict=True) if st != "ok"]
        gone += [f"seed {s} of b={b:g}: missing" for s in sorted(set(planned["seed"]) - set(arm["seed"]))]
    return tuple(gone)


def cells(t: Tables, es: tuple[str, ...] = ("off", "on")) -> list[dict]:
    """Per cell (and read-out E in `es`; smoke reads E = off only): `label`, `key` (cell columns and E), `rows` (its
    endpoint rows), `b_star` and `left_out` (its b* and b = 0 runs that are not ok). Cells come from every planned run,
    whatever its status, so a cell whose runs all failed keeps its place (b* nan)."""
    tr, ep = runs(t), endpoints(t)
    if tr.empty or "eta" not in tr:
        return []
    cols = [c for c in CELL_KEYS if c in tr.columns and tr[c].nunique() > 1] + ["eta"]
    out = []
    for key, planned in tr.groupby(cols):
        for e in ("off",) if t.budget == "smoke" else es:
            key_e = dict(zip(cols, key, strict=True)) | {"E": e}
            rows = ep[np.logical_and.reduce([ep[k] == v for k, v in key_e.items()])] if len(ep) else ep
            flooded = rows[rows["b"] > 0].groupby("b")["val_acc"].mean()
            b_star = float(flooded.idxmax()) if len(flooded) else math.nan  # idxmax: the first, i.e. smallest, b
            label = ", ".join(f"{k.removeprefix('config/')}={v:g}" if k != "E" else f"E={v}" for k, v in key_e.items())
            left = _named(planned, [0.0] if math.isnan(b_star) else [b_star, 0.0])
            out.append({"label": label, "key": key_e, "rows": rows, "b_star": b_star, "left_out": left})
    return out


def pairs(rows: pd.DataFrame, b_star: float, value: str) -> pd.DataFrame:
    """Per seed ok in both arms, `value` at b* (`flooded`) and at b = 0 (`baseline`), indexed by seed."""
    arm = {name: rows[rows["b"] == b].set_index("seed")[value] for name, b in [("flooded", b_star), ("baseline", 0.0)]}
    return pd.DataFrame(arm).dropna()


def paired_cells(t: Tables, value: str, es: tuple[str, ...] = ("off", "on")) -> list[Cell]:
    """Per cell, the per-seed differences `value(b*) - value(0)`; runs left out named (a seed ok in one arm
    without a value counts as left out too)."""
    out = []
    for c in cells(t, es):
        p, arms = pairs(c["rows"], c["b_star"], value), c["rows"][c["rows"]["b"].isin([c["b_star"], 0.0])]
        no_value = tuple(f"seed {s} of b={b:g}: no {value}" for s, b in arms.loc[arms[value].isna(), ["seed", "b"]].to_numpy())
        diffs = (p["flooded"] - p["baseline"]).tolist()
        out.append(Cell(f"{c['label']}, b*={c['b_star']:g}", diffs, c["left_out"] + no_value))
    return out


def measure_f1(t: Tables) -> list[Cell]:
    """F1: per cell, test accuracy at b* minus at b = 0, per seed."""
    return paired_cells(t, "test_acc")


def second_descent(loss: np.ndarray, window: int = 5, rise: float = 0.05, drop: float = 0.05) -> bool:
    """F2's detector on one test-loss curve (per epoch): whether it fires.

    Smooth with a trailing `window`-epoch mean; overfitting starts at the first epoch where the smoothed loss
    exceeds its running minimum by (relative) `rise`; the detector fires if after that some maximum is followed by
    a fall of at least `drop` of that maximum.
    """
    s = pd.Series(loss).rolling(window, min_periods=window).mean().dropna().to_numpy()
    onset = np.flatnonzero(s > (1 + rise) * np.minimum.accumulate(s)) if len(s) >= 2 else []
    if not len(onset):
        return False
    after = s[onset[0] :]
    peaks = np.maximum.accumulate(after)
    return bool(((peaks - after) >= drop * peaks).any())


def measure_f2(t: Tables) -> tuple[list[dict], tuple[str, ...]]:
    """F2: per noisy cell, the share of ok seeds whose test loss shows a second descent at b* and at b = 0 (`n`:
    the smaller arm), and the runs left out."""
    fires = {tid: second_descent(g["value"].to_numpy()) for tid, g in t.curves("test/loss").groupby("trial_id")}
    rows, gone = [], []
    for c in (c for c in cells(t) if c["key"]["eta"] > 0):
        arms = {b: c["rows"].loc[c["rows"]["b"] == b, ["seed", "trial_id"]].to_numpy() for b in (c["b_star"], 0.0)}
        rate = [[fires[i] for _, i in a if i in fires] for a in arms.values()]
        gone += [f"{c['label']}: {x}" for x in c["left_out"]]
        gone += [f"{c['label']}: seed {s} of b={b:g}: no test/loss" for b, a in arms.items() for s, i in a if i not in fires]
        star, zero = (float(np.mean(v)) if v else math.nan for v in rate)
        rows.append(dict(cell=c["label"], b_star=c["b_star"], fires_b_star=star, fires_b0=zero, n=min(map(len, rate))))
    return rows, tuple(gone)


def measure_f3(t: Tables) -> tuple[list[dict], str]:
    """F3: per (eta, b > 0) reached in some ok seed (flood proportion > 0 in some epoch), over the seeds that reached
    it, the mean training loss / b and flood proportion over the last 20% of epochs, and the runs left out there;
    and the budget (which sets the minimum number of seeds)."""
    tr = runs(t)
    ok = tr[tr["status"] == "ok"]
    m = t.metrics[t.metrics["metric"].isin(["train/loss", "train/flood_prop"]) & t.metrics["trial_id"].isin(ok["trial_id"])]
    if m.empty:
        return [], t.budget
    wide = m.pivot_table(index=["trial_id", "step"], columns="metric", values="value").reset_index()
    wide = wide.merge(ok[["trial_id", "eta", "b"]], on="trial_id")
    rows = []
    for (eta, b), g in wide[wide["b"] > 0].groupby(["eta", "b"]):
        tails = [x[x["step"] > x["step"].max() * 0.8] for _, x in g.groupby("trial_id") if (x["train/flood_prop"] > 0).any()]
        if tails:
            loss, prop = np.mean([[x["train/loss"].mean(), x["train/flood_prop"].mean()] for x in tails], axis=0)
            gone = tuple(f"eta={eta:g} {x}" for x in _named(tr[tr["eta"] == eta], [b]))
            rows.append({"eta": eta, "b": b, "loss_over_b": loss / b, "flood_prop": prop, "n": len(tails), "left_out": gone})
    return rows, t.budget


def slope_errors(t: Tables, names: list[str]) -> dict[str, list[float]]:
    """Per exact check, `|log-log slope of its error over eps - 3|` (empty when the check did not run)."""
    eps = t.check("eps")
    ok = {n: t.check(f"{n}/err") for n in names if len(t.check(f"{n}/err")) == len(eps) > 1}
    return {f"|{n} slope - {E2_ORDER}|": [abs(loglog_slope(eps, ok[n]) - E2_ORDER)] if n in ok else [] for n in names}


def measure_f4(t: Tables) -> tuple:
    """F4: the E1 errors on random SPD quadratics, and the E2 slopes' distance from 3."""
    return {"E1 error": t.check("e1/abs_err")}, slope_errors(t, ["e2_product", "e2_mlp"])


def measure_f5(t: Tables) -> list[Cell] | Verdict:
    """F5: per noise cell (E = off: lambda_max is measured at the end of training), lambda_max(b*) - lambda_max(0)."""
    if "train/lambda_max" not in t.trials:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: lambda_max not logged")
    return paired_cells(t, "lambda_max", es=("off",))


def equal_loss(t: Tables) -> pd.DataFrame:
    """F-D1 (iii): per b = 0 run and level, the first epoch whose training loss fell to the level and the measures
    there: columns `trial_id, epoch, level, lambda_max, subset_loss, sharpness, curvature_per_loss`."""
    m = t.metrics[t.metrics["metric"].isin(list(EQ))]
    if m.empty or set(EQ) - set(m["metric"]):
        return pd.DataFrame(columns=["trial_id", "epoch", *EQ.values(), "curvature_per_loss"])
    wide = m.pivot_table(index=["trial_id", "step", "series"], columns="metric", values="value").reset_index()
    return wide.rename(columns={**EQ, "step": "epoch"}).drop(columns="series").assign(curvature_per_loss=per_loss)


def per_loss(df: pd.DataFrame) -> pd.Series:
    """lambda_max / L_train, nan where the loss is not positive (the ratio is then undefined; the run is named)."""
    return (df["lambda_max"] / df["subset_loss"]).where(df["subset_loss"] > 0)


def measure_fd1(t: Tables) -> tuple[dict[str, list[Cell]], list[dict]] | Verdict:
    """F-D1: per noise cell (E = off, b* as for F5), each of `FD1_MEASURES` at b* minus at b = 0 per seed, and the
    arms' means. At equal loss, b = 0 is read at the first epoch whose training loss fell to b*; a seed where it
    never did is named."""
    if SHARPNESS not in t.trials:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: adaptive sharpness not logged")
    eq, comparisons, means = equal_loss(t), {name: [] for name in FD1_MEASURES}, []
    for c in cells(t, es=("off",)):
        rows, b_star, label = c["rows"], c["b_star"], f"{c['label']}, b*={c['b_star']:g}"
        rows = rows.assign(**{k: rows.get(k, math.nan) for k in ("lambda_max", "subset_loss", "sharpness")})
        zero, flooded = (rows.assign(curvature_per_loss=per_loss)[rows["b"] == b].set_index("seed") for b in (0.0, b_star))
        at = eq[eq["trial_id"].isin(zero["trial_id"]) & np.isclose(eq["level"], b_star)]
        at = at.merge(zero["trial_id"].reset_index(), on="trial_id").set_index("seed")
        for name, (value, when) in FD1_MEASURES.items():
            a, b = flooded[value].dropna(), (zero if when == "end" else at)[value].dropna()
            both, why = a.index.intersection(b.index), f"no {value}" if when == "end" else "never at b*"
            gone = [f"seed {s} of b={b_star:g}: no {value}" for s in flooded.index.difference(a.index)]
            gone += [f"seed {s} of b=0: {why}" for s in zero.index.difference(b.index)]
            comparisons[name].append(Cell(label, (a[both] - b[both]).tolist(), c["left_out"] + tuple(gone)))
            means.append({"measure": name, "cell": label, "b_star": a[both].mean(), "b0": b[both].mean(), "n": len(both)})
    return comparisons, means


def noisy_label_entropy(eta: float, k: int = 10) -> float:
    """H(eta) = -(1 - eta) ln(1 - eta) - eta ln(eta / (K - 1)), the entropy of a symmetric-noise label in nats."""
    return 0.0 if eta == 0 else -(1 - eta) * math.log(1 - eta) - eta * math.log(eta / (k - 1))


def per_seed_best(ep: pd.DataFrame) -> pd.DataFrame:
    """Per (eta, seed), the b > 0 with the best validation accuracy at the last epoch (ties to the smaller b)."""
    off = ep[(ep["E"] == "off") & (ep["b"] > 0)].sort_values(["eta", "seed", "val_acc", "b"], ascending=[1, 1, 0, 1])
    return off.groupby(["eta", "seed"], as_index=False).first()[["eta", "seed", "b"]]


def measure_f6(t: Tables) -> tuple | Verdict:
    """F6: per-seed b* over (eta, seed), H(eta) beside it, the runs b* could not be chosen from, and the planned etas."""
    best, tr = per_seed_best(endpoints(t)), runs(t)
    if "eta" not in tr or tr["eta"].nunique() < 2:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: needs at least two noise levels")
    failed = tr[(tr["status"] != "ok") & (tr["b"] > 0)]
    gone = tuple(f"eta={e:g} b={b:g} seed {s}: {st}" for e, b, s, st in failed[["eta", "b", "seed", "status"]].to_numpy())
    entropy = best["eta"].map(noisy_label_entropy).to_numpy()
    return best["eta"].to_numpy(), best["b"].to_numpy(), entropy, gone, tuple(sorted(tr["eta"].unique()))


def measure_fp1(t: Tables) -> dict | Verdict:
    """F-P1: the b = 0 value and gradient errors, and how far each gradient sign is from +1 above b and -1 below."""
    vals = {k: t.check(f"fp1/{k}") for k in ("value_err", "grad_err", "sign_above_b", "sign_below_b")}
    if not all(vals.values()):
        return Verdict(FAIL, "exact checks missing")
    return {"value error": vals["value_err"], "gradient error": vals["grad_err"],
            "|sign above b - 1|": [abs(s - 1) for s in vals["sign_above_b"]],
            "|sign below b + 1|": [abs(s + 1) for s in vals["sign_below_b"]]}  # fmt: skip


def measure_fc1(t: Tables) -> dict:
    """F-C1: the different-batch error slope's distance from 3 (E2's rule applied to it)."""
    return slope_errors(t, ["fc1_mlp"])


def measure_fp2(t: Tables) -> tuple | Verdict:
    """F-P2: per eta, |realised flip fraction - eta| in labels (times n), and flipped labels that kept their class."""
    etas, realised, kept, n = (t.check(f"fp2/{k}") for k in ("eta", "realised", "kept_class", "n"))
    if not etas:
        return Verdict(FAIL, "exact checks missing")
    off = [abs(r - e) * n[0] for r, e in zip(realised, etas, strict=True)]
    return {"|realised - eta| x n (labels)": off}, {"flipped labels that kept their class": [abs(k) for k in kept]}
