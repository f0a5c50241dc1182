"""The figures of study `flooding`, drawn from its tables.

The checks they illustrate, and the measurements both use, live in `analysis/flooding.py`.
"""

import numpy as np
import pandas as pd

from analysis import style
from analysis.flooding import cells, endpoints, equal_loss, noisy_label_entropy, pairs, per_loss, per_seed_best
from analysis.stats import loglog_slope, paired_test
from analysis.verdict import Tables

FACET = dict(height=3, aspect=1.3)


def _level_curves(t: Tables, metrics: tuple[str, str], errorbar, ylabel: str, title: str):
    """Per-epoch curves of two metrics, one row each, hue = b, columns = eta, and the b levels; None without data."""
    curves = pd.concat([t.curves(m).assign(metric=m) for m in metrics])
    if curves.empty:
        return None
    curves = curves.rename(columns={"config/flood_level": "b", "config/label_noise": "eta"})
    levels = sorted(curves["b"].unique())
    kw = dict(hue="b", col="eta", row="metric", palette=style.level_palette(levels), facet_kws={"sharey": False}, **FACET)
    g = style.sns.relplot(data=curves, x="step", y="value", kind="line", errorbar=errorbar, **kw)
    g.set_axis_labels("epoch", ylabel)
    g.figure.suptitle(title, y=1.02)
    return g, levels


def fig_test_loss(t: Tables):
    """Test loss per epoch, hue = b, columns = eta (mean and band over seeds); train loss alongside (F2)."""
    title = "F2: test loss rises, then falls again once training hovers at b (mean ± s.e. over seeds)"
    drawn = _level_curves(t, ("test/loss", "train/loss"), "se", "loss (nats)", title)
    return None if drawn is None else ("test_loss_curves", drawn[0].figure)


def fig_mechanics(t: Tables):
    """Training loss with dashed lines at each b, and the flood proportion with its 0.3-0.7 band (F3)."""
    title = "F3: training loss settles at b (dashed) with about half the steps ascending (band 0.3-0.7)"
    if (drawn := _level_curves(t, ("train/loss", "train/flood_prop"), None, "", title)) is None:
        return None
    g, levels = drawn
    for (metric, _), ax in g.axes_dict.items():
        if metric == "train/loss":
            ax.set_yscale("log")
            for b, color in zip(levels, style.level_palette(levels), strict=True):
                if b > 0:
                    ax.axhline(b, ls="--", lw=0.8, color=color)
        else:
            ax.axhspan(0.3, 0.7, color=style.BAND, alpha=0.3)
    return "mechanics", g.figure


def fig_isolation(t: Tables):
    """Final test accuracy vs b (symlog), point-range over seeds, facets eta x E, star at b* (F1)."""
    ep = endpoints(t)
    if ep.empty:
        return None
    kw = dict(col="eta", row="E", errorbar=("ci", 95), color=style.FLOODED, sharex=False, **FACET)
    g = style.sns.catplot(data=ep, x="b", y="test_acc", kind="point", **kw)
    b_star = {(c["key"]["eta"], c["key"]["E"]): c["b_star"] for c in cells(t)}
    for (e, eta), ax in g.axes_dict.items():
        sub = ep[(ep["E"] == e) & (ep["eta"] == eta)]
        base = sub[sub["b"] == 0]["test_acc"]
        if len(base):
            ax.axhspan(base.mean() - base.std(ddof=0), base.mean() + base.std(ddof=0), color=style.BASELINE, alpha=0.15)
        star = b_star.get((eta, e))
        levels = sorted(sub["b"].unique())
        if star in levels:
            ax.plot(levels.index(star), sub[sub["b"] == star]["test_acc"].mean(), marker="*", ms=14, color=style.HIGHLIGHT)
    g.set_axis_labels("flood level b", "test accuracy")
    g.figure.suptitle(
        "F1: final test accuracy vs flood level (95% CI over seeds; star = b* on validation; band = b=0 ± sd)", y=1.02
    )
    return "isolation_test_acc", g.figure


def fig_paired(t: Tables):
    """Per-seed test accuracy from b = 0 to b*, one panel per cell, with the cell's mean difference and CI (F1)."""
    shown = [c for c in cells(t) if not np.isnan(c["b_star"])]
    if not shown:
        return None
    fig, axes = style.plt.subplots(1, len(shown), figsize=(2.4 * len(shown), 3), sharey=True, squeeze=False)
    for ax, c in zip(axes[0], shown, strict=True):
        p = pairs(c["rows"], c["b_star"], "test_acc")
        ax.plot([0, 1], p[["baseline", "flooded"]].T.to_numpy(), "o-", color=style.FLOODED, alpha=0.7)
        res = paired_test((p["flooded"] - p["baseline"]).to_numpy())
        ax.set_xticks([0, 1], ["b=0", f"b*={c['b_star']:g}"])
        ax.set_title(f"{c['label']}\nΔ={res.mean:+.3f} [{res.ci_low:+.3f}, {res.ci_high:+.3f}]", fontsize=8)
    axes[0][0].set_ylabel("test accuracy")
    fig.suptitle("F1: paired test accuracy, b = 0 vs b* (one line per seed)", y=1.02)
    return "paired_effect", fig


def fig_flatness(t: Tables):
    """Top Hessian eigenvalue vs b (log y), paired lines per seed (F5)."""
    ep = endpoints(t)
    if ep.empty or "lambda_max" not in ep:
        return None
    ep = ep[ep["E"] == "off"]
    kw = dict(hue="seed", col="eta", marker="o", palette=style.seed_palette(ep["seed"].nunique()), **FACET)
    g = style.sns.relplot(data=ep, x="b", y="lambda_max", kind="line", **kw)
    for ax in g.axes.flat:
        ax.set_yscale("log")
        ax.set_xscale("symlog", linthresh=0.01)
    g.set_axis_labels("flood level b", "lambda_max (train, noisy labels)")
    g.figure.suptitle("F5: top Hessian eigenvalue at the end of training (one line per seed)", y=1.02)
    return "flatness", g.figure


def fig_scale_aware_flatness(t: Tables):
    """lambda_max / L_train and adaptive sharpness vs b at the end of training (mean over seeds), beside b = 0 at the
    first epoch its training loss fell to each b (equal loss); rows = measure, columns = eta (F-D1)."""
    ep = endpoints(t)
    if ep.empty or "sharpness" not in ep or "subset_loss" not in ep:
        return None
    ep = ep[ep["E"] == "off"].assign(curvature_per_loss=per_loss)
    eq = equal_loss(t).merge(ep.loc[ep["b"] == 0, ["trial_id", "eta"]], on="trial_id")
    etas = sorted(ep["eta"].unique())
    measures = {"curvature_per_loss": "lambda_max / L_train", "sharpness": "adaptive eps-sharpness"}
    fig, axes = style.plt.subplots(2, len(etas), figsize=(3.6 * len(etas), 5.4), squeeze=False, sharex="col")
    for j, eta in enumerate(etas):
        end = ep[ep["eta"] == eta].groupby("b")[list(measures)].mean()
        same = eq[eq["eta"] == eta].groupby("level")[list(measures)].mean()
        for i, (col, name) in enumerate(measures.items()):
            ax = axes[i][j]
            ax.plot(end.index, end[col], "o-", color=style.FLOODED, label="run with flood level b, end of training")
            ax.axhline(end[col].get(0.0, np.nan), color=style.BASELINE, lw=0.8, ls=":", label="b = 0, end of training")
            if len(same):
                ax.plot(
                    same.index, same[col], "s--", color=style.BASELINE, mfc="none", label="b = 0 when its loss first fell to b"
                )
            ax.set_xscale("symlog", linthresh=0.01)
            ax.set(yscale="log", ylabel=name if j == 0 else "")
            ax.set_title(f"eta={eta:g}" if i == 0 else "", fontsize=9)
        axes[1][j].set_xlabel("flood level b")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("F-D1: scale-aware flatness (mean over seeds; no verdict), beside F5's lambda_max", y=1.01)
    return "scale_aware_flatness", fig


def fig_identity(t: Tables):
    """log eps vs log error of Su's two-step prediction, slope-3 guide, and the different-batch control (F4, F-C1)."""
    eps = t.check("eps")
    if not eps:
        return None
    fig, ax = style.plt.subplots(figsize=(5, 4))
    for name, color in [("e2_product", style.FLOODED), ("e2_mlp", style.BASELINE), ("fc1_mlp", style.CONTROL)]:
        err = t.check(f"{name}/err")
        ax.loglog(eps, err, "o-", color=color, label=f"{name} (slope {loglog_slope(eps, err):.2f})")
    e = np.array(eps)
    ax.loglog(e, t.check("e2_mlp/err")[0] * (e / e[0]) ** 3, ":", color="grey", label="slope 3")
    ax.set(xlabel="eps", ylabel="|two steps - (theta - eps^2 H g)|")
    ax.legend(fontsize=8)
    fig.suptitle("F4 / F-C1: error of the two-step identity vs step size", y=1.02)
    return "exact_identity", fig


def fig_noise_vs_b(t: Tables):
    """Per-seed b* against the noisy-label entropy H(eta), with y = x and a factor-2 band (F6)."""
    best = per_seed_best(endpoints(t))
    if best.empty:
        return None
    best = best.assign(H=best["eta"].map(noisy_label_entropy))
    fig, ax = style.plt.subplots(figsize=(5, 4))
    h = np.linspace(0, max(best["H"].max(), 0.1) * 1.1, 50)
    ax.fill_between(h, h / 2, 2 * h, color=style.BAND, alpha=0.3, label="b* within [H/2, 2H]")
    ax.plot(h, h, ":", color="grey", label="b* = H(eta)")
    style.sns.stripplot(data=best, x="H", y="b", native_scale=True, color=style.FLOODED, ax=ax, jitter=0.01)
    ax.set(xlabel="H(eta), nats", ylabel="per-seed b*")
    ax.legend(fontsize=8)
    fig.suptitle("F6: per-seed best flood level vs noisy-label entropy", y=1.02)
    return "noise_vs_best_level", fig
