"""The figures of study `attention_scaling`, drawn from its tables; the measurements they share with the checks live in
`analysis/attention_scaling.py`."""

import itertools
import math

import numpy as np
import pandas as pd

from analysis import style
from analysis.attention_scaling import MARGIN, chosen_runs, l1_cells, l5_estimate, row_kl_samples, task_runs, timings
from analysis.verdict import Tables

IMPL_COLOURS = {"softmax": style.BASELINE, "sdpa": "#7f7f7f", "linear": style.FLOODED, "cumsum": style.HIGHLIGHT}
VARIANT_COLOURS = {"softmax": style.BASELINE, "linear_elu": style.FLOODED, "linear_cos": style.HIGHLIGHT, "taylor2": "#2ca02c",
                   "softmax_per_token": "#9467bd"}  # fmt: skip


def fig_time(t: Tables):
    """Spec figure 1: median time vs n (log-log), hue = implementation, columns = d, rows = pass; n* and d^2 band."""
    w = timings(t)
    if w.empty:
        return None
    long = pd.concat([w.assign(passes=p, ms=w[f"time/{p}_ms"]) for p in ("fwd", "fwdbwd") if f"time/{p}_ms" in w])
    long = long.dropna(subset=["ms"]).assign(form=lambda x: x["impl"] + np.where(x["causal"].astype(bool), " (causal)", ""))
    ds = sorted(long["d"].unique())
    fig, axes = style.plt.subplots(2, len(ds), figsize=(4.5 * len(ds), 7), squeeze=False, sharex=True)
    cells = {c["d"]: c for c in l1_cells(t)}
    for (i, p), (j, d) in itertools.product(enumerate(("fwd", "fwdbwd")), enumerate(ds)):
        ax, g = axes[i][j], long[(long["d"] == d) & (long["passes"] == p)]
        for (form, impl), h in g.groupby(["form", "impl"]):
            ax.plot(h["n"], h["ms"], "o-" if "causal" in form else "s--", ms=3, color=IMPL_COLOURS.get(impl), label=form)
        if len(g):
            grid = np.array([g["n"].min(), g["n"].max()])
            for k in (1, 2):
                ax.plot(grid, g["ms"].min() * (grid / grid[0]) ** k, ":", color="grey", lw=0.8)
        if d in cells and not math.isnan(cells[d]["n_star"]):
            low, high = cells[d]["n_star_ci"]
            ax.axvline(cells[d]["n_star"], color=style.CONTROL, lw=0.8, label="n* (non-causal fwd)")
            if math.isfinite(low) and high > low:  # its 95% interval over the repeats (amendment A1)
                ax.axvspan(low, min(high, g["n"].max()), color=style.CONTROL, alpha=0.12, lw=0)
        ax.axvspan(0.5 * d * d, 2 * d * d, color=style.BAND, alpha=0.3)
        ax.set(xscale="log", yscale="log", title=f"d = {d}, {p}", xlabel="n", ylabel="median ms")
    axes[0][0].legend(fontsize=6)
    fig.suptitle("L1: time vs length (dotted guides: slopes 1 and 2; band: [0.5, 2] d^2)", y=1.01)
    return "time_vs_length", fig


def fig_memory(t: Tables):
    """Spec figure 2: bytes kept for backward vs n, causal forms, with the d^2 line."""
    w = timings(t)
    if w.empty or "mem/saved_bytes" not in w:
        return None
    w = w[w["causal"].astype(bool) & w["mem/saved_bytes"].notna()]
    ds = sorted(w["d"].unique())
    fig, axes = style.plt.subplots(1, len(ds), figsize=(4.5 * len(ds), 3.6), squeeze=False)
    for ax, d in zip(axes[0], ds, strict=True):
        for impl, h in w[w["d"] == d].groupby("impl"):
            ax.plot(h["n"], h["mem/saved_bytes"] / 2**20, "o-", ms=3, color=IMPL_COLOURS.get(impl), label=impl)
        ax.axvline(d * d, color=style.CONTROL, ls=":", label="n = d^2")
        ax.set(xscale="log", yscale="log", title=f"d = {d}, causal", xlabel="n", ylabel="MiB kept for backward")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("L1: memory vs length (cumsum keeps n d^2, softmax n^2, chunked ~ n)", y=1.02)
    return "memory_vs_length", fig


def fig_decode(t: Tables):
    """Spec figure 3: per-token decode latency vs position for the three paths."""
    if task_runs(t, "decode").empty:
        return None
    fig, ax = style.plt.subplots(figsize=(5.5, 3.6))
    for metric, label, colour in [("decode/rnn_ms", "RNN linear", style.FLOODED), ("decode/kv_ms", "KV-cached softmax",
                                  style.BASELINE), ("decode/uncached_ms", "uncached softmax", "#7f7f7f")]:  # fmt: skip
        c = t.curves(metric)
        ax.plot(c["step"], c["value"], "o-", ms=3, color=colour, label=label)
    ax.set(yscale="log", xlabel="position", ylabel="ms per token")
    ax.legend(fontsize=7)
    fig.suptitle("L3: decode latency vs position", y=1.02)
    return "decode_latency", fig


def fig_equivalence(t: Tables):
    """Spec figure 4: max |delta| per form pair and dtype (log y) with tolerances; controls in red, above the line."""
    rows = []
    for m in t.checks["metric"].unique() if len(t.checks) else ():
        v = max(t.check(m)[0], 1e-18)  # exact agreement drawn at 1e-18 on the log axis
        if m.startswith(("l3/", "l2/assoc")):
            check, dtype = m.split("/", 1)[1].rsplit("/", 1)
            rows.append({"check": check, "dtype": dtype, "value": v, "kind": "form"})
        elif m.startswith(("l4/leak/", "lc1/", "lc2/")):
            control = m.startswith("lc") and m.rsplit("/", 1)[1] != "zeroed" or m.endswith("linformer")
            rows.append({"check": m, "dtype": "float64", "value": v, "kind": "control" if control else "leak"})
    if not rows:
        return None
    fig, ax = style.plt.subplots(figsize=(8, 4))
    colours = {"form": style.FLOODED, "leak": style.BASELINE, "control": style.CONTROL}
    for i, r in enumerate(rows):
        ax.scatter(i, r["value"], color=colours[r["kind"]], marker="o" if r["dtype"] == "float64" else "^")
    ax.axhline(1e-10, color="grey", ls=":", label="float64 tolerance 1e-10")
    ax.axhline(1e-5, color="grey", ls="--", label="float32 tolerance 1e-5")
    ax.set_xticks(range(len(rows)), [f"{r['check']} ({r['dtype']})" for r in rows], rotation=70, fontsize=6, ha="right")
    ax.set(yscale="log", ylabel="max |delta| (1e-18 = exact)")
    ax.legend(fontsize=7)
    fig.suptitle("L2-L4: form agreement and leak tests (controls in red must lie above)", y=1.02)
    return "equivalence", fig


def fig_quality(t: Tables):
    """Spec figure 5: validation bits/char vs step per variant; test delta vs softmax with the margin; recall."""
    runs = chosen_runs(t, ok=True)
    if runs.empty:
        return None
    fig, axes = style.plt.subplots(1, 3, figsize=(14, 3.8))
    c = t.curves("val/bpc")
    c = c[c["trial_id"].isin(runs["trial_id"])].rename(columns={"config/attn": "attn"})
    for attn, g in c.groupby("attn"):
        s = g.groupby("step")["value"].agg(["mean", "min", "max"])
        axes[0].plot(s.index, s["mean"], color=VARIANT_COLOURS.get(attn), label=attn)
        axes[0].fill_between(s.index, s["min"], s["max"], color=VARIANT_COLOURS.get(attn), alpha=0.2)
    axes[0].set(xlabel="step", ylabel="validation bits per token", title="seeds at the chosen lr (band: min-max)")
    axes[0].legend(fontsize=7)
    names = [a for a in VARIANT_COLOURS if a != "softmax" and a in set(runs["attn"])]
    for i, attn in enumerate(names):
        mean, low, high, n, _ = l5_estimate(t, attn)
        if n:
            axes[1].errorbar(mean, i, xerr=[[mean - low], [high - mean]], fmt="o", color=VARIANT_COLOURS[attn])
    axes[1].axvspan(-MARGIN, MARGIN, color=style.BAND, alpha=0.3, label="+-ln 1.05")
    axes[1].axvline(0, color="grey", lw=0.8)
    axes[1].set_yticks(range(len(names)), names)
    axes[1].set(xlabel="test nats/token vs softmax (90% CI)", title="L5 margin")
    rec = chosen_runs(t, "recall", ok=True)
    if len(rec) and "test/recall_acc" in rec:
        order = [a for a in VARIANT_COLOURS if a in set(rec["attn"])]
        for i, a in enumerate(order):
            vals = rec[rec["attn"] == a]["test/recall_acc"]
            axes[2].scatter(vals, [i] * len(vals), color=VARIANT_COLOURS[a])
        axes[2].set_yticks(range(len(order)), order)
        axes[2].set(xlabel="MQAR test accuracy (per seed)", title="recall")
    fig.suptitle("L5/L6: quality per attention variant", y=1.02)
    return "quality", fig


def fig_row_kl(t: Tables):
    """Spec figure 6: attention-row KL to the trained softmax model's rows, per kernel variant, and row entropies."""
    kl = row_kl_samples(t)
    if kl.empty:
        return None
    fig, axes = style.plt.subplots(1, 2, figsize=(10, 3.6))
    order = [v for v in VARIANT_COLOURS if v in set(kl["variant"])]
    style.sns.violinplot(data=kl, x="variant", y="kl", order=order, hue="variant", palette=VARIANT_COLOURS, ax=axes[0],
                         cut=0, legend=False)  # fmt: skip
    axes[0].set(ylabel="KL(softmax row || kernel row)", xlabel="")
    runs = task_runs(t, "lm")
    soft = runs[runs["config/attn"] == "softmax"]
    ent = {v: soft[f"attn/row_entropy/{v}"].mean() for v in ["softmax", *order] if f"attn/row_entropy/{v}" in soft}
    axes[1].bar(list(ent), list(ent.values()), color=[VARIANT_COLOURS.get(v, "grey") for v in ent])
    axes[1].set(ylabel="mean row entropy (nats)", xlabel="")
    for ax in axes:
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle("L6: how close each kernel's rows are to softmax's (same q, k)", y=1.02)
    return "row_kl", fig
