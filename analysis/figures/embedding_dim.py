"""The figures of study `embedding_dim`, drawn from its tables.

The checks they illustrate, and the measurements both use, live in `analysis/embedding_dim.py`.
"""

import math

import numpy as np

from analysis import style
from analysis.embedding_dim import (
    METRICS,
    PRIMARY,
    SU,
    _main,
    _runs,
    divergence,
    knee_ratio,
    shift_conditions,
    tree_curves,
    tree_knees,
)
from analysis.verdict import Tables, Verdict
from core.embeddings.knee import fit_models


def fig_quality(t: Tables):
    """log2 n vs Q per metric (facets), hue = N, bands over seeds, knees and 8.33 ln N marked (main grid)."""
    runs = _runs(t)
    m = _main(t)
    if runs.empty or m.empty:
        return None
    main = runs[(runs["status"] == "ok") & (runs["algo"] == "sgns") & (runs["tokens"] == int(m["T"].iloc[0]))]
    metrics = [k for k in METRICS if k in main and main[k].notna().any()]
    Ns = sorted(main["vocab_size"].unique())
    colours = dict(zip(Ns, style.sns.color_palette("viridis", n_colors=len(Ns)), strict=True))
    fig, axes = style.plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        label, sign = METRICS[metric]
        for N in Ns:
            g = main[main["vocab_size"] == N]
            stats_ = g.groupby("dim")[metric].agg(["mean", "min", "max"]).sort_index() * sign
            lo, hi = stats_[["min", "max"]].min(axis=1), stats_[["min", "max"]].max(axis=1)
            ax.plot(stats_.index, stats_["mean"], "-o", ms=2.5, color=colours[N], label=f"N={N}")
            ax.fill_between(stats_.index, lo, hi, color=colours[N], alpha=0.2, lw=0)
            ax.axvline(SU * math.log(N), ls=":", color=colours[N])
            r = m[m["N"] == N].iloc[0]
            if metric == PRIMARY and r.knee == r.knee:
                y = float(np.interp(r.knee, stats_.index, stats_["mean"]))
                ax.errorbar([r.knee], [y], xerr=[[r.knee - r.ci_low], [r.ci_high - r.knee]], fmt="D", color=colours[N], ms=5)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("dimension n")
        ax.set_ylabel(label)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Quality vs dimension (dotted: 8.33 ln N; diamonds: 5%-knee with CI)", y=1.03)
    return "quality_vs_dim", fig


def fig_knees(t: Tables):
    """ln N vs knee with CIs, the log / power / constant fits with AIC, 8.33 ln N and the capacity line; ratio inset."""
    m = _main(t)
    m = m[m["knee"].notna()] if len(m) else m
    if len(m) < 2:
        return None
    fig, ax = style.plt.subplots(figsize=(5.5, 4))
    x = np.log(m["N"].to_numpy(float))
    ax.errorbar(x, m["knee"], yerr=[m["knee"] - m["ci_low"], m["ci_high"] - m["knee"]], fmt="o", color=style.FLOODED,
                label="5%-knee (held-out SGNS loss)")  # fmt: skip
    grid = np.linspace(x.min() - 0.3, x.max() + 0.3, 50)
    fits = fit_models(m["N"].to_numpy(), m["knee"].to_numpy())
    ax.plot(grid, fits["log"]["a"] * grid + fits["log"]["b"], "-", color=style.BASELINE,
            label=f"a ln N + b (AIC {fits['log']['aic']:.1f})")  # fmt: skip
    if math.isfinite(fits["power"]["alpha"]):
        ax.plot(grid, fits["power"]["c"] * np.exp(grid) ** fits["power"]["alpha"], "--", color=style.HIGHLIGHT,
                label=f"c N^{fits['power']['alpha']:.2f} (AIC {fits['power']['aic']:.1f})")  # fmt: skip
    ax.axhline(fits["constant"]["c"], ls="-.", color="grey", label=f"constant (AIC {fits['constant']['aic']:.1f})")
    ax.plot(grid, SU * grid, ":", color=style.CONTROL, label="8.33 ln N (article)")
    ax.plot(grid, 1.65 * grid + 3.8, ":", color=style.BAND, label="capacity 1.65 ln N + 3.8")
    ax.set_xlabel("ln N")
    ax.set_ylabel("n_eps")
    ax.legend(fontsize=6, loc="upper left")
    inset = ax.inset_axes([0.68, 0.08, 0.3, 0.3])
    r, low, high, _ = knee_ratio(m)
    top = min(r.high, 3 * r.mean)  # an unbounded interval is drawn to 3 r
    inset.errorbar([0], [r.mean], yerr=[[r.mean - r.low], [top - r.mean]], fmt="o", color=style.FLOODED)
    for val, c in [(math.log(high) / math.log(low), style.CONTROL), (1.0, "grey"), ((high / low) ** 0.2, style.HIGHLIGHT)]:
        inset.axhline(val, color=c, lw=1)
    inset.set_xticks([])
    inset.set_title("r (red: ln-ratio)", fontsize=6)
    inset.tick_params(labelsize=6)
    fig.suptitle("D1/D2: knee vs ln N", y=1.0)
    return "knee_vs_lnN", fig


def fig_tokens(t: Tables):
    """T (log x) vs knee at the D5 vocabulary size, hue = algorithm, with a +-30% band around the reference."""
    at = shift_conditions(t)
    if isinstance(at, Verdict):
        return None
    N, k = int(at["N"].iloc[0]), float(at.loc[at["reference"], "knee"].iloc[0])
    fig, ax = style.plt.subplots(figsize=(5, 3.6))
    ax.axhspan(0.7 * k, 1.3 * k, color=style.BAND, alpha=0.3, label="reference +-30% (spec 6, D5)")
    for algo, colour in [("sgns", style.FLOODED), ("cbow", style.HIGHLIGHT)]:
        g = at[at["algo"] == algo].sort_values("T")
        if len(g):
            ax.errorbar(
                g["T"], g["knee"], yerr=[g["knee"] - g["ci_low"], g["ci_high"] - g["knee"]], fmt="-o", color=colour, label=algo
            )
    ax.set_xscale("log")
    ax.set_xlabel("training tokens T")
    ax.set_ylabel("n_eps")
    ax.legend(fontsize=7)
    fig.suptitle(f"D5: knee vs corpus size and algorithm (N = {N})", y=1.02)
    return "knee_vs_tokens", fig


def fig_derivation(t: Tables):
    """h_n vs n with the -0.2406 n line; exact vs approximate H vs n for N in {250, 500, 1000}."""
    n = t.check("h/n")
    if not n:
        return None
    fig, axes = style.plt.subplots(1, 2, figsize=(9, 3.6))
    axes[0].plot(n, t.check("h/h"), "o-", ms=3, color=style.FLOODED, label="h_n (quadrature)")
    axes[0].plot(n, -0.5 * math.log((1 + math.sqrt(5)) / 2) * np.array(n), ":", color="grey", label="-0.2406 n")
    axes[0].set_xlabel("n")
    axes[0].set_ylabel("h_n")
    axes[0].legend(fontsize=7)
    dd = t.check("dd1/n")
    palette = style.sns.color_palette("viridis", n_colors=3)
    for (N, far), c in zip(divergence(t).items(), palette, strict=True):
        axes[1].plot(dd, t.check(f"dd1/exact_{N}"), "-o", ms=3, color=c, label=f"exact N={N}")
        axes[1].plot(dd, t.check(f"dd1/approx_{N}"), "--", color=c, label=f"2 ln N + h_n, N={N}")
        if far == far:
            axes[1].axvline(far, color=c, ls=":", lw=1)
    axes[1].axhline(0, color="grey", lw=0.8)
    axes[1].set_xlabel("n")
    axes[1].set_ylabel("H (nats)")
    axes[1].legend(fontsize=6)
    fig.suptitle("Derivation: h_n and where the sampling approximation departs (> 1 nat, dotted)", y=1.02)
    return "derivation", fig


def fig_tree(t: Tables):
    """Exact KL vs n per N on the planted tree, facet = b, knees marked (D-P2)."""
    curves = tree_curves(t)
    if curves.empty:
        return None
    curves = curves[curves["status"] == "ok"]
    k = tree_knees(t)
    bs = sorted(curves["config/b"].unique())
    fig, axes = style.plt.subplots(1, len(bs), figsize=(4.5 * len(bs), 3.5), squeeze=False)
    for ax, b in zip(axes[0], bs, strict=True):
        g = curves[curves["config/b"] == b]
        Ns = sorted(g["config/vocab_size"].unique())
        for N, c in zip(Ns, style.sns.color_palette("viridis", n_colors=len(Ns)), strict=True):
            cur = g[g["config/vocab_size"] == N].groupby("step")["value"].mean()
            ax.plot(cur.index, cur.values, "-o", ms=3, color=c, label=f"N={N}")
            kn = k[(k["b"] == b) & (k["N"] == N)]["knee"]
            if len(kn):
                ax.plot([kn.iloc[0]], [float(cur.loc[kn.iloc[0]])], "D", color=c, ms=6)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("n")
        ax.set_ylabel("exact KL (nats)")
        ax.set_title(f"b = {b}")
        ax.legend(fontsize=7)
    fig.suptitle("D-P2: planted tree, exact KL vs dimension (diamonds: 5%-knee)", y=1.03)
    return "tree_control", fig


def fig_capacity(t: Tables):
    """Smallest n with mean p(self) >= 0.9 vs ln N, random and sphere-fitted tied vectors, with 1.65 ln N + 3.8."""
    Ns = t.check("dd2/N")
    if not Ns:
        return None
    fig, ax = style.plt.subplots(figsize=(5, 3.6))
    x = np.log(Ns)
    ax.plot(x, t.check("dd2/random_n"), "o-", color=style.FLOODED, label="random sqrt(n)-sphere")
    ax.plot(x, t.check("dd2/fitted_n"), "s-", color=style.HIGHLIGHT, label="sphere-constrained Adam (100 steps)")
    ax.plot(x, 1.65 * x + 3.8, ":", color="grey", label="1.65 ln N + 3.8 (spec)")
    ax.plot(x, SU * x, ":", color=style.CONTROL, label="8.33 ln N")
    ax.set_xlabel("ln N")
    ax.set_ylabel("smallest n with p(self) >= 0.9")
    ax.legend(fontsize=7)
    fig.suptitle("D-D2: tied-vector capacity", y=1.02)
    return "capacity", fig
