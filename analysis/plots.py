"""Figures every study gets, whatever its claims: trial outcomes and an isolation plot of the scientific factors."""

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
    ax.set_ylabel("arm")
    ax.legend(loc="lower right", fontsize=7)
    return "trial_status", fig


def fig_top_curves(t: Tables, metric: str = "val/acc", k: int = 3):
    """Training curves (the study's validation metric) of the k best arms by final mean."""
    curves = t.curves(metric)
    if curves.empty:
        return None
    final = curves.groupby("trial_id").tail(1).groupby("arm")["value"].mean().sort_values(ascending=False)
    top = curves[curves["arm"].isin(final.index[:k])]
    fig, ax = style.plt.subplots(figsize=(6, 4))
    style.sns.lineplot(data=top, x="step", y="value", hue="arm", errorbar="se", ax=ax)
    ax.set_ylabel(metric)
    ax.set_xlabel("step")
    return "top_curves", fig


GENERIC = (fig_status, fig_top_curves)
