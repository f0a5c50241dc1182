"""The figures of study `question_generation`, drawn from its tables.

The checks they illustrate, and the measurements both use, live in `analysis/question_generation.py`.
"""

from functools import wraps

import numpy as np
import pandas as pd

from analysis.question_generation import (
    LEAK_TOL,
    Q1,
    Q2,
    check_qc1,
    languages,
    main_runs,
    measure,
    order_metric,
    runs,
    subset,
)
from analysis.verdict import Tables

DECODE_LABELS = {"su": "Su (sample a, greedy q)", "greedy_both": "greedy both", "sample_both": "sample both",
                 "beam_both": "beam both (width 3)", "su_span": "Su + span constraint"}  # fmt: skip


def for_language(fig, data: str):
    """A figure drawn from one data set's models, named `<figure>_<data>` (None without such models)."""

    def draw(t: Tables):
        if data not in languages(t):
            return None
        out = fig(subset(t, data))
        return None if out is None else (f"{out[0]}_{data}", out[1])

    draw.__name__ = f"{fig.__name__}_{data}"
    return draw


def one_language(fig):
    """A figure drawn only when the models come from one data set (below full); full draws `for_language`."""

    @wraps(fig)
    def draw(t: Tables):
        return fig(t) if len(languages(t)) <= 1 else None

    return draw


def _arm_means(t: Tables) -> pd.DataFrame:
    """Per main model and decoding arm: mean validity, coverage, distinct-pair ratio."""
    r = main_runs(t)
    rows = []
    arms = sorted({c.split("/")[1] for c in r.columns if c.startswith("final/") and c.endswith("/validity")},
                  key=lambda a: (a not in DECODE_LABELS, a))  # fmt: skip  # the named arms first, then the full grid
    for _, run in r.iterrows():
        for arm in arms:
            if f"final/{arm}/validity" in run and np.isfinite(run[f"final/{arm}/validity"]):
                values = {m: run[f"final/{arm}/{m}"] for m in ("validity", "coverage", "distinct_pair", "span_rate")}
                rows.append({"order": run["order"], "seed": run["seed"], "decode": arm, **values})
    return pd.DataFrame(rows)


def fig_pareto(t: Tables):
    """Figure 1: validity vs coverage, hue = decoding arm, marker = order; per-seed points and means."""
    from analysis import style

    m = _arm_means(t)
    if m.empty:
        return None
    fig, ax = style.plt.subplots(figsize=(6, 4.2))
    arms = list(dict.fromkeys(m["decode"]))
    colours = dict(zip(arms, style.sns.color_palette("colorblind" if len(arms) <= 10 else "husl", len(arms)), strict=True))
    for (arm, order), g in m.groupby(["decode", "order"]):
        marker = "o" if order == "AQ" else "s"
        ax.scatter(g["coverage"], g["validity"], color=colours[arm], marker=marker, alpha=0.35, s=18)
        ax.errorbar(g["coverage"].mean(), g["validity"].mean(), xerr=g["coverage"].std(ddof=0), yerr=g["validity"].std(ddof=0),
                    color=colours[arm], marker=marker, ms=8, label=f"{DECODE_LABELS.get(arm, arm)}, {order}")  # fmt: skip
    ax.axhline(Q1.threshold, color="grey", ls=":", lw=0.8)
    full = t.budget == "full"
    ax.set(xlabel="coverage of gold answers" if full else "coverage of askable (fact, slot) pairs",
           ylabel="round-trip F1" if full else "oracle validity", title="Q1/Q3 validity vs coverage")  # fmt: skip
    ax.legend(fontsize=6)
    return "pareto", fig


def fig_order_effect(t: Tables):
    """Figure 2: AQ - QA for validity, coverage (Su's decoding) and joint NLL, point-range with 95% CIs."""
    from analysis import style

    rows = []
    name = "round-trip EM" if t.budget == "full" else "validity"
    panels = ((f"{name} (points)", f"test/su/{order_metric(t)}"), ("coverage (points)", "test/su/coverage"),
              ("joint NLL (centinats)", "test/tf_nll"))  # fmt: skip
    for label, metric in panels:
        e = measure(t, ("AQ", metric), ("QA", metric))
        if e.n:
            rows.append((label, 100 * e.mean, 100 * e.low, 100 * e.high))
    if not rows:
        return None
    fig, ax = _point_ranges(rows)
    ax.axvline(0, color="grey", lw=0.8)
    gain = 100 * Q2.effect.threshold
    ax.axvline(gain, color=style.HIGHLIGHT, ls="--", lw=0.8, label=f"{gain:+g} points (Q2)")
    ax.set(xlabel="AQ - QA (95% CI)", title="Q2 order effect")
    ax.legend(fontsize=7)
    return "order_effect", fig


def _point_ranges(rows: list[tuple[str, float, float, float]]):
    """A point-range panel: one row per (label, estimate, low, high), labelled on the y axis."""
    from analysis import style

    fig, ax = style.plt.subplots(figsize=(6, 1 + 0.6 * len(rows)))
    for i, (_, mid, lo, hi) in enumerate(rows):
        ax.errorbar(mid, i, xerr=[[mid - lo], [hi - mid]], fmt="o", color=style.FLOODED)
    ax.set_yticks(range(len(rows)), [row[0] for row in rows])
    return fig, ax


def fig_pretraining(t: Tables):
    """Figure 6 (full): round-trip EM under Su's decoding by init x order, point-range with 95% CIs (Q5)."""

    r = runs(t)
    if r.empty or not (r["init"] == "pretrained").any():
        return None
    rows = []
    for init in ("pretrained", "random"):
        for order in ("AQ", "QA"):
            e = measure(t, (order, "test/su/validity_em", init))
            if e.n:
                rows.append((f"{init} {order}", 100 * e.mean, 100 * e.low, 100 * e.high))
    if not rows:
        return None
    fig, ax = _point_ranges(rows)
    ax.set(xlabel="round-trip EM, points (95% CI)", title="Q5 pre-trained vs random init")
    return "pretraining", fig


def fig_training(t: Tables):
    """Figure 3: validation teacher-forced NLL vs step, hue = order, facet = mask."""
    from analysis import style

    r = runs(t)
    if r.empty:
        return None
    curves = t.curves("val/tf_nll")
    if curves.empty:
        return None
    curves = curves.merge(r[["trial_id", "order", "mask"]], on="trial_id")
    masks = sorted(curves["mask"].unique())
    fig, axes = style.plt.subplots(1, len(masks), figsize=(4.2 * len(masks), 3.5), squeeze=False, sharey=True)
    for ax, mask in zip(axes[0], masks, strict=True):
        g = curves[curves["mask"] == mask]
        style.sns.lineplot(g, x="step", y="value", hue="order", units="trial_id", estimator=None, ax=ax, lw=1)
        ax.set(title=f"mask {mask}", ylabel="validation NLL per target token", yscale="log")
    return "training", fig


def fig_controls(t: Tables):
    """Figure 4: leak-test magnitudes per mask (log scale, zero floored) and the Q-C1 validity / NLL bars."""
    from analysis import style

    names = [("unilm", "future"), ("bidirectional", "future"), ("unilm", "padding"), ("unilm_nopad", "padding")]
    vals = [(f"{m}\n{k}", max(t.check(f"leak/{m}/{k}") or [np.nan])) for m, k in names]
    if all(np.isnan(v) for _, v in vals):
        return None
    fig, axes = style.plt.subplots(1, 2, figsize=(10, 3.6))
    ax = axes[0]
    ax.bar(range(len(vals)), [max(v, 1e-17) for _, v in vals],
           color=[style.CONTROL if "bidirectional" in n or "nopad" in n else style.FLOODED for n, _ in vals])  # fmt: skip
    ax.axhline(LEAK_TOL, color="grey", ls=":", lw=0.8, label=f"tolerance {LEAK_TOL:g}")
    ax.set_xticks(range(len(vals)), [n for n, _ in vals], fontsize=7)
    ax.set(yscale="log", ylabel="max |d logit / d e| (0 drawn at 1e-17)", title="exact leak tests")
    ax.legend(fontsize=7)
    r = runs(t)
    ctl = r[r["mask"] == "bidirectional"] if len(r) else r
    ref = main_runs(t)
    ref = ref[(ref["order"] == "AQ") & (ref["seed"] == 0)] if len(ref) else ref
    if len(ctl) and len(ref) and "final/su/validity" in r:
        labels = ["UniLM", "bidirectional"]
        val = [float(ref["final/su/validity"].iloc[0]), float(ctl["final/su/validity"].iloc[0])]
        d = check_qc1(t).detail
        nll = [d[0]["val_nll_unilm"], d[0]["val_nll_bidirectional"]] if d else [np.nan, np.nan]
        x = np.arange(2)
        axes[1].bar(x - 0.2, val, 0.4, color=style.FLOODED, label="validity (Su)")
        twin = axes[1].twinx()
        twin.bar(x + 0.2, nll, 0.4, color=style.CONTROL, label="validation NLL at the control's step")
        axes[1].set_xticks(x, labels)
        axes[1].set(ylabel="validity", title="Q-C1: copies under teacher forcing, garbage when generating")
        twin.set_ylabel("NLL per target token")
        axes[1].legend(loc="upper left", fontsize=7)
        twin.legend(loc="upper right", fontsize=7)
    else:
        axes[1].axis("off")
    return "controls", fig


def fig_span_constraint(t: Tables):
    """Figure 5: validity without and with the span constraint per seed (AQ), the span rate annotated."""
    from analysis import style

    m = _arm_means(t)
    if m.empty or not (m["decode"] == "su_span").any():
        return None
    a = m[(m["order"] == "AQ") & (m["decode"] == "su")].set_index("seed")
    b = m[(m["order"] == "AQ") & (m["decode"] == "su_span")].set_index("seed")
    fig, ax = style.plt.subplots(figsize=(4.5, 3.8))
    for s in sorted(set(a.index) & set(b.index)):
        ax.plot([0, 1], [a.loc[s, "validity"], b.loc[s, "validity"]], marker="o", color=style.FLOODED)
        ax.annotate(f"seed {s}: span rate {a.loc[s, 'span_rate']:.2f}", (0, a.loc[s, "validity"]), fontsize=6,
                    xytext=(-5, 0), textcoords="offset points", ha="right")  # fmt: skip
    ax.set_xticks([0, 1], ["Su", "Su + span"])
    ax.set_xlim(-0.8, 1.3)
    ax.set(ylabel="oracle validity (AQ)", title="Q4 span constraint")
    return "span_constraint", fig


def fig_diversity(t: Tables):
    """Figure 7: distinct-pair ratio by decoding arm, facet = order."""
    from analysis import style

    m = _arm_means(t)
    if m.empty:
        return None
    g = style.sns.catplot(m, x="decode", y="distinct_pair", col="order", kind="strip", height=3.4, aspect=1.2)
    g.set_axis_labels("decoding", "distinct (answer, question) / K")
    for ax in g.axes.flat:
        ax.tick_params(axis="x", labelsize=7, rotation=20)
    return "diversity", g.figure
