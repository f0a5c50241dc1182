"""The figures of study `pg_vs_zo`, drawn from its tables; the checks they illustrate live in `analysis/pg_vs_zo.py`."""

import numpy as np
import pandas as pd

from analysis import style
from analysis.pg_vs_zo import CHANCE, check_z6, cosines, runs
from analysis.verdict import Tables

METHOD_COLOURS = {"ce_backprop": style.BASELINE, "pg_reinforce": style.FLOODED, "zo_acc": style.HIGHLIGHT, "zo_ce": "#9467bd"}


def fig_identities(t: Tables):
    """REINFORCE vs ZO terms on y = x (Z1), and the Gumbel estimate vs the exact softmax gradient (Z3)."""
    pg, zo = t.check("z1/pg"), t.check("z1/zo")
    if not pg:
        return None
    fig, axes = style.plt.subplots(1, 2, figsize=(9, 3.8))
    axes[0].scatter(zo, pg, s=8, color=style.FLOODED)
    lim = [min(zo + pg), max(zo + pg)]
    axes[0].plot(lim, lim, ":", color="grey")
    axes[0].set(xlabel="ZO term (f(theta + eps u) - f(theta)) u / eps", ylabel="Gaussian-policy REINFORCE term")
    s = runs(t, "stats")
    scale = s.groupby("config/stat_dtype")["stats/z1_max_diff"].max() if "stats/z1_max_diff" in s else pd.Series()
    note = ", ".join(f"{k} {v:.1e}" for k, v in scale.items()) or "not run"
    axes[0].set_title(f"max |delta| {t.check('z1/max_abs_diff')[0]:.1e} (float64); at scale: {note}", fontsize=7)
    est, exact, se = (np.array(t.check(f"z3/{k}")) for k in ("estimate", "exact", "se"))
    k = np.arange(len(est))
    axes[1].bar(k - 0.2, exact, width=0.4, color=style.BASELINE, label="exact grad softmax_t")
    axes[1].errorbar(k + 0.2, est, yerr=2 * se, fmt="o", color=style.HIGHLIGHT, label="Gumbel noise score (±2 s.e.)")
    axes[1].set_xlabel("logit k")
    axes[1].legend(fontsize=7)
    return style.titled("identities", fig, "Z1 / Z3: policy gradient and perturbation estimators agree")


def fig_variance(t: Tables):
    """log d vs E||g_hat - g||^2 / ||g||^2 with the d + 1 line (Z2)."""
    ds = t.check("z2/d")
    if not ds:
        return None
    fig, ax = style.plt.subplots(figsize=(5, 3.6))
    ax.loglog(ds, t.check("z2/var_ratio"), "o", color=style.FLOODED, label="measured (N = 2e4)")
    grid = np.geomspace(min(ds), max(ds), 50)
    ax.loglog(grid, grid + 1, ":", color="grey", label="d + 1")
    ax.set(xlabel="dimension d", ylabel="E ||g_hat - g||^2 / ||g||^2")
    ax.legend(fontsize=7)
    return style.titled("variance_vs_dimension", fig, "Z2: single-direction ZO variance grows as d + 1")


def fig_baselines(t: Tables):
    """Variance trace over the baseline grid with b = 0, f(theta), E f and b* marked (Z4)."""
    grid = t.check("z4/grid")
    if not grid:
        return None
    fig, ax = style.plt.subplots(figsize=(5.5, 3.6))
    ax.plot(grid, t.check("z4/grid_var"), "-", color=style.FLOODED)
    for k, c in [("f_theta", style.BASELINE), ("mean_f", style.HIGHLIGHT), ("b_star", style.CONTROL)]:
        ax.axvline(t.check(f"z4/b_{k}")[0], ls="--", color=c, label=f"b = {k} (var {t.check(f'z4/var_{k}')[0]:.0f})")
    ax.set(xlabel="baseline b", ylabel="trace of the estimator covariance")
    ax.set_title(f"b = 0 gives {t.check('z4/var_zero')[0]:.0f}", fontsize=8)
    ax.legend(fontsize=7)
    return style.titled("baselines", fig, "Z4: baselines cut the variance; b* is the minimum")


def _lines(data: pd.DataFrame, x: str, hue: str, palette, **kw):
    """Line facets of `value` vs `x` (log axis), one column per model."""
    g = style.sns.relplot(data=data, x=x, y="value", hue=hue, col="model", kind="line", palette=palette, aspect=1.2, **kw)
    return g.set(xscale="log")


def fig_cosine(t: Tables):
    """log q vs E[cos] (log-log), hue = sigma, facets dtype x model, with the sqrt(q / d) guide (Z2 at scale)."""
    df = cosines(t, "cos")
    if df.empty:
        return None
    df["value"] = df["value"].clip(lower=1e-4)
    g = _lines(df, "q", "sigma", "viridis", row="dtype", marker="o", height=2.8, facet_kws={"sharey": False})
    qs = np.array(sorted(df["q"].unique()))
    for (_, model), ax in g.axes_dict.items():
        ax.plot(qs, np.sqrt(qs / df[df["model"] == model]["d"].iloc[0]), ":", color="grey")
        ax.set_yscale("log")
    return style.titled(
        "cosine_vs_q", g.figure, "Z2 at scale: cosine of the ZO estimate to the gradient grows as sqrt(q / d) (dotted)", 1.03
    )


def fig_curves(t: Tables):
    """Validation accuracy vs example-forward equivalents (log x), hue = method, facet = model (Z5, Z6)."""
    c = t.curves("val/acc").rename(columns={"config/method": "method", "config/model": "model"})
    c = c[c["trial_id"].isin(runs(t)["trial_id"]) & (c["step"] > 0)]
    if c.empty:
        return None
    g = _lines(c, "step", "method", METHOD_COLOURS, errorbar="sd", height=3)
    for ax in g.axes.flat:
        ax.xaxis.set_minor_formatter(style.plt.NullFormatter())  # decade labels only; minor labels overlap
        ax.axhline(CHANCE, ls=":", color="grey")
    g.set_axis_labels("example-forward equivalents", "validation accuracy")
    return style.titled(
        "learning_curves", g.figure, "Z5 / Z6: learning curves at matched forward budgets (band: s.d. over seeds)", 1.03
    )


def fig_gap(t: Tables):
    """AUC(pg) - AUC(zo_acc) vs d / K (log x) with 95% CIs (Z6)."""
    v = check_z6(t)
    if not v.detail:
        return None
    df = pd.DataFrame(v.detail)
    fig, ax = style.plt.subplots(figsize=(5, 3.6))
    yerr = [df["mean"] - df["ci_low"], df["ci_high"] - df["mean"]]
    ax.errorbar(df["d"] / 10, df["mean"], yerr=yerr, fmt="o-", color=style.FLOODED, capsize=3)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xscale="log", xlabel="d / K", ylabel="AUC(PG) - AUC(ZO on accuracy)")
    return style.titled("efficiency_gap", fig, "Z6: the efficiency gap of policy gradient over ZO vs dimension")


def fig_final(t: Tables):
    """Final test accuracy by method x model, point-range over seeds (95% CI), with the chance line (Z5)."""
    ok = runs(t)
    if ok.empty:
        return None
    order = [m for m in METHOD_COLOURS if m in set(ok["method"])]
    g = style.sns.catplot(
        data=ok, x="method", y="test/acc", col="model", kind="point", color=style.FLOODED, order=order, height=3, aspect=1.1
    )
    for ax in g.axes.flat:
        ax.axhline(CHANCE, ls=":", color="grey")
        ax.tick_params(axis="x", labelsize=7, rotation=20)
    g.set_axis_labels("", "test accuracy")
    return style.titled(
        "final_accuracy", g.figure, "Z5: final test accuracy per method (95% CI over seeds; dotted: chance)", 1.03
    )
