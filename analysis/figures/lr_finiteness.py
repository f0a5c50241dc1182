"""The figures of study `lr_finiteness`, drawn from its tables; the measurements they share with the checks live in
`analysis/lr_finiteness.py`."""

import numpy as np

from analysis import style
from analysis.lr_finiteness import LEVELS, endpoints, quadratic_fit
from analysis.stats import loglog_slope
from analysis.verdict import Tables


def fig_exact_orders(t: Tables):
    """log h vs log one-step error against the flow and the modified flow, with slope-2 and slope-3 guides (I1, I2)."""
    if not t.check("i1/h") or not t.check("i2/h"):
        return None
    fig, axes = style.plt.subplots(1, 2, figsize=(9, 3.8))
    titles = ("quadratic, A = diag(1, 2, 3)", "E = (1 - ab)^2 / 2 from (1.4, 1.75)")
    for ax, key, title in zip(axes, ("i1", "i2"), titles, strict=True):
        h, flow_err, mod_err = (np.array(t.check(f"{key}/{m}")) for m in ("h", "flow_err", "mod_err"))
        ax.loglog(h, flow_err, "o-", color=style.BASELINE, label=f"GD vs flow (slope {loglog_slope(h, flow_err):.2f})")
        ax.loglog(h, mod_err, "s-", color=style.FLOODED, label=f"GD vs modified flow (slope {loglog_slope(h, mod_err):.2f})")
        i = int(np.argmin(h))
        ax.loglog(h, flow_err[i] * (h / h[i]) ** 2, ":", color="grey", label="slope 2")
        ax.loglog(h, mod_err[i] * (h / h[i]) ** 3, "--", color="grey", label="slope 3")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step size h")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("one-step error")
    fig.suptitle("I1 / I2: one GD step tracks the modified flow to O(h^3), the plain flow to O(h^2)", y=1.02)
    return "exact_orders", fig


def fig_two_parameter(t: Tables):
    """GD paths in the (a, b) plane from (2.8, 3.5) over ab = 1, h = 0.2 on the far branch; inset final |a - b| (I3)."""
    if not (hs := t.check("i3/h")):
        return None
    fig, ax = style.plt.subplots(figsize=(6, 5))
    a = np.linspace(-4, 4, 800)
    for branch in (a[a > 0.2], a[a < -0.2]):
        ax.plot(branch, 1 / branch, color="grey", lw=1, label="minima ab = 1" if branch[0] > 0 else None)
    ax.plot([-4, 4], [-4, 4], ":", color="grey", lw=0.8, label="a = b (flattest)")
    for h, c in zip(hs, style.level_palette(hs), strict=True):
        pa, pb = t.check(f"i3/path/{h:g}/a"), t.check(f"i3/path/{h:g}/b")
        ax.plot(pa, pb, "-", color=c, lw=1, label=f"h={h:g}" + (" (excluded: leaves the stable regime)" if h > 0.1 else ""))
        ax.plot(pa[-1], pb[-1], "o", color=c, ms=4)
    ax.set(xlim=(-3, 4), ylim=(-3, 4), xlabel="a", ylabel="b")
    ax.legend(fontsize=7, loc="lower right")
    inset = ax.inset_axes([0.08, 0.62, 0.32, 0.3])
    inset.semilogx(hs, t.check("i3/final_gap"), "o-", color=style.FLOODED)
    inset.set_title("final |a - b|", fontsize=7)
    inset.tick_params(labelsize=6)
    fig.suptitle("I3: larger steps end on flatter, more balanced minima (2000 GD steps)", y=1.0)
    return "two_parameter_model", fig


def _plain_curves(t: Tables, metric: str):
    c = t.curves(metric)
    if c.empty or "config/egr_mu" not in c:
        return c.iloc[:0]
    return c[c["config/egr_mu"] == 0].rename(columns={"config/lr": "h", "config/activation": "activation"})


def fig_matched_loss(t: Tables):
    """Training loss (x, log, decreasing) vs R_IG (y, log), hue = h, facet = activation; matched-level markers (I4a)."""
    loss, rig = _plain_curves(t, "train/loss"), _plain_curves(t, "train/rig")
    both = loss.merge(rig[["trial_id", "step", "value"]], on=["trial_id", "step"], suffixes=("_loss", "_rig"))
    both = both[both["status"] == "ok"]  # diverged runs (dead ReLU nets) would stretch the axes; fig_status counts them
    if both.empty:
        return None
    hs = sorted(both["h"].unique())
    palette = dict(zip(hs, style.level_palette(hs), strict=True))
    g = style.sns.relplot(
        data=both, x="value_loss", y="value_rig", hue="h", col="activation", kind="line", units="trial_id", estimator=None,
        palette=style.level_palette(hs), height=3.4, aspect=1.2, lw=0.8, alpha=0.7, sort=False,
    )  # fmt: skip
    ep = endpoints(t)
    for act, ax in g.axes_dict.items():
        ax.set(xscale="log", yscale="log")
        ax.invert_xaxis()
        sub = ep[(ep["activation"] == act) & (ep["mu"] == 0) & ep["stable"]]
        for lv in LEVELS:
            means = sub.groupby("h")[f"rig@{lv:g}"].mean()
            colors = [palette[h] for h in means.index]
            ax.scatter([lv] * len(means), means.to_numpy(), c=colors, marker="D", s=18, zorder=3, edgecolor="k", linewidth=0.4)
    g.set_axis_labels("training loss (decreasing →)", "R_IG = ||grad L_train||^2")
    g.figure.suptitle(
        "I4a: implicit regularisation at matched loss (diamonds: mean R_IG of stable runs at each level)", y=1.03
    )
    return "regularisation_at_matched_loss", g.figure


def _point_range(ax, runs, x: str, **kw) -> None:
    """Mean test accuracy per `x` with its 95% interval over seeds (1.96 standard errors)."""
    agg = runs.groupby(x)["test_acc"].agg(["mean", "sem"]).reset_index()
    ax.errorbar(agg[x], agg["mean"], yerr=1.96 * agg["sem"].fillna(0), capsize=3, **kw)


def fig_accuracy(t: Tables):
    """log h vs test accuracy (point-range over seeds), quadratic fit over stable runs, EGR at h + 4 mu (I4b, I5, I6)."""
    ep = endpoints(t).query("reached")
    if ep.empty:
        return None
    acts = sorted(ep["activation"].unique())
    fig, axes = style.plt.subplots(1, len(acts), figsize=(4.6 * len(acts), 3.8), sharey=True, squeeze=False)
    for ax, act in zip(axes[0], acts, strict=True):
        sub = ep[ep["activation"] == act]
        plain, egr = sub[sub["mu"] == 0], sub[sub["mu"] > 0]
        spiked = "GD, spiked (outside stable range)"
        for stable, color, label in ((True, style.BASELINE, "GD, stable"), (False, style.HIGHLIGHT, spiked)):
            if len(s := plain[plain["stable"] == stable]):
                _point_range(ax, s, "h", fmt="o", color=color, label=label)
        st = plain[plain["stable"]]
        coef, _ = quadratic_fit(st)  # the fit I4 (b) reads its increasing branch from
        if coef is not None:
            grid = np.linspace(*np.log([st["h"].min(), st["h"].max()]), 100)
            ax.plot(
                np.exp(grid), np.polyval(coef, grid), color=style.BASELINE, lw=0.8, alpha=0.6, label="quadratic fit in log h"
            )
        if len(egr):
            e = egr.assign(h_eff=egr["h"] + 4 * egr["mu"])
            _point_range(ax, e, "h_eff", fmt="*", ms=11, color=style.FLOODED, label="EGR at h + 4 mu")
        ticks = sorted(sub["h"].unique())
        ax.set(xscale="log", xlabel="step size h (log)")
        ax.set_xticks(ticks, [f"{h:g}" for h in ticks])
        ax.minorticks_off()
        ax.set_title(act, fontsize=9)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("test accuracy at matched loss (95% CI over seeds)")
    fig.suptitle("I4b / I5 / I6: test accuracy vs step size; EGR runs at their effective step", y=1.02)
    return "accuracy_vs_step_size", fig


def fig_edge_of_stability(t: Tables):
    """h * lambda_max vs step, hue = h, with the stability edge at 2 (gotcha 1)."""
    c = _plain_curves(t, "train/h_lambda_max")
    if c.empty:
        return None
    hs = sorted(c["h"].unique())
    g = style.sns.relplot(data=c, x="step", y="value", hue="h", col="activation", kind="line", errorbar=None,
                          palette=style.level_palette(hs), height=3.2, aspect=1.3)  # fmt: skip
    for ax in g.axes.flat:
        ax.axhline(2, ls="--", color=style.CONTROL, lw=1)
        ax.set_yscale("log")
    g.set_axis_labels("step", "h * lambda_max (mean over seeds)")
    g.figure.suptitle(
        "Edge of stability: above 2 (dashed) GD is unstable along the top eigenvector and the O(h^3) expansion fails", y=1.03
    )
    return "edge_of_stability", g.figure


def fig_flatness(t: Tables):
    """lambda_max and the noise-induced accuracy drop vs h, one line per seed (stable and spiked runs that reached)."""
    ep = endpoints(t).query("mu == 0 and reached")
    if ep.empty:
        return None
    long = ep.melt(id_vars=["h", "seed", "activation"], value_vars=["lambda_max", "noise_drop"], var_name="metric")
    g = style.sns.relplot(
        data=long, x="h", y="value", hue="seed", row="metric", col="activation", kind="line", marker="o",
        palette=style.seed_palette(ep["seed"].nunique()), height=2.8, aspect=1.3, facet_kws={"sharey": "row"},
    )  # fmt: skip
    for (metric, _), ax in g.axes_dict.items():
        ax.set(xscale="log", yscale="log" if metric == "lambda_max" else "linear")
    g.set_axis_labels("step size h (log)", "")
    g.figure.suptitle(
        "Flatness and robustness at matched loss: lambda_max and test-accuracy drop under parameter noise", y=1.03
    )
    return "flatness", g.figure
