"""The figures of study `pg_vs_zo`, drawn from its tables.

The checks they illustrate, and the measurements both use, live in `analysis/pg_vs_zo.py`.
"""

import numpy as np
import pandas as pd

from analysis import style
from analysis.pg_vs_zo import CHANCE, METHOD_COLOURS, check_z6, cosines, runs
from analysis.verdict import Tables


def fig_identities(t: Tables):
    """REINFORCE vs ZO terms on y = x (Z1), and the Gumbel estimate vs the exact softmax gradient (Z3)."""
    pg, zo = t.check("z1/pg"), t.check("z1/zo")
    if not pg:
        return None
    fig, axes = style.plt.subplots(1, 2, figsize=(9, 3.8))
    axes[0].scatter(zo, pg, s=8, color=style.FLOODED)
    lim = [min(zo + pg), max(zo + pg)]
    axes[0].plot(lim, lim, ":", color="grey")
    axes[0].set_xlabel("ZO term (f(theta + eps u) - f(theta)) u / eps")
    axes[0].set_ylabel("Gaussian-policy REINFORCE term")
    s = runs(t, "stats")
    scale = s.groupby("config/stat_dtype")["stats/z1_max_diff"].max() if "stats/z1_max_diff" in s else pd.Series()
    note = ", ".join(f"{k} {v:.1e}" for k, v in scale.items()) or "not run"
    axes[0].set_title(f"max |delta| {t.check('z1/max_abs_diff')[0]:.1e} (float64); at scale: {note}", fontsize=7)
    est, exact, se = np.array(t.check("z3/estimate")), np.array(t.check("z3/exact")), np.array(t.check("z3/se"))
    k = np.arange(len(est))
    axes[1].bar(k - 0.2, exact, width=0.4, color=style.BASELINE, label="exact grad softmax_t")
    axes[1].errorbar(k + 0.2, est, yerr=2 * se, fmt="o", color=style.HIGHLIGHT, label="Gumbel noise score (±2 s.e.)")
    axes[1].set_xlabel("logit k")
    axes[1].legend(fontsize=7)
    fig.suptitle("Z1 / Z3: policy gradient and perturbation estimators agree", y=1.02)
    return "identities", fig


def fig_variance(t: Tables):
    """log d vs E||g_hat - g||^2 / ||g||^2 with the d + 1 line (Z2)."""
    ds = t.check("z2/d")
    if not ds:
        return None
    fig, ax = style.plt.subplots(figsize=(5, 3.6))
    ax.loglog(ds, t.check("z2/var_ratio"), "o", color=style.FLOODED, label="measured (N = 2e4)")
    grid = np.geomspace(min(ds), max(ds), 50)
    ax.loglog(grid, grid + 1, ":", color="grey", label="d + 1")
    ax.set_xlabel("dimension d")
    ax.set_ylabel("E ||g_hat - g||^2 / ||g||^2")
    ax.legend(fontsize=7)
    fig.suptitle("Z2: single-direction ZO variance grows as d + 1", y=1.02)
    return "variance_vs_dimension", fig


def fig_baselines(t: Tables):
    """Variance trace over the baseline grid with b = 0, f(theta), E f and b* marked (Z4)."""
    grid = t.check("z4/grid")
    if not grid:
        return None
    fig, ax = style.plt.subplots(figsize=(5.5, 3.6))
    ax.plot(grid, t.check("z4/grid_var"), "-", color=style.FLOODED)
    for k, c in [("f_theta", style.BASELINE), ("mean_f", style.HIGHLIGHT), ("b_star", style.CONTROL)]:
        ax.axvline(t.check(f"z4/b_{k}")[0], ls="--", color=c, label=f"b = {k} (var {t.check(f'z4/var_{k}')[0]:.0f})")
    ax.set_xlabel("baseline b")
    ax.set_ylabel("trace of the estimator covariance")
    ax.set_title(f"b = 0 gives {t.check('z4/var_zero')[0]:.0f}", fontsize=8)
    ax.legend(fontsize=7)
    fig.suptitle("Z4: baselines cut the variance; b* is the minimum", y=1.02)
    return "baselines", fig


def fig_cosine(t: Tables):
    """log q vs E[cos] (log-log), hue = sigma, facets dtype x model, with the sqrt(q / d) guide (Z2 at scale)."""
    df = cosines(t, "cos")
    if df.empty:
        return None
    df["value"] = df["value"].clip(lower=1e-4)
    g = style.sns.relplot(
        data=df,
        x="q",
        y="value",
        hue="sigma",
        col="model",
        row="dtype",
        kind="line",
        marker="o",
        palette="viridis",
        height=2.8,
        aspect=1.2,
        facet_kws={"sharey": False},
    )
    for (_, model), ax in g.axes_dict.items():
        d = df[df["model"] == model]["d"].iloc[0]
        qs = np.array(sorted(df["q"].unique()))
        ax.plot(qs, np.sqrt(qs / d), ":", color="grey")
        ax.set_xscale("log")
        ax.set_yscale("log")
    g.figure.suptitle("Z2 at scale: cosine of the ZO estimate to the gradient grows as sqrt(q / d) (dotted)", y=1.03)
    return "cosine_vs_q", g.figure


def fig_curves(t: Tables):
    """Validation accuracy vs example-forward equivalents (log x), hue = method, facet = model (Z5, Z6)."""
    c = t.curves("val/acc")
    c = c[c["trial_id"].isin(runs(t)["trial_id"]) & (c["step"] > 0)].rename(
        columns={"config/method": "method", "config/model": "model"}
    )
    if c.empty:
        return None
    g = style.sns.relplot(
        data=c,
        x="step",
        y="value",
        hue="method",
        col="model",
        kind="line",
        errorbar="sd",
        palette=METHOD_COLOURS,
        height=3,
        aspect=1.2,
    )
    for ax in g.axes.flat:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(style.plt.NullFormatter())  # decade labels only; minor labels overlap
        ax.axhline(CHANCE, ls=":", color="grey")
    g.set_axis_labels("example-forward equivalents", "validation accuracy")
    g.figure.suptitle("Z5 / Z6: learning curves at matched forward budgets (band: s.d. over seeds)", y=1.03)
    return "learning_curves", g.figure


def fig_gap(t: Tables):
    """AUC(pg) - AUC(zo_acc) vs d / K (log x) with 95% CIs (Z6)."""
    v = check_z6(t)
    if not v.detail:
        return None
    df = pd.DataFrame(v.detail)
    fig, ax = style.plt.subplots(figsize=(5, 3.6))
    ax.errorbar(
        df["d"] / 10,
        df["mean"],
        yerr=[df["mean"] - df["ci_low"], df["ci_high"] - df["mean"]],
        fmt="o-",
        color=style.FLOODED,
        capsize=3,
    )
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("d / K")
    ax.set_ylabel("AUC(PG) - AUC(ZO on accuracy)")
    fig.suptitle("Z6: the efficiency gap of policy gradient over ZO vs dimension", y=1.02)
    return "efficiency_gap", fig


def fig_final(t: Tables):
    """Final test accuracy by method x model, point-range over seeds, with the chance line (Z5)."""
    ok = runs(t)
    if ok.empty:
        return None
    g = style.sns.catplot(
        data=ok,
        x="method",
        y="test/acc",
        col="model",
        kind="point",
        errorbar=("ci", 95),
        color=style.FLOODED,
        order=[m for m in METHOD_COLOURS if m in set(ok["method"])],
        height=3,
        aspect=1.1,
    )
    for ax in g.axes.flat:
        ax.axhline(CHANCE, ls=":", color="grey")
        ax.tick_params(axis="x", labelsize=7, rotation=20)
    g.set_axis_labels("", "test accuracy")
    g.figure.suptitle("Z5: final test accuracy per method (95% CI over seeds; dotted: chance)", y=1.03)
    return "final_accuracy", g.figure
