"""Figures every study gets, whatever its claims: trial outcomes and an isolation plot of the scientific factors."""

import math

import pandas as pd

from analysis import style
from analysis.verdict import Tables


def fig_status(t: Tables):
    """Share of ok, diverged and failed trials per arm (diverged trials stay visible)."""
    if t.trials.empty:
        return None
    counts = pd.crosstab(t.trials["arm"], t.trials["status"], normalize="index")
    fig, ax = style.plt.subplots(figsize=(6, 0.3 * len(counts) + 1.2))
    counts.reindex(columns=[s for s in style.STATUS if s in counts]).plot.barh(
        stacked=True, ax=ax, color=[style.STATUS[s] for s in style.STATUS if s in counts], width=0.8
    )
    ax.set_xlabel("share of trials")
    fig.suptitle("Trial outcomes per arm (diverged and failed trials are kept and shown)")
    ax.set_ylabel("arm")
    ax.legend(loc="lower right", fontsize=7)
    return "trial_status", fig


def fig_top_curves(t: Tables, metric: str = "val/acc", k: int = 8):
    """Training curves of the best trial of each arm (by the final value of `metric`), for the k best arms."""
    curves = t.curves(metric)
    if curves.empty:
        return None
    final = curves.groupby("trial_id").tail(1).sort_values("value", ascending=False)
    best = final.groupby("arm").head(1).head(k)  # best trial per arm, best arms first
    top = curves[curves["trial_id"].isin(best["trial_id"])]
    fig, ax = style.plt.subplots(figsize=(7, 4))
    style.sns.lineplot(data=top, x="step", y="value", hue="arm", hue_order=best["arm"].tolist(), ax=ax)
    ax.set_ylabel(metric)
    ax.set_xlabel("step (epoch)")
    ax.legend(fontsize=6)
    fig.suptitle(f"Best trial of each of the {len(best)} best arms ({metric}, higher is better)")
    return "top_curves", fig


def fig_nuisance_axes(t: Tables, tuning: dict, edge: float = 0.05):
    """One axis plot per tuned parameter: the tuning metric against the value, per arm; a best trial within
    `edge` of the range (in log space for log domains) of a boundary is flagged, since the search may have cut it off.

    Args:
        t (Tables):
            Tables with the tuning-phase rows.
        tuning (dict):
            The run's tuning as recorded in `metadata/<budget>.json`: `metric`, `mode` and `spaces`, each arm's
            ranges `{key: {"lower", "upper", "log"}}` (a categorical parameter, `{"values": [...]}`, has no edge).
        edge (float):
            Fraction of the range that counts as near the boundary.

    Returns:
        tuple[str, Figure] | None: `nuisance_axes`, or None without tuning rows or recorded ranges.
    """
    df, metric, mode = t.tuning, tuning.get("metric"), tuning.get("mode")
    spaces = {arm: {k: r for k, r in space.items() if "lower" in r} for arm, space in (tuning.get("spaces") or {}).items()}
    if df.empty or metric not in df or not any(spaces.values()):
        return None
    keys = list(dict.fromkeys(k for space in spaces.values() for k in space))
    fig, axes = style.plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        arms = [a for a, space in spaces.items() if key in space]
        ranges = [spaces[a][key] for a in arms]
        log = bool(ranges[0]["log"])
        style.sns.scatterplot(data=df[df["arm"].isin(arms)], x=f"config/{key}", y=metric, hue="arm", ax=ax, s=25)
        for arm, r in zip(arms, ranges, strict=True):
            ok = df[(df["arm"] == arm) & (df["status"] == "ok")]
            if ok.empty:
                continue
            lo, hi = (math.log(r["lower"]), math.log(r["upper"])) if log else (r["lower"], r["upper"])
            best = ok.loc[ok[metric].idxmax() if mode == "max" else ok[metric].idxmin()]
            x = math.log(best[f"config/{key}"]) if log else best[f"config/{key}"]
            near = min(x - lo, hi - x) < edge * (hi - lo)
            ax.scatter([best[f"config/{key}"]], [best[metric]], marker="*", s=200,
                       color=style.CONTROL if near else style.HIGHLIGHT, zorder=3)  # fmt: skip
            if near:
                ax.annotate("best near boundary", (best[f"config/{key}"], best[metric]), fontsize=7, color=style.CONTROL)
        if log:
            ax.set_xscale("log")
        ax.set_xlim(min(r["lower"] for r in ranges), max(r["upper"] for r in ranges))
        ax.set_xlabel(key)
        ax.set_ylabel(f"{metric} ({mode})")
        ax.legend(fontsize=6)
    return "nuisance_axes", fig


GENERIC = (fig_status, fig_top_curves)
