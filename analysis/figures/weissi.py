"""The figures of study `weissi`, drawn from its tables.

The checks they illustrate, and the measurements both use, live in `analysis/weissi.py`.
"""

import math

import numpy as np
import pandas as pd

from analysis import style
from analysis.verdict import Tables
from analysis.weissi import REG_ORDER, _cell_cols, best_per_arm, endpoints, w4

REG_COLOURS = dict(zip(REG_ORDER, [style.BASELINE, "#9ecae1", "#3182bd", "#fdae6b", "#e6550d"], strict=True))
SHIFTS = {
    "output (exact rule)": "w1/out_rel_diff",
    "WEISSI": "w1/weissi_abs_diff",
    "L2": "w1/l2_abs_diff",
    "output (naive bias rule, W-C1)": "wc1/out_rel_diff",
}
"""W1's quantities under a random prod-gamma = 1 shift, and the naive-bias control W-C1's output."""


def fig_invariance(t: Tables):
    """|delta output|, |delta L2|, |delta WEISSI| under random prod-gamma = 1 shifts, and the naive-bias control (W1, W-C1)."""
    if not t.check("w1/out_rel_diff"):
        return None
    df = pd.DataFrame([(q, v) for q, key in SHIFTS.items() for v in t.check(key)], columns=["quantity", "change"])
    df["change"] = df["change"].clip(lower=1e-18)
    fig, ax = style.plt.subplots(figsize=(7, 3.6))
    palette = {q: (style.CONTROL if "W-C1" in q else style.FLOODED) for q in df["quantity"].unique()}
    style.sns.stripplot(data=df, x="quantity", y="change", hue="quantity", palette=palette, ax=ax, legend=False)
    ax.set(yscale="log", xlabel="", ylabel="change under the shift (floored at 1e-18)")
    ax.axhline(1e-9, ls="--", color="grey", lw=0.8)
    ax.tick_params(axis="x", labelsize=7)
    fig.suptitle("W1 / W-C1: a prod-gamma = 1 shift keeps the function and WEISSI, not L2 (dashed: 1e-9)", y=1.02)
    return "invariance", fig


def fig_orbit(t: Tables):
    """L2 and WEISSI along a one-parameter shift of a 2-layer net: U-shaped L2 with its minimum, flat WEISSI (W2)."""
    lg = t.check("w2/orbit_log_gamma")
    if not lg:
        return None
    l2v = t.check("w2/orbit_l2")
    i = int(np.argmin(l2v))
    fig, ax = style.plt.subplots(figsize=(5.5, 3.6))
    ax.plot(lg, l2v, color=style.BASELINE, label="weight L2")
    ax.plot(lg[i], l2v[i], "o", color=style.HIGHLIGHT, label="balanced (AM-GM minimum)")
    ax2 = ax.twinx()
    ax2.plot(lg, t.check("w2/orbit_weissi"), color=style.FLOODED, label="WEISSI (lambda1 = 1)")
    ax.set(xlabel="log gamma (layer 1 x gamma, layer 2 / gamma)", ylabel="sum ||W_l||^2")
    ax2.set_ylabel("sum log ||W_l||", color=style.FLOODED)
    ax.legend(loc="upper center", fontsize=7)
    ax2.legend(loc="upper right", fontsize=7)
    fig.suptitle("W2: along the invariant orbit L2 has a minimum, WEISSI is flat", y=1.02)
    return "orbit", fig


def fig_balance(t: Tables):
    """D(t) = ||W1||^2 + ||b1||^2 - ||W2||^2 for none / WEISSI / L2, log y, with the exp(-4 lambda t) guide (W3)."""
    tt = t.check("w3/t")
    if not tt:
        return None
    fig, ax = style.plt.subplots(figsize=(5.5, 3.6))
    for reg, color in [("none", style.BASELINE), ("weissi", style.FLOODED), ("l2", style.HIGHLIGHT)]:
        ax.plot(tt, t.check(f"w3/{reg}/D"), color=color, label=reg, ls="--" if reg == "weissi" else "-")
    d0 = t.check("w3/l2/D")[0]
    ax.plot(tt, [d0 * math.exp(-4 * t.check("w3/lam")[0] * x) for x in tt], ":", color="grey", label="D0 exp(-4 lambda t)")
    ax.set(yscale="log", xlabel="t = lr x steps", ylabel="D(t)")
    ax.legend(fontsize=7)
    fig.suptitle("W3: layer balance is conserved without a regulariser and with WEISSI; L2 forces it to 0", y=1.02)
    return "balance_dynamics", fig


def fig_optimisers(t: Tables):
    """max |delta theta| vs step for the optimiser pairs of W4 (log y)."""
    pairs = w4(t)
    if not pairs["adamw_vs_adam_l2"]:
        return None
    fig, ax = style.plt.subplots(figsize=(5.5, 3.6))
    for pair, v in pairs.items():
        ax.semilogy(range(1, len(v) + 1), np.maximum(v, 1e-18), label=pair, lw=2 if "adamw_vs_adam" in pair else 1)
    ax.axhline(1e-10, ls="--", color="grey", lw=0.8)
    ax.set(xlabel="step", ylabel="max |theta_a - theta_b| (floored at 1e-18)")
    ax.legend(fontsize=6)
    fig.suptitle("W4: weight_decay is L2 in the loss for SGD and Adam; AdamW is decoupled", y=1.02)
    return "optimiser_equivalence", fig


def fig_isolation(t: Tables):
    """Test accuracy by reg, point-range over seeds, rows = optimiser (W5, W7); each arm at its best setting."""
    best = best_per_arm(endpoints(t))
    if best.empty:
        return None
    cols = _cell_cols(best)
    g = style.sns.catplot(
        data=best, x="reg", y="test_acc", row="optimizer", col=cols[0] if cols else None, kind="point", errorbar=("ci", 95),
        order=[r for r in REG_ORDER if r in set(best["reg"])], color=style.FLOODED, linestyle="none", height=2.8,
        aspect=1.8, sharey=False,
    )  # fmt: skip
    g.set_axis_labels("regulariser (best setting on validation)", "test accuracy")
    g.figure.suptitle("W5 / W7: test accuracy per arm (95% CI over seeds)", y=1.02)
    return "isolation", g.figure


def fig_robustness(t: Tables):
    """Accuracy under FGSM and PGD vs eps per reg, and the input-gradient norm per reg (W6)."""
    best = best_per_arm(endpoints(t))
    if best.empty:
        return None
    attacks = ["test_acc", *(c for c in best if c.startswith(("test/fgsm_acc@", "test/pgd_acc@")))]
    long = best.melt(id_vars=["optimizer", "reg", "seed"], value_vars=attacks, var_name="attack", value_name="acc")
    long["eps"] = long["attack"].map(lambda a: 0.0 if a == "test_acc" else float(a.split("@")[1]))
    long["kind"] = long["attack"].map(lambda a: "PGD" if "pgd" in a else "FGSM" if "fgsm" in a else "clean")
    fig, axes = style.plt.subplots(1, 2, figsize=(10, 3.8))
    for reg, g in long.groupby("reg"):
        for kind, ls in [("FGSM", "--"), ("PGD", "-")]:
            s = g[g["kind"].isin(["clean", kind])].groupby("eps")["acc"].mean()
            axes[0].plot(s.index, s.values, ls, marker="o", color=REG_COLOURS.get(reg), label=f"{reg} {kind}")
    axes[0].set(xlabel="eps (input units)", ylabel="accuracy (mean over seeds and optimisers)")
    axes[0].legend(fontsize=6)
    style.sns.pointplot(data=best, x="reg", y="test/input_grad_norm", hue="optimizer", errorbar=("ci", 95), ax=axes[1],
                        linestyle="none", dodge=0.3, order=[r for r in REG_ORDER if r in set(best["reg"])])  # fmt: skip
    axes[1].set_ylabel("mean ||grad_x CE||")
    axes[1].tick_params(axis="x", labelsize=7)
    fig.suptitle("W6: robustness (FGSM dashed, PGD solid) and input-gradient norm per arm", y=1.02)
    return "robustness", fig


def fig_norms(t: Tables):
    """log10 prod ||W_l|| and the layer-norm spread per epoch, hue = reg (best setting per arm)."""
    best = best_per_arm(endpoints(t))
    if best.empty:
        return None
    curves = pd.concat([t.curves(m).assign(metric=m) for m in ("weights/log10_prod_norm", "weights/spread")])
    curves = curves[curves["trial_id"].isin(best["trial_id"])]
    curves = curves.rename(columns={"config/reg": "reg", "config/optimizer": "optimizer"})
    if curves.empty:
        return None
    g = style.sns.relplot(data=curves, x="step", y="value", hue="reg", row="metric", col="optimizer", kind="line",
                          errorbar="se", palette=REG_COLOURS, height=2.8, aspect=1.4, facet_kws={"sharey": "row"})  # fmt: skip
    g.set_axis_labels("epoch", "")
    g.figure.suptitle("Weight norms over training: log10 of the product of layer norms, and max/min spread", y=1.03)
    return "norms", g.figure
