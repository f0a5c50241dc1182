"""The figures of study `fast_mlm`, drawn from its tables.

The checks they illustrate, and the measurements both use, live in `analysis/fast_mlm.py`.
"""

import numpy as np

from analysis import fast_mlm as fa
from analysis import style
from analysis.verdict import Tables

COLOURS = {"mlm15": style.BASELINE, "mlm40": "#7f7f7f", "tta": style.FLOODED, "leaky": style.CONTROL, "l2r": "#2ca02c"}
"""Colour of each arm: MLM-15 as the baseline, T-TA as the technique, the leaky control in red."""


def fig_efficiency(t: Tables):
    """Figure 1: validation pnll vs step and vs training seconds, bands over seeds, MLM-15's final pnll."""
    runs = fa.lm_runs(t)
    if (where := fa.primary(runs)) is None:
        return None
    cell = fa._cell(runs, *where)
    cell = cell[cell["steps"] == cell[cell["arm"] == "mlm15"]["steps"].max()]  # the control runs on its own step budget
    fig, axes = style.plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    cols = ["trial_id", "step", "value"]
    curves = t.curves("val/pnll")[cols].merge(t.curves("time/train_s")[cols], on=["trial_id", "step"], suffixes=("", "_s"))
    for name, g in curves.merge(cell[["trial_id", "arm"]], on="trial_id").groupby("arm"):
        for ax, x in zip(axes, ("step", "value_s"), strict=True):
            s = g.groupby("step").agg(x=(x, "mean"), mean=("value", "mean"), lo=("value", "min"), hi=("value", "max"))
            ax.plot(s["x"], s["mean"], color=COLOURS.get(name), label=name, marker=".")
            ax.fill_between(s["x"], s["lo"], s["hi"], color=COLOURS.get(name), alpha=0.2)
    for ax in axes:
        ax.axhline(cell[cell["arm"] == "mlm15"]["val/pnll"].mean(), color=style.HIGHLIGHT, ls="--", lw=1, label="MLM-15 final")
    if (res := fa.t1_ratio(t, resamples=0)) and res["s_tta"]:  # the step it reaches the target; the CI is the check's
        axes[0].axvline(res["s_tta"], color=style.HIGHLIGHT, lw=0.8)
    axes[0].set(xlabel="step", ylabel="validation pnll (nats/token)", title=f"{where[0]}, depth {where[1]} (band: min-max)")
    axes[1].set(xlabel="training seconds (one core)", title="T1 in wall-clock")
    axes[0].legend(fontsize=7)
    return "efficiency", fig


def fig_oracle_gap(t: Tables):
    """Figure 2: HMM test pnll minus the oracle's, per seed and objective, faceted by depth."""
    gaps = fa.oracle_gaps(t)
    if gaps.empty:
        return None
    depths = sorted(gaps["depth"].unique())
    fig, axes = style.plt.subplots(1, len(depths), figsize=(4.5 * len(depths), 3.6), squeeze=False, sharey=True)
    order = [a for a in fa.ARMS if a in set(gaps["arm"])]
    for ax, d in zip(axes[0], depths, strict=True):
        for i, a in enumerate(order):
            v = gaps[(gaps["depth"] == d) & (gaps["arm"] == a)]["excess"]
            ax.scatter([i] * len(v), v, color=COLOURS[a])
        ax.axhline(0, color="grey", lw=0.8)
        ax.axhline(-fa.LEAKY_GAP, color=style.CONTROL, ls=":", lw=0.8)
        ax.set_xticks(range(len(order)), order)
        ax.set(title=f"depth {d}", ylabel="test pnll - oracle (nats)")
    fig.suptitle("T2/T-C1: below zero means the model sees x_i", y=1.02)
    return "oracle_gap", fig


def fig_one_layer_only(t: Tables):
    """Figure 3: leak-test gradient vs number of layers, T-TA and leaky stacking (log y, floor 1e-16)."""
    tta, leaky, tol = t.check("leak/tta"), t.check("leak/leaky"), fa.LEAK.tolerance
    if not tta or not leaky:
        return None
    fig, ax = style.plt.subplots(figsize=(5, 3.6))
    for name, vals in (("tta", tta), ("leaky", leaky)):
        ax.plot(range(1, len(vals) + 1), np.maximum(vals, 1e-16), marker="o", color=COLOURS[name], label=name)
    ax.axhline(tol, color="grey", ls=":", lw=0.8, label=f"tolerance {tol:g}")
    ax.set(yscale="log", xlabel="layers", ylabel="max |d logit_i / d e_i|", title='"the mask holds for one layer only"')
    ax.set_xticks(range(1, len(tta) + 1))
    ax.legend(fontsize=7)
    return "one_layer_only", fig


def fig_non_inferiority(t: Tables):
    """Figure 4: pnll(T-TA) / pnll(better MLM) with the 95% interval of T3's rule and the 1.02 margin, rows data x
    depth, coloured by the rule's decision in that cell alone."""
    runs = fa.lm_runs(t)
    where = sorted({(d, int(dep)) for d, dep in zip(runs["data"], runs["depth"], strict=True)})
    cells = [c for d, dep in where if len((c := fa.ni_cell(t, d, dep)).diffs)]
    if not cells:
        return None
    fig, ax = style.plt.subplots(figsize=(6, 1 + 0.6 * len(cells)))
    for i, c in enumerate(cells):
        r = fa.NONINFERIORITY.decide([c]).detail[0]
        lo, hi = (r["mean"] if np.isnan(r[k]) else r[k] for k in ("ci_low", "ci_high"))  # one seed: the point alone
        ax.errorbar(1 + r["mean"], i, xerr=[[r["mean"] - lo], [hi - r["mean"]]], fmt="o",
                    color=style.VERDICT.get(r["decision"], "k"))  # fmt: skip
    margin = 1 + fa.NONINFERIORITY.margin
    ax.axvline(margin, color=style.CONTROL, ls="--", lw=1, label=f"margin {margin:g}")
    ax.axvline(1, color="grey", lw=0.8)
    ax.set_yticks(range(len(cells)), [c.label for c in cells])
    ax.set(xlabel="test pnll ratio T-TA / better MLM (mean over seeds, 95% t-interval)", title="T3/T5 non-inferiority")
    ax.legend(fontsize=7)
    return "non_inferiority", fig


def fig_throughput(t: Tables):
    """Figure 5: sentences per second vs length T (log-log), with 6x and T x the MLM's throughput."""
    wide, _, rows = fa.timing(t)
    if wide.empty or "time/windows" not in wide or "time/mlm_len_s" not in rows:
        return None
    lengths, n = rows["length"].to_numpy(), float(wide["time/windows"].dropna().iloc[0])
    fig, ax = style.plt.subplots(figsize=(5, 3.6))
    mlm = n / rows["time/mlm_len_s"].to_numpy()
    ax.plot(lengths, n / rows["time/tta_len_s"], marker="o", color=COLOURS["tta"], label="T-TA (1 pass)")
    ax.plot(lengths, mlm, marker="o", color=COLOURS["mlm15"], label="MLM (T passes)")
    ax.plot(lengths, fa.SPEEDUP * mlm, ls=":", color="grey", label="6x MLM")
    ax.plot(lengths, lengths * mlm, ls="--", color="grey", label="T x MLM")
    ax.set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="windows / s (one thread, batch 32)",
           title="T4 scoring throughput")  # fmt: skip
    ax.legend(fontsize=7)
    return "throughput", fig
