"""The figures of study `question_generation`, drawn from its tables.

The checks they illustrate, and the measurements both use, live in `analysis/question_generation.py`.
"""

from functools import wraps

import numpy as np
import pandas as pd

from analysis import question_generation as qa
from analysis import style
from analysis.verdict import Tables

DECODE_LABELS = {"su": "Su (sample a, greedy q)", "greedy_both": "greedy both", "sample_both": "sample both",
                 "beam_both": "beam both (width 3)", "su_span": "Su + span constraint"}  # fmt: skip


def for_language(fig, data: str):
    """A figure drawn from one data set's models, named `<figure>_<data>` (None without such models)."""

    def draw(t: Tables):
        out = fig(qa.subset(t, data)) if data in qa.languages(t) else None
        return None if out is None else (f"{out[0]}_{data}", out[1])

    draw.__name__ = f"{fig.__name__}_{data}"
    return draw


def one_language(fig):
    """A figure drawn only when the models come from one data set (below full); full draws `for_language`."""
    return wraps(fig)(lambda t: fig(t) if len(qa.languages(t)) <= 1 else None)


def _arm_means(t: Tables) -> pd.DataFrame:
    """Per main model and decoding arm (the named arms first, then the full grid): validity, coverage, distinct-pair
    ratio and span rate, where the arm's validity is finite."""
    r = qa.main_runs(t)
    arms = sorted({c.split("/")[1] for c in r.columns if c.startswith("final/") and c.endswith("/validity")},
                  key=lambda a: (a not in DECODE_LABELS, a))  # fmt: skip
    metrics = ("validity", "coverage", "distinct_pair", "span_rate")
    m = [r[["order", "seed"]].assign(decode=a, **{k: r[f"final/{a}/{k}"] for k in metrics}) for a in arms]
    m = pd.concat(m, ignore_index=True) if m else pd.DataFrame()
    return m[np.isfinite(m["validity"])] if len(m) else m


def fig_pareto(t: Tables):
    """Figure 1: validity vs coverage, hue = decoding arm, marker = order; per-seed points and means."""
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
    ax.axhline(qa.Q1.threshold, color="grey", ls=":", lw=0.8)
    full = t.budget == "full"
    ax.set(xlabel="coverage of gold answers" if full else "coverage of askable (fact, slot) pairs",
           ylabel="round-trip F1" if full else "oracle validity", title="Q1/Q3 validity vs coverage")  # fmt: skip
    ax.legend(fontsize=6)
    return "pareto", fig


def _point_ranges(estimates: dict, xlabel: str, title: str):
    """A point-range panel in points (x 100) of the estimates with seeds, one row each, labelled on the y axis;
    (None, None) without any."""
    rows = {label: e for label, e in estimates.items() if e.n}
    if not rows:
        return None, None
    fig, ax = style.plt.subplots(figsize=(6, 1 + 0.6 * len(rows)))
    for i, e in enumerate(rows.values()):
        ax.errorbar(100 * e.mean, i, xerr=[[100 * (e.mean - e.low)], [100 * (e.high - e.mean)]], fmt="o", color=style.FLOODED)
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set(xlabel=xlabel, title=title)
    return fig, ax


def fig_order_effect(t: Tables):
    """Figure 2: AQ - QA for validity, coverage (Su's decoding) and joint NLL, point-range with 95% CIs."""
    name = "round-trip EM" if t.budget == "full" else "validity"
    panels = {f"{name} (points)": f"test/su/{qa.order_metric(t)}", "coverage (points)": "test/su/coverage",
              "joint NLL (centinats)": "test/tf_nll"}  # fmt: skip
    estimates = {label: qa.measure(t, ("AQ", metric), ("QA", metric)) for label, metric in panels.items()}
    fig, ax = _point_ranges(estimates, "AQ - QA (95% CI)", "Q2 order effect")
    if fig is None:
        return None
    ax.axvline(0, color="grey", lw=0.8)
    gain = 100 * qa.Q2.effect.threshold
    ax.axvline(gain, color=style.HIGHLIGHT, ls="--", lw=0.8, label=f"{gain:+g} points (Q2)")
    ax.legend(fontsize=7)
    return "order_effect", fig


def fig_pretraining(t: Tables):
    """Figure 6 (full): round-trip EM under Su's decoding by init x order, point-range with 95% CIs (Q5)."""
    r = qa.runs(t)
    if r.empty or not (r["init"] == "pretrained").any():
        return None
    em = {f"{i} {o}": qa.measure(t, (o, "test/su/validity_em", i)) for i in ("pretrained", "random") for o in ("AQ", "QA")}
    fig, _ = _point_ranges(em, "round-trip EM, points (95% CI)", "Q5 pre-trained vs random init")
    return None if fig is None else ("pretraining", fig)


def fig_training(t: Tables):
    """Figure 3: validation teacher-forced NLL vs step, hue = order, facet = mask."""
    r, curves = qa.runs(t), t.curves("val/tf_nll")
    if r.empty or curves.empty:
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
    names = [("unilm", "future"), ("bidirectional", "future"), ("unilm", "padding"), ("unilm_nopad", "padding")]
    vals = [(f"{m}\n{k}", max(t.check(f"leak/{m}/{k}") or [np.nan])) for m, k in names]
    if all(np.isnan(v) for _, v in vals):
        return None
    fig, (ax, right) = style.plt.subplots(1, 2, figsize=(10, 3.6))
    ax.bar(range(len(vals)), [max(v, 1e-17) for _, v in vals],
           color=[style.CONTROL if "bidirectional" in n or "nopad" in n else style.FLOODED for n, _ in vals])  # fmt: skip
    ax.axhline(qa.LEAK_TOL, color="grey", ls=":", lw=0.8, label=f"tolerance {qa.LEAK_TOL:g}")
    ax.set_xticks(range(len(vals)), [n for n, _ in vals], fontsize=7)
    ax.set(yscale="log", ylabel="max |d logit / d e| (0 drawn at 1e-17)", title="exact leak tests")
    ax.legend(fontsize=7)
    pair = qa.control_runs(t)  # (bidirectional, UniLM)
    if pair is None or "final/su/validity" not in pair[0]:
        right.axis("off")
        return "controls", fig
    d = qa.check_qc1(t).detail
    x = np.arange(2)
    val = [float(run["final/su/validity"]) for run in pair[::-1]]
    right.bar(x - 0.2, val, 0.4, color=style.FLOODED, label="validity (Su)")
    twin = right.twinx()
    nll = [d[0]["val_nll_unilm"], d[0]["val_nll_bidirectional"]] if d else [np.nan, np.nan]
    twin.bar(x + 0.2, nll, 0.4, color=style.CONTROL, label="validation NLL at the control's step")
    right.set_xticks(x, ["UniLM", "bidirectional"])
    right.set(ylabel="validity", title="Q-C1: copies under teacher forcing, garbage when generating")
    twin.set_ylabel("NLL per target token")
    right.legend(loc="upper left", fontsize=7)
    twin.legend(loc="upper right", fontsize=7)
    return "controls", fig


def fig_span_constraint(t: Tables):
    """Figure 5: validity without and with the span constraint per seed (AQ), the span rate annotated."""
    m = _arm_means(t)
    if m.empty or not (m["decode"] == "su_span").any():
        return None
    a, b = (m[(m["order"] == "AQ") & (m["decode"] == arm)].set_index("seed") for arm in ("su", "su_span"))
    fig, ax = style.plt.subplots(figsize=(4.5, 3.8))
    for s in sorted(set(a.index) & set(b.index)):
        ax.plot([0, 1], [a.loc[s, "validity"], b.loc[s, "validity"]], marker="o", color=style.FLOODED)
        ax.annotate(f"seed {s}: span rate {a.loc[s, 'span_rate']:.2f}", (0, a.loc[s, "validity"]), fontsize=6,
                    xytext=(-5, 0), textcoords="offset points", ha="right")  # fmt: skip
    ax.set_xticks([0, 1], ["Su", "Su + span"])
    ax.set(xlim=(-0.8, 1.3), ylabel="oracle validity (AQ)", title="Q4 span constraint")
    return "span_constraint", fig


def fig_diversity(t: Tables):
    """Figure 7: distinct-pair ratio by decoding arm, facet = order."""
    m = _arm_means(t)
    if m.empty:
        return None
    g = style.sns.catplot(m, x="decode", y="distinct_pair", col="order", kind="strip", height=3.4, aspect=1.2)
    g.set_axis_labels("decoding", "distinct (answer, question) / K")
    for ax in g.axes.flat:
        ax.tick_params(axis="x", labelsize=7, rotation=20)
    return "diversity", g.figure
