"""The figures of study `embedding_dim`, drawn from its tables; its checks live in `analysis/embedding_dim.py`."""

import math

import numpy as np

from analysis import embedding_dim as ea
from analysis import style
from analysis.verdict import Tables, Verdict
from core.embeddings.knee import fit_models


def _knees(ax, x, k, **kw):
    """Knees `k` (rows with `knee`, `ci_low`, `ci_high`) at `x` with their intervals."""
    ax.errorbar(x, k["knee"], yerr=[k["knee"] - k["ci_low"], k["ci_high"] - k["knee"]], **kw)


def _viridis(levels) -> dict:
    """A viridis colour per level."""
    return dict(zip(levels, style.sns.color_palette("viridis", n_colors=len(levels)), strict=True))


def fig_quality(t: Tables):
    """log2 n vs Q per metric (facets), hue = N, bands over seeds, knees and 8.33 ln N marked (main grid)."""
    runs, m = ea._runs(t), ea._main(t)
    if runs.empty or m.empty:
        return None
    main = runs[(runs["status"] == "ok") & (runs["algo"] == "sgns") & (runs["tokens"] == int(m["T"].iloc[0]))]
    metrics = [k for k in ea.METRICS if k in main and main[k].notna().any()]
    colours = _viridis(sorted(main["vocab_size"].unique()))
    fig, axes = style.plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        label, sign = ea.METRICS[metric]
        for N, c in colours.items():
            q = main[main["vocab_size"] == N].groupby("dim")[metric].agg(["mean", "min", "max"]).sort_index() * sign
            ax.plot(q.index, q["mean"], "-o", ms=2.5, color=c, label=f"N={N}")
            ax.fill_between(q.index, *np.sort(q[["min", "max"]], axis=1).T, color=c, alpha=0.2, lw=0)
            ax.axvline(ea.SU * math.log(N), ls=":", color=c)
            r = m[m["N"] == N].iloc[0]
            if metric == ea.PRIMARY and r.knee == r.knee:
                y = float(np.interp(r.knee, q.index, q["mean"]))
                ax.errorbar([r.knee], [y], xerr=[[r.knee - r.ci_low], [r.ci_high - r.knee]], fmt="D", color=c, ms=5)
        ax.set_xscale("log", base=2)
        ax.set(xlabel="dimension n", ylabel=label)
    axes[0][0].legend(fontsize=7)
    return style.titled("quality_vs_dim", fig, "Quality vs dimension (dotted: 8.33 ln N; diamonds: 5%-knee with CI)", 1.03)


def fig_knees(t: Tables):
    """ln N vs knee with CIs, the log / power / constant fits with AIC, 8.33 ln N and the capacity line; ratio inset."""
    m = ea._main(t)
    m = m[m["knee"].notna()] if len(m) else m
    if len(m) < 2:
        return None
    fig, ax = style.plt.subplots(figsize=(5.5, 4))
    x = np.log(m["N"].to_numpy(float))
    _knees(ax, x, m, fmt="o", color=style.FLOODED, label="5%-knee (held-out SGNS loss)")
    grid = np.linspace(x.min() - 0.3, x.max() + 0.3, 50)
    fit = fit_models(m["N"].to_numpy(), m["knee"].to_numpy())
    log, power = fit["log"], fit["power"]
    ax.plot(grid, log["a"] * grid + log["b"], "-", color=style.BASELINE, label=f"a ln N + b (AIC {log['aic']:.1f})")
    if math.isfinite(power["alpha"]):
        label = f"c N^{power['alpha']:.2f} (AIC {power['aic']:.1f})"
        ax.plot(grid, power["c"] * np.exp(grid) ** power["alpha"], "--", color=style.HIGHLIGHT, label=label)
    ax.axhline(fit["constant"]["c"], ls="-.", color="grey", label=f"constant (AIC {fit['constant']['aic']:.1f})")
    ax.plot(grid, ea.SU * grid, ":", color=style.CONTROL, label="8.33 ln N (article)")
    ax.plot(grid, 1.65 * grid + 3.8, ":", color=style.BAND, label="capacity 1.65 ln N + 3.8")
    ax.set(xlabel="ln N", ylabel="n_eps")
    ax.legend(fontsize=6, loc="upper left")
    inset = ax.inset_axes([0.68, 0.08, 0.3, 0.3])
    r, low, high, _ = ea.knee_ratio(m)
    top = min(r.high, 3 * r.mean)  # an unbounded interval is drawn to 3 r
    inset.errorbar([0], [r.mean], yerr=[[r.mean - r.low], [top - r.mean]], fmt="o", color=style.FLOODED)
    for val, c in [(math.log(high) / math.log(low), style.CONTROL), (1.0, "grey"), ((high / low) ** 0.2, style.HIGHLIGHT)]:
        inset.axhline(val, color=c, lw=1)
    inset.set_xticks([])
    inset.set_title("r (red: ln-ratio)", fontsize=6)
    inset.tick_params(labelsize=6)
    return style.titled("knee_vs_lnN", fig, "D1/D2: knee vs ln N", 1.0)


def fig_tokens(t: Tables):
    """T (log x) vs knee at the D5 vocabulary size, hue = algorithm, with a +-30% band around the reference."""
    at = ea.shift_conditions(t)
    if isinstance(at, Verdict):
        return None
    k = float(at.loc[at["reference"], "knee"].iloc[0])
    fig, ax = style.plt.subplots(figsize=(5, 3.6))
    ax.axhspan(0.7 * k, 1.3 * k, color=style.BAND, alpha=0.3, label="reference +-30% (spec 6, D5)")
    for algo, colour in [("sgns", style.FLOODED), ("cbow", style.HIGHLIGHT)]:
        g = at[at["algo"] == algo].sort_values("T")
        if len(g):
            _knees(ax, g["T"], g, fmt="-o", color=colour, label=algo)
    ax.set(xscale="log", xlabel="training tokens T", ylabel="n_eps")
    ax.legend(fontsize=7)
    return style.titled("knee_vs_tokens", fig, f"D5: knee vs corpus size and algorithm (N = {int(at['N'].iloc[0])})")


def fig_derivation(t: Tables):
    """h_n vs n with the -0.2406 n line; exact vs approximate H vs n for N in {250, 500, 1000}."""
    n = t.check("h/n")
    if not n:
        return None
    fig, axes = style.plt.subplots(1, 2, figsize=(9, 3.6))
    axes[0].plot(n, t.check("h/h"), "o-", ms=3, color=style.FLOODED, label="h_n (quadrature)")
    axes[0].plot(n, -0.5 * math.log((1 + math.sqrt(5)) / 2) * np.array(n), ":", color="grey", label="-0.2406 n")
    axes[0].set(xlabel="n", ylabel="h_n")
    axes[0].legend(fontsize=7)
    dd, far = t.check("dd1/n"), ea.divergence(t)
    for N, c in _viridis(list(far)).items():
        axes[1].plot(dd, t.check(f"dd1/exact_{N}"), "-o", ms=3, color=c, label=f"exact N={N}")
        axes[1].plot(dd, t.check(f"dd1/approx_{N}"), "--", color=c, label=f"2 ln N + h_n, N={N}")
        if far[N] == far[N]:
            axes[1].axvline(far[N], color=c, ls=":", lw=1)
    axes[1].axhline(0, color="grey", lw=0.8)
    axes[1].set(xlabel="n", ylabel="H (nats)")
    axes[1].legend(fontsize=6)
    return style.titled("derivation", fig, "Derivation: h_n and where the sampling approximation departs (> 1 nat, dotted)")


def fig_tree(t: Tables):
    """Exact KL vs n per N on the planted tree, facet = b, knees marked (D-P2)."""
    curves = ea.tree_curves(t)
    if curves.empty:
        return None
    curves, k = curves[curves["status"] == "ok"], ea.tree_knees(t)
    bs = sorted(curves["config/b"].unique())
    fig, axes = style.plt.subplots(1, len(bs), figsize=(4.5 * len(bs), 3.5), squeeze=False)
    for ax, b in zip(axes[0], bs, strict=True):
        g = curves[curves["config/b"] == b]
        for N, c in _viridis(sorted(g["config/vocab_size"].unique())).items():
            cur = g[g["config/vocab_size"] == N].groupby("step")["value"].mean()
            ax.plot(cur.index, cur.values, "-o", ms=3, color=c, label=f"N={N}")
            kn = k[(k["b"] == b) & (k["N"] == N)]["knee"]
            if len(kn):
                ax.plot([kn.iloc[0]], [float(cur.loc[kn.iloc[0]])], "D", color=c, ms=6)
        ax.set_xscale("log", base=2)
        ax.set(yscale="log", xlabel="n", ylabel="exact KL (nats)", title=f"b = {b}")
        ax.legend(fontsize=7)
    return style.titled("tree_control", fig, "D-P2: planted tree, exact KL vs dimension (diamonds: 5%-knee)", 1.03)


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
    ax.plot(x, ea.SU * x, ":", color=style.CONTROL, label="8.33 ln N")
    ax.set(xlabel="ln N", ylabel="smallest n with p(self) >= 0.9")
    ax.legend(fontsize=7)
    return style.titled("capacity", fig, "D-D2: tied-vector capacity")
