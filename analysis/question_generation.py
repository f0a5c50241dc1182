"""Question generation (UniLM seq2seq): claim checks and figures, computed from the study's Parquet tables alone.

Each trial (one trained model) reports at its last step per-test-passage series (`series` = passage): `test/tf_nll`
(the teacher-forced NLL per target token of the passage's gold pair) and, per decoding arm, `test/{arm}/{metric}`
for validity, span_rate, coverage, distinct_pair and distinct_2 over K samples. Training reports `train/loss` and
`val/tf_nll` at evaluation steps. The exact checks hold the leak gradients of each mask.

Paired differences are per test passage within a seed (the same passages in every arm); CIs are hierarchical
bootstraps (seeds, then passages). The "CI excludes 0" conditions of Q2-Q4 use two-sided bootstrap p-values,
Holm-adjusted across the four tests of the family (Q2's order difference, Q3's validity and coverage differences,
Q4's span-constraint difference).

Plotting and scipy are imported inside the functions that use them (Ray workers import this module).
"""

from dataclasses import replace
from functools import wraps

import numpy as np
import pandas as pd

from analysis.verdict import FAIL, INCONCLUSIVE, PASS, REFUTED, SUPPORTED, Tables, Verdict

LEAK_TOL = 1e-12
VIABLE = 0.60  # Q1
ORDER_GAIN = 0.02  # Q2
VALIDITY_GAIN, COVERAGE_GAIN = 0.02, 0.10  # Q3
SPAN_RATE = 0.95  # Q4
PRETRAINED_GAIN = 0.10  # Q5 (round-trip EM, full)
UTILITY_MARGIN = -0.01  # Q2 at full: utility EM of AQ - QA "not worse" than -1 point
GARBAGE = 0.5  # Q-C1: validity <= 0.5 x the UniLM model's
ALPHA = 0.05
CALIBRATION = 0.3  # spec 5.2: AQ seed-0 validity below this at local means the steps should have been doubled
CALIBRATED_STEPS = 3000  # ... from 1500
DECODE_LABELS = {"su": "Su (sample a, greedy q)", "greedy_both": "greedy both", "sample_both": "sample both",
                 "beam_both": "beam both (width 3)",
                 "su_span": "Su + span constraint"}  # fmt: skip

REAL_QA = ("squad", "webqa")
"""The full budget's data sets, one report section each (the smoke and local budgets train on generated data)."""


def at_smoke(t: Tables, v: Verdict) -> Verdict:
    """Empirical claims only report their direction at smoke: SUPPORTED/REFUTED become INCONCLUSIVE with the
    would-be verdict in the reason."""
    if t.budget != "smoke" or v.verdict not in (SUPPORTED, REFUTED):
        return v
    return replace(v, verdict=INCONCLUSIVE, reason=f"smoke, reported only (would be {v.verdict}): {v.reason}")


def languages(t: Tables) -> list[str]:
    """The data sets of the trained models (full: `squad` and `webqa`; one below)."""
    tr = t.trials
    if tr.empty or "config/data" not in tr:
        return []
    return sorted(tr.loc[tr["status"] == "ok", "config/data"].dropna().unique())


_SUBSETS: dict = {}


def subset(t: Tables, data: str) -> Tables:
    """The tables of one data set's models (the exact checks are shared); cached per (tables, data)."""
    key = (id(t), data)
    if key in _SUBSETS and _SUBSETS[key][0] is t:
        return _SUBSETS[key][1]
    trials = t.trials[t.trials["config/data"] == data].reset_index(drop=True)
    metrics = t.metrics[t.metrics["trial_id"].isin(trials["trial_id"])].reset_index(drop=True)
    tuning = t.tuning[t.tuning["config/data"] == data] if "config/data" in t.tuning else t.tuning
    sub = Tables(t.budget, trials, metrics, t.checks, tuning.reset_index(drop=True))
    if len(_SUBSETS) > 8:
        _SUBSETS.clear()
    _SUBSETS[key] = (t, sub)
    return sub


def per_language(check):
    """A claim check applied to each data set when the study has several (full: English and Chinese) and combined:
    a claim gets SUPPORTED or REFUTED only if every language agrees, else INCONCLUSIVE; a control FAILs only if it
    fails in every language (PASS in any one makes the study INVALID). The effect and CI shown are the first
    language's; the reason gives each."""

    @wraps(check)
    def combined(t: Tables) -> Verdict:
        langs = languages(t)
        if len(langs) <= 1:
            return check(t)
        parts = {d: check(subset(t, d)) for d in langs}
        found = {v.verdict for v in parts.values()}
        if found <= {PASS, FAIL}:
            verdict = PASS if PASS in found else FAIL
        else:
            verdict = found.pop() if len(found) == 1 else INCONCLUSIVE
        first = parts[langs[0]]
        reason = "; ".join(f"{d}: {v.verdict}, {v.reason}" for d, v in parts.items())
        detail = [{"data": d, "verdict": v.verdict, "effect": v.effect, "low": v.ci_low, "high": v.ci_high}
                  for d, v in parts.items()]  # fmt: skip
        return replace(first, verdict=verdict, reason=f"(effect and CI: {langs[0]}) {reason}", detail=detail)

    return combined


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


def runs(t: Tables) -> pd.DataFrame:
    """Finished models with columns `trial_id, order, mask, seed, steps, init`."""
    tr = t.trials
    if tr.empty or "config/task" not in tr:
        return pd.DataFrame()
    out = tr[(tr["status"] == "ok") & (tr["config/task"] == "qg")].copy()
    out["order"], out["mask"], out["seed"] = out["config/order"], out["config/mask"], out["config/seed"].astype(int)
    out["steps"] = out["config/steps"].astype(int)
    out["init"] = out.get("config/init", "random")
    return out


def main_runs(t: Tables, init: str | None = None) -> pd.DataFrame:
    """The UniLM models of the claims' arm: BERT-initialised where the study has them (full), else random init."""
    r = runs(t)
    if r.empty:
        return r
    init = init or ("pretrained" if (r["init"] == "pretrained").any() else "random")
    return r[(r["mask"] == "unilm") & (r["init"] == init)]


def beam_arm(t: Tables) -> str:
    """Q3's deterministic reference: beam_both at full, greedy_both (a width-1 beam) below (spec 3)."""
    return "beam_both" if t.budget == "full" else "greedy_both"


def order_metric(t: Tables) -> str:
    """Q2's validity: round-trip EM at full (spec 3), the oracle's validity below."""
    return "validity_em" if t.budget == "full" else "validity"


def per_passage(t: Tables, trial_id: str, metric: str) -> np.ndarray:
    """One trial's per-test-passage series, in passage order."""
    return t.series(metric, trial_id)


def by_seed(t: Tables, order: str, metric: str, init: str | None = None) -> dict[int, np.ndarray]:
    """Seed -> per-passage values of `metric` for the main model of `order` (of `init`; default the claims' arm)."""
    r = main_runs(t, init)
    if r.empty:
        return {}
    r = r[r["order"] == order]
    out = {int(s): per_passage(t, tid, metric) for s, tid in zip(r["seed"], r["trial_id"], strict=True)}
    return {s: v for s, v in out.items() if len(v)}


def paired(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> list[np.ndarray]:
    """Per seed, a - b per passage (passages where both are finite)."""
    out = []
    for s in sorted(set(a) & set(b)):
        if len(a[s]) == len(b[s]):
            d = a[s] - b[s]
            out.append(d[np.isfinite(d)])
    return out


def estimate(groups: list[np.ndarray], null: float = 0.0) -> dict:
    """Mean with its 95% hierarchical bootstrap CI (seeds, then passages; 10,000 resamples) and the two-sided
    bootstrap p-value against `null`."""
    from analysis.stats import hierarchical_mean_distribution

    boot = hierarchical_mean_distribution(groups)
    low, high = np.percentile(boot, [2.5, 97.5])
    below, above = (np.sum(boot <= null) + 1) / (len(boot) + 1), (np.sum(boot >= null) + 1) / (len(boot) + 1)
    return {"effect": float(np.concatenate(groups).mean()), "low": float(low), "high": float(high),
            "p": float(min(1.0, 2 * min(below, above))), "seeds": len(groups),
            "passages": int(sum(map(len, groups)))}  # fmt: skip


_FAMILY: dict = {}  # id(tables) -> (tables, family), checked by identity: Q2-Q4 and a figure share it


def family(t: Tables) -> dict[str, dict]:
    """The Holm family of Q2-Q4: each test's estimate with its Holm-adjusted p (`p_holm`); missing tests left out."""
    if id(t) in _FAMILY and _FAMILY[id(t)][0] is t:
        return _FAMILY[id(t)][1]
    from analysis.stats import holm

    tests = {
        "Q2": paired(by_seed(t, "AQ", f"test/su/{order_metric(t)}"), by_seed(t, "QA", f"test/su/{order_metric(t)}")),
        "Q3_validity": paired(by_seed(t, "AQ", "test/su/validity"), by_seed(t, "AQ", "test/sample_both/validity")),
        "Q3_coverage": paired(by_seed(t, "AQ", "test/su/coverage"), by_seed(t, "AQ", f"test/{beam_arm(t)}/coverage")),
        "Q4": paired(by_seed(t, "AQ", "test/su_span/validity"), by_seed(t, "AQ", "test/su/validity")),
    }
    out = {k: estimate(g) for k, g in tests.items() if g and sum(map(len, g))}
    for key, p in zip(out, holm([e["p"] for e in out.values()]), strict=True):
        out[key]["p_holm"] = p
    if len(_FAMILY) > 8:  # keep the last few (one study's tables and its language subsets)
        _FAMILY.clear()
    _FAMILY[id(t)] = (t, out)
    return out


def calibration_problem(t: Tables) -> str:
    """Spec 5.2's pre-registered rule: at local, AQ validity at seed 0 below 0.3 means the steps must be doubled
    (and the seeds cut to 3). Returns the reason the claims cannot stand, or ''."""
    if t.budget != "local":
        return ""
    v = by_seed(t, "AQ", "test/su/validity").get(0)
    r = main_runs(t)
    if v is None or r.empty:
        return ""
    if float(np.mean(v)) < CALIBRATION and int(r["steps"].max()) < CALIBRATED_STEPS:
        return f"calibration rule: AQ seed-0 validity {np.mean(v):.3f} < {CALIBRATION} but steps were not doubled"
    return ""


def _guard(t: Tables, v: Verdict) -> Verdict:
    problem = calibration_problem(t)
    if problem and v.verdict in (SUPPORTED, REFUTED):
        v = replace(v, verdict=INCONCLUSIVE, reason=f"{problem} (would be {v.verdict}): {v.reason}")
    return at_smoke(t, v)


def _fmt(e: dict, scale: float = 100, unit: str = " points") -> str:
    p = f", Holm p = {e['p_holm']:.3g}" if "p_holm" in e else ""
    return f"{scale * e['effect']:+.1f}{unit} [{scale * e['low']:+.1f}, {scale * e['high']:+.1f}]{p}"


@per_language
def check_q1(t: Tables) -> Verdict:
    """Q1: AQ validity under Su's decoding against 0.60."""
    groups = list(by_seed(t, "AQ", "test/su/validity").values())
    if not groups:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no AQ model decoded with Su's decoding")
    e = estimate(groups)
    v = SUPPORTED if e["low"] >= VIABLE else (REFUTED if e["high"] < VIABLE else INCONCLUSIVE)
    return _guard(t, Verdict(v, f"AQ validity (Su's decoding) {e['effect']:.3f} [{e['low']:.3f}, {e['high']:.3f}] vs "
                                f"{VIABLE}; {e['seeds']} seeds x {e['passages'] // max(1, e['seeds'])} test passages",
                             effect=e["effect"], ci_low=e["low"], ci_high=e["high"], threshold=VIABLE, n_seeds=e["seeds"],
                             detail=[e]))  # fmt: skip


@per_language
def check_q2(t: Tables) -> Verdict:
    """Q2: validity(AQ) - validity(QA) under Su's decoding, with the teacher-forced joint NLL beside it."""
    e = family(t).get("Q2")
    if e is None:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: AQ and QA models of the same seeds missing")
    sig = e["p_holm"] < ALPHA
    v = SUPPORTED if e["effect"] >= ORDER_GAIN and sig else (REFUTED if e["high"] < ORDER_GAIN else INCONCLUSIVE)
    nll = paired(by_seed(t, "AQ", "test/tf_nll"), by_seed(t, "QA", "test/tf_nll"))
    nll_text = ""
    if nll:
        n = estimate(nll)
        nll_text = f"; diagnostic: joint NLL per token AQ - QA {n['effect']:+.4f} [{n['low']:+.4f}, {n['high']:+.4f}] nats"
    if t.budget == "full":  # spec 3: at full the utility EM of AQ must also be "not worse" (CI lower end > -1 point)
        u = paired(by_seed(t, "AQ", "utility/em"), by_seed(t, "QA", "utility/em"))
        ue = estimate(u) if u and sum(map(len, u)) else None
        nll_text += f"; utility EM AQ - QA {_fmt(ue)} (needs CI lower end > {100 * UTILITY_MARGIN:+.0f})" if ue else ""
        if v == SUPPORTED and (ue is None or ue["low"] <= UTILITY_MARGIN):
            v, nll_text = INCONCLUSIVE, nll_text + ("; no utility runs" if ue is None else "; utility not shown not worse")
    name = "round-trip EM" if t.budget == "full" else "validity"
    return _guard(t, Verdict(v, f"{name} AQ - QA {_fmt(e)} vs +{100 * ORDER_GAIN:.0f} points; {e['seeds']} seeds"
                                + nll_text, effect=e["effect"], ci_low=e["low"], ci_high=e["high"], p_value=e["p_holm"],
                             threshold=ORDER_GAIN, n_seeds=e["seeds"], detail=[e]))  # fmt: skip


@per_language
def check_q3(t: Tables) -> Verdict:
    """Q3: Su vs sample_both on validity and Su vs greedy_both on coverage (AQ models)."""
    f = family(t)
    val, cov = f.get("Q3_validity"), f.get("Q3_coverage")
    if val is None or cov is None:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: Su, sample_both and greedy_both decodings missing")
    up = [val["effect"] >= VALIDITY_GAIN and val["p_holm"] < ALPHA and val["low"] > 0,
          cov["effect"] >= COVERAGE_GAIN and cov["p_holm"] < ALPHA and cov["low"] > 0]  # fmt: skip
    down = (val["p_holm"] < ALPHA and val["high"] < 0) or (cov["p_holm"] < ALPHA and cov["high"] < 0)
    v = SUPPORTED if all(up) else (REFUTED if down else INCONCLUSIVE)
    reason = (
        f"validity Su - sample_both {_fmt(val)} (needs >= +{100 * VALIDITY_GAIN:.0f}); coverage Su - {beam_arm(t)} "
        f"{_fmt(cov)} (needs >= +{100 * COVERAGE_GAIN:.0f}); {val['seeds']} seeds"
    )
    detail = [{"test": "validity", **val}, {"test": "coverage", **cov}]
    p = max(val["p_holm"], cov["p_holm"])
    verdict = Verdict(v, reason, val["effect"], val["low"], val["high"], p, VALIDITY_GAIN, val["seeds"], detail)
    return _guard(t, verdict)


@per_language
def check_q4(t: Tables) -> Verdict:
    """Q4: span rate of unconstrained answers below 95%, and the span constraint's validity gain."""
    rate = list(by_seed(t, "AQ", "test/su/span_rate").values())
    e = family(t).get("Q4")
    if not rate or e is None:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no span-constrained decoding at this budget")
    r = estimate(rate)
    gain = e["p_holm"] < ALPHA and e["low"] > 0
    loss = e["p_holm"] < ALPHA and e["high"] < 0
    v = SUPPORTED if r["high"] < SPAN_RATE and gain else (REFUTED if r["low"] >= SPAN_RATE or loss else INCONCLUSIVE)
    reason = (
        f"span rate {r['effect']:.3f} [{r['low']:.3f}, {r['high']:.3f}] vs {SPAN_RATE}; validity with - without the "
        f"span constraint {_fmt(e)}; {e['seeds']} seeds"
    )
    detail = [{"test": "span_rate", **r}, {"test": "constraint", **e}]
    return _guard(t, Verdict(v, reason, e["effect"], e["low"], e["high"], e["p_holm"], SPAN_RATE, e["seeds"], detail))


@per_language
def check_q5(t: Tables) -> Verdict:
    """Q5: round-trip EM of the BERT-initialised AQ models minus the randomly initialised ones (full budget only),
    paired by test passage within seed: SUPPORTED if >= 10 points with the CI excluding 0, REFUTED if the CI's
    upper end is below 10 points."""
    r = runs(t)
    if r.empty or not (r["init"] == "pretrained").any():
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no pretrained-init models (full budget only)")
    d = paired(by_seed(t, "AQ", "test/su/validity_em", "pretrained"), by_seed(t, "AQ", "test/su/validity_em", "random"))
    if not d or not sum(map(len, d)):
        return Verdict(INCONCLUSIVE, "pretrained and random-init AQ models of the same seeds are missing")
    e = estimate(d)
    v = (
        SUPPORTED
        if e["effect"] >= PRETRAINED_GAIN and e["low"] > 0
        else (REFUTED if e["high"] < PRETRAINED_GAIN else INCONCLUSIVE)
    )
    reason = f"round-trip EM pretrained - random init {_fmt(e)} vs +{100 * PRETRAINED_GAIN:.0f} points; {e['seeds']} seeds"
    return at_smoke(t, Verdict(v, reason, e["effect"], e["low"], e["high"], e["p"], PRETRAINED_GAIN, e["seeds"], [e]))


@per_language
def check_qc1(t: Tables) -> Verdict:
    """Q-C1 (must FAIL): the bidirectional mask leaks the next target; from local on it also beats the UniLM model's
    teacher-forced NLL at the same training step while its final model generates garbage."""
    bi, uni = t.check("leak/bidirectional/future"), t.check("leak/unilm/future")
    if not bi or not uni:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no leak checks")
    leak = max(bi) > LEAK_TOL and max(uni) <= LEAK_TOL
    reason = f"future-target leak: bidirectional {max(bi):.3g}, UniLM {max(uni):.3g} (depths 1-{len(bi)})"
    if t.budget == "smoke":
        return Verdict(FAIL if leak else PASS, reason + "; the generation criterion applies from local on",
                       effect=max(bi), threshold=LEAK_TOL)  # fmt: skip
    r = runs(t)
    ctl = r[(r["mask"] == "bidirectional")] if len(r) else r
    ref = main_runs(t)
    ref = ref[(ref["order"] == "AQ") & (ref["seed"] == 0)] if len(ref) else ref
    if ctl.empty or ref.empty:
        return Verdict(INCONCLUSIVE, reason + "; the bidirectional or the UniLM AQ seed-0 run is missing")
    c, u = ctl.iloc[0], ref.iloc[0]
    at = int(c["steps"])  # equal training: both models' validation NLL after the control's steps
    curve_c, curve_u = (
        t.curves("val/tf_nll").query("trial_id == @tid").set_index("step")["value"] for tid in (c["trial_id"], u["trial_id"])
    )
    if at not in curve_c.index or at not in curve_u.index:
        return Verdict(INCONCLUSIVE, reason + f"; no validation NLL of both models at step {at}")
    nll_c, nll_u = float(curve_c[at]), float(curve_u[at])
    val_c, val_u = float(c["final/su/validity"]), float(u["final/su/validity"])
    copies, garbage = nll_c < nll_u, val_c <= GARBAGE * val_u
    verdict = FAIL if leak and copies and garbage else PASS
    reason += (
        f"; validation NLL per target token at step {at}: bidirectional {nll_c:.4f} vs UniLM {nll_u:.4f} nats (final test "
        f"NLL {float(c['test/tf_nll_mean']):.4f} after {at} steps vs {float(u['test/tf_nll_mean']):.4f} after "
        f"{int(u['steps'])}); "
        f"validity {val_c:.3f} vs UniLM {val_u:.3f} (must be <= {GARBAGE} x)"
    )
    detail = {"step": at, "val_nll_bidirectional": nll_c, "val_nll_unilm": nll_u, "validity_bidirectional": val_c,
              "validity_unilm": val_u, "leak_bidirectional": max(bi), "leak_unilm": max(uni)}  # fmt: skip
    return Verdict(verdict, reason, effect=nll_c - nll_u, threshold=0.0, detail=[detail])


@per_language
def check_qc2(t: Tables) -> Verdict:
    """Q-C2 (must FAIL): without the key-padding term the final targets see padding."""
    nopad, uni = t.check("leak/unilm_nopad/padding"), t.check("leak/unilm/padding")
    if not nopad or not uni:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no leak checks")
    verdict = FAIL if max(nopad) > LEAK_TOL and max(uni) <= LEAK_TOL else PASS
    return Verdict(verdict, f"padding leak: without the key-padding term {max(nopad):.3g}, UniLM {max(uni):.3g}",
                   effect=max(nopad), threshold=LEAK_TOL)  # fmt: skip


# Figures (spec 02, section 6).
