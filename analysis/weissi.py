"""WEISSI vs L2: the measurements behind the claims and figures, computed from the study's Parquet tables alone.

Cells are the optimiser (and model, data set at full). Each (optimizer, reg) arm is represented by its best setting
on mean validation accuracy over its ok seeds (after tuning one confirmed setting; at smoke two fixed strengths), and
"the better of L2/WD" and "the best WEISSI arm" the same way, never on test. The rules live in the claims.
"""

import dataclasses
import math

import pandas as pd

from analysis.rules import Cell, Superiority
from analysis.verdict import INCONCLUSIVE, SUPPORTED, Tables, Verdict

CELL_KEYS = ("config/model", "config/dataset")
STRENGTHS = ("config/lam", "config/rho", "config/lam1", "config/lam2", "config/lr")  # rho: 06 A1
REG_ORDER = ["none", "l2_coupled", "wd_decoupled", "weissi1", "weissi12"]
WEISSI, L2_WD = ("weissi1", "weissi12"), ("l2_coupled", "wd_decoupled")
W4_SAME = ("w4/sgd_m0_wd_vs_l2", "w4/sgd_m0.9_wd_vs_l2", "w4/adam_wd_vs_l2", "w4/adamw_vs_by_hand")
RENAME = {"config/optimizer": "optimizer", "config/reg": "reg", "val/acc": "val_acc", "test/acc": "test_acc"}
BN = Superiority("test acc of the best WEISSI arm minus the better L2/WD arm on the BN ResNet-18")


def endpoints(t: Tables) -> pd.DataFrame:
    """Final metrics of every main-phase run (any `status`), one row per run, with `setting` (its strengths) and
    `pgd_acc` (at the largest PGD radius)."""
    if t.trials.empty:
        return pd.DataFrame()
    ep, keep = t.trials.rename(columns=RENAME), [c for c in STRENGTHS if c in t.trials]
    name = lambda row: " ".join(f"{c.removeprefix('config/')}={v:.3g}" for c, v in row.items() if pd.notna(v) and v != 0)  # noqa: E731
    ep["setting"] = ep[keep].apply(name, axis=1) if keep else ""
    pgd = max((c for c in ep if c.startswith("test/pgd_acc@")), key=lambda c: float(c.split("@")[1]), default=None)
    ep["pgd_acc"] = ep[pgd] if pgd else math.nan
    return ep


def _cell_cols(ep: pd.DataFrame) -> list[str]:
    return [c for c in CELL_KEYS if c in ep.columns]


def _best(ok: pd.DataFrame, regs: tuple[str, ...]) -> pd.DataFrame:
    """Ok runs of the arm among `regs` whose setting has the best mean validation accuracy (ties: first in order)."""
    sub = ok[ok["reg"].isin(regs)]
    if sub.empty:
        return sub
    means = sub.groupby(["reg", "setting"])["val_acc"].mean().sort_values(ascending=False, kind="stable")
    reg, setting = means.index[0]
    return sub[(sub["reg"] == reg) & (sub["setting"] == setting)]


def best_per_arm(ep: pd.DataFrame) -> pd.DataFrame:
    """The ok runs of every (cell, optimizer, reg) arm at its best setting on validation (empty without any)."""
    groups = [] if ep.empty else ep[ep["status"] == "ok"].groupby(_cell_cols(ep) + ["optimizer"])
    best = [_best(g, (reg,)) for _, g in groups for reg in REG_ORDER if (g["reg"] == reg).any()]
    return pd.concat(best) if best else pd.DataFrame()


def versus(t: Tables, col: str, mine: tuple, theirs: tuple, keep, min_seeds: int, beside: str = "") -> list[Cell]:
    """Per cell that `keep` selects and that runs both sides, `col` of the best arm of `mine` minus the best of
    `theirs` per seed ok in both; `beside`: a metric whose mean difference goes into the label. Runs not ok are named
    in `left_out`; an arm read (any setting of either side) with fewer than `min_seeds` ok seeds leaves only the seeds
    every arm finished, too few to decide (their direction still shows)."""
    ep, cells = endpoints(t), []
    for key, g in [] if ep.empty else ep.groupby(_cell_cols(ep) + ["optimizer"], sort=True):
        cell = dict(zip([c.removeprefix("config/") for c in _cell_cols(ep)] + ["optimizer"], key, strict=True))
        read = g[g["reg"].isin(mine + theirs)]
        if not keep(cell) or not (read["reg"].isin(mine).any() and read["reg"].isin(theirs).any()):
            continue
        ok = read[read["status"] == "ok"]
        a, b = _best(ok, mine).set_index("seed"), _best(ok, theirs).set_index("seed")
        seeds = set(a.index) & set(b.index)
        arms = [set(arm.loc[arm["status"] == "ok", "seed"]) for _, arm in read.groupby(["reg", "setting"])]
        if min(map(len, arms)) < min_seeds:
            seeds = seeds.intersection(*arms)
        d = (a[col] - b[col]).reindex(sorted(seeds))
        gone = [f"seed {r.seed} of {r.reg} ({r.setting}): {r.status}" for r in read.itertuples() if r.status != "ok"]
        gone += [f"seed {s}: no {col}" for s in d.index[d.isna()]]
        label = ", ".join(map(str, cell.values()))
        if beside and seeds:
            label += f" ({beside} {(a[beside] - b[beside]).reindex(sorted(seeds)).mean():+.3g})"
        cells.append(Cell(label, d.dropna().tolist(), tuple(gone)))
    return cells


def homogeneous(cell: dict) -> bool:
    """The cells of W5-W7: every network but the BN ResNet-18 of W-D1."""
    return cell.get("model", "mlp") != "resnet18"


def check_wd1(t: Tables) -> Verdict:
    """W-D1 (diagnostic, reported without a claim): W5 at delta 0 on the BN ResNet-18 cells; a win: significant (Holm)."""
    cells = versus(t, "test_acc", WEISSI, L2_WD, lambda c: c.get("model") == "resnet18", BN.min_seeds)
    if not cells:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: the BN ResNet-18 cells run at full only")
    v = BN.decide(cells)
    win = "a significant WEISSI win on the BN net (not explained by the invariance argument)"
    note = win if any(r["decision"] == SUPPORTED for r in v.detail) else "no significant win"
    return dataclasses.replace(v, verdict=INCONCLUSIVE, reason=f"{note}: {v.reason}")


# Exact claims and controls: the quantities their bounds read.


def w1(t: Tables) -> dict:
    """W1: under each random prod-gamma = 1 shift, the output change, |delta WEISSI| and |delta L2|."""
    keys = {"relative output change": "out_rel_diff", "|delta WEISSI|": "weissi_abs_diff", "|delta L2|": "l2_abs_diff"}
    return {name: t.check(f"w1/{key}") for name, key in keys.items()}


def w2(t: Tables) -> dict:
    """W2: the balanced L2 against its AM-GM bound and the original L2, and the output change."""
    after, bound, before, out = (t.check(f"w2/{k}") for k in ("l2_after", "bound", "l2_before", "out_rel_diff"))
    if not (after and bound and before):
        return {}
    return {"relative error of the balanced L2 to the AM-GM bound": [abs(after[0] - bound[0]) / bound[0]],
            "balanced L2 / original L2": [after[0] / before[0]], "relative output change": out}  # fmt: skip


def w3(t: Tables) -> dict:
    """W3: D_T / D_0 without a regulariser and with WEISSI against 1, with L2 against exp(-4 lambda lr T)."""
    tt, lam = t.check("w3/t"), t.check("w3/lam")
    if not tt:
        return {}
    ratio = {reg: t.check(f"w3/{reg}/D")[-1] / t.check(f"w3/{reg}/D")[0] for reg in ("none", "weissi", "l2")}
    decay = math.exp(-4 * lam[0] * tt[-1])
    return {"|D_T/D_0 - 1| without a regulariser": [abs(ratio["none"] - 1)],
            "|D_T/D_0 - 1| with WEISSI": [abs(ratio["weissi"] - 1)],
            "|(D_T/D_0) / exp(-4 lambda lr T) - 1| with L2": [abs(ratio["l2"] / decay - 1)]}  # fmt: skip


def w4(t: Tables) -> dict:
    """W4: max |delta theta| per step of each optimiser pair."""
    return {k.removeprefix("w4/"): t.check(k) for k in (*W4_SAME, "w4/adamw_vs_adam_l2")}


def wp1(t: Tables) -> dict:
    """W-P1: WEISSI(0, 0) and the formula's relative error against a per-layer Python loop."""
    return {"|WEISSI(0, 0)|": [abs(v) for v in t.check("wp1/zero_value")], "loop relative error": t.check("wp1/loop_rel_err")}
