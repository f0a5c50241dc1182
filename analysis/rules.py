"""The decision rules: one small vocabulary every claim is decided with, ours and a user's alike.

A rule is a frozen dataclass of the numbers a spec states (tolerance, margin, minimum effect, minimum seeds, how
cells combine). `rule.text()` renders the rule as a sentence from those numbers, and `rule.decide(data)` returns a
filled `Verdict`, so the text a report shows and the thresholds that decided can never drift apart. What a study
measures (a knee, a crossover, a second descent, per-seed paired differences) stays in its own module and is
handed to the rule as plain numbers.

Shapes (`../shared/articles/README.md`, "Default rule shapes" and "Statistics"):

- `Exact`: every error at most a tolerance; `Bounds`: several quantities, each with its own bound (<, > or ==).
- `Superiority`: A beats B by at least delta; a one-sided paired test per cell, Holm across cells.
- `NonInferiority`, `Equivalence`: TOST with margin m.
- `Trend`: Spearman's rho with the predicted sign, with a bootstrap interval.
- `Scaling`: a log-log slope with a bootstrap interval against a range.
- `Exceeds`: an effect against a threshold, on an interval the study computed (e.g. a hierarchical bootstrap).
- `Within`: every cell's interval (computed by the study) inside a range.
- `AllOf`: several rules on their own measurements, all of which must support.
- `Control`: a rule whose outcome is a control's PASS or FAIL (a negative control must FAIL).

Cells combine as `"all"` (SUPPORTED if every cell supports, REFUTED if any refutes) or `"half"` (SUPPORTED if at
least half the cells support and none refutes, REFUTED if any refutes). Partial data cannot decide: a cell with
fewer seeds than the rule's minimum is undecidable, keeps its place in the Holm family as p = 1, and makes the
claim INCONCLUSIVE; the runs a measurement left out (diverged, failed, missing) travel in `Cell.left_out` and are
named in the reason.
"""

import math
import operator
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from analysis.stats import ALPHA, BOOTSTRAP_RESAMPLES, Paired, holm, paired_test, spearman_ci
from analysis.verdict import FAIL, INCONCLUSIVE, PASS, REFUTED, SUPPORTED, Verdict

COMBINE = ("all", "half")
OPS = {"<": operator.lt, ">": operator.gt, "==": operator.eq}
TOO_FEW = "too few seeds"
"""How every rule's reason starts when a cell has fewer seeds than the rule's minimum."""


@dataclass(frozen=True)
class Cell:
    """One cell of a paired comparison: per-seed differences A - B (seeds present in both arms), and the runs the
    measurement could not use, each as a short phrase (e.g. `"seed 3 of b = 0.1: diverged"`)."""

    label: str
    diffs: Sequence[float]
    left_out: tuple[str, ...] = ()


def _fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.4g}"


def _left_out(cells: Sequence[Cell]) -> str:
    gone = [f"{c.label}: {', '.join(c.left_out)}" for c in cells if c.left_out]
    return f"; left out: {'; '.join(gone)}" if gone else ""


def _combine(decisions: list[str], combine: str) -> str:
    """Cell decisions (SUPPORTED, REFUTED, INCONCLUSIVE) -> the claim's."""
    if REFUTED in decisions:
        return REFUTED
    supported = sum(d == SUPPORTED for d in decisions)
    if decisions and (supported == len(decisions) if combine == "all" else supported >= len(decisions) / 2):
        return SUPPORTED
    return INCONCLUSIVE


def _combine_text(combine: str) -> str:
    return "in every cell" if combine == "all" else "in at least half of the cells"


def _check(combine: str, min_seeds: int) -> None:
    if combine not in COMBINE:
        raise ValueError(f"unknown combine {combine!r}; expected one of {COMBINE}")
    if min_seeds < 2:
        raise ValueError(f"min_seeds must be at least 2 (a paired test needs two pairs), got {min_seeds}")


def _deciding(rows: list[dict], verdict: str, key: str) -> dict:
    """The cell whose numbers a multi-cell verdict reports: the refuting one, else the weakest one."""
    pool = [r for r in rows if r["decision"] == REFUTED] if verdict == REFUTED else rows
    return max(pool, key=lambda r: -1 if math.isnan(r[key]) else r[key])


def _undecidable(cells: Sequence[Cell], stats_: list[Paired], min_seeds: int) -> list[str]:
    return [f"{c.label} (n = {s.n} < {min_seeds})" for c, s in zip(cells, stats_, strict=True) if s.too_few]


@dataclass(frozen=True)
class Exact:
    """An identity or a complexity statement checked numerically: SUPPORTED if every error <= tolerance."""

    tolerance: float
    what: str = "error"

    def text(self) -> str:
        return f"SUPPORTED if every {self.what} is <= {self.tolerance:g}; REFUTED otherwise."

    def decide(self, errors: Mapping[str, Sequence[float]] | Sequence[float]) -> Verdict:
        """`errors`: the values, or named groups of them (each group named in the reason)."""
        groups = dict(errors) if isinstance(errors, Mapping) else {self.what: errors}
        values = {k: np.asarray(v, dtype=float) for k, v in groups.items()}
        if not values or any(len(v) == 0 for v in values.values()):
            missing = [k for k, v in values.items() if len(v) == 0] or [self.what]
            return Verdict(INCONCLUSIVE, f"not_run_at_budget: no values of {', '.join(missing)}")
        worst = {k: float(np.max(np.where(np.isnan(v), np.inf, v))) for k, v in values.items()}
        name, top = max(worst.items(), key=lambda kv: kv[1])
        ok = all(w <= self.tolerance for w in worst.values())
        text = ", ".join(f"{k} max {w:.3g}" for k, w in worst.items())
        return Verdict(SUPPORTED if ok else REFUTED, f"{text} (tolerance {self.tolerance:g})", effect=top,
                       threshold=self.tolerance, n_seeds=sum(len(v) for v in values.values()),
                       detail=[{"check": k, "max": w} for k, w in worst.items()])  # fmt: skip


@dataclass(frozen=True)
class Bounds:
    """An exact claim on several quantities, each with its own bound (`<` an error, `>` a change that must show,
    `==` an identity): SUPPORTED if every value of every quantity meets its bound, REFUTED otherwise."""

    setup: str
    bounds: tuple[tuple[str, str, float], ...]

    def text(self) -> str:
        bounds = ", ".join(f"every {q} {op} {b:g}" for q, op, b in self.bounds)
        return f"{self.setup}: SUPPORTED if {bounds}; REFUTED otherwise."

    def decide(self, values: Mapping[str, Sequence[float]]) -> Verdict:
        missing = [q for q, _, _ in self.bounds if not len(values.get(q, ()))]
        if missing:
            return Verdict(INCONCLUSIVE, f"not_run_at_budget: exact checks missing ({', '.join(missing)})")
        rows = []
        for q, op, bound in self.bounds:  # the worst value: the largest error, the smallest change, the farthest from ==
            v = np.asarray(values[q], dtype=float)
            worst = v[np.argmax(np.where(np.isnan(v), np.inf, v if op == "<" else -v if op == ">" else abs(v - bound)))]
            rows.append({"check": q, "worst": float(worst), "op": op, "bound": bound, "ok": bool(OPS[op](v, bound).all())})
        top = next((r for r in rows if not r["ok"]), rows[0])
        return Verdict(SUPPORTED if all(r["ok"] for r in rows) else REFUTED,
                       "; ".join(f"{r['check']} {r['worst']:.3g} ({r['op']} {r['bound']:g})" for r in rows),
                       effect=top["worst"], threshold=top["bound"], n_seeds=max(len(values[q]) for q, _, _ in self.bounds),
                       detail=rows)  # fmt: skip


@dataclass(frozen=True)
class Superiority:
    """A beats B by at least `delta` (`greater`; `less`: A is lower than B by at least delta, for losses).

    Per cell a one-sided paired test of the difference, Holm across cells. A cell supports when its adjusted p is
    below alpha and its mean is at least delta (in the claimed direction); it refutes when B is significantly
    better after Holm (delta = 0), or when its 95% interval lies entirely short of delta (delta > 0).
    """

    what: str
    """The difference, A - B, in words: e.g. `test accuracy at b* minus at b = 0`."""
    delta: float = 0.0
    alternative: str = "greater"
    combine: str = "all"
    min_seeds: int = 3
    alpha: float = ALPHA

    def __post_init__(self):
        _check(self.combine, self.min_seeds)
        if self.alternative not in ("greater", "less"):
            raise ValueError(f"alternative must be 'greater' or 'less', got {self.alternative!r}")

    def text(self) -> str:
        sign = ">" if self.alternative == "greater" else "<"
        by = f" by at least {self.delta:g}" if self.delta else ""
        refute = ("the other way significantly (Holm)" if not self.delta
                  else f"with its 95% interval entirely short of {self.delta:g}")  # fmt: skip
        return (f"{self.what} {sign} 0{by}: one-sided paired test per cell (t; exact sign-flip when every difference is "
                f"equal), Holm across cells at alpha {self.alpha:g}, at least {self.min_seeds} seeds per cell. SUPPORTED "
                f"if significant {_combine_text(self.combine)}{' with the mean beyond delta' if self.delta else ''} and "
                f"no cell refutes; REFUTED if any cell goes {refute}; else INCONCLUSIVE.")  # fmt: skip

    def decide(self, cells: Sequence[Cell]) -> Verdict:
        if not cells:
            return Verdict(INCONCLUSIVE, f"not_run_at_budget: no cells of {self.what}")
        other = "less" if self.alternative == "greater" else "greater"
        sign = 1 if self.alternative == "greater" else -1
        ups = [paired_test(c.diffs, self.alternative, min_seeds=self.min_seeds) for c in cells]
        downs = [paired_test(c.diffs, other, min_seeds=self.min_seeds) for c in cells]
        up_adj, down_adj = holm([u.p for u in ups]), holm([d.p for d in downs])
        rows = []
        for c, u, pu, pd_ in zip(cells, ups, up_adj, down_adj, strict=True):
            if u.too_few:
                decision = INCONCLUSIVE
            elif pu < self.alpha and sign * u.mean >= self.delta:
                decision = SUPPORTED
            elif (pd_ < self.alpha) if not self.delta else (sign * (u.ci_high if sign > 0 else u.ci_low) < self.delta):
                decision = REFUTED
            else:
                decision = INCONCLUSIVE
            rows.append({"cell": c.label, "mean": u.mean, "ci_low": u.ci_low, "ci_high": u.ci_high, "p": u.p,
                         "p_holm": pu, "p_other_holm": pd_, "n": u.n, "test": u.test, "decision": decision})  # fmt: skip
        return _paired_verdict(self, cells, ups, rows, "p_holm")


@dataclass(frozen=True)
class NonInferiority:
    """A is no worse than B by more than `margin` (TOST's one side): SUPPORTED if the one-sided 95% bound of A - B
    lies above -margin (`greater` is better; `less`: below +margin); REFUTED if the 95% interval lies entirely
    beyond the margin."""

    what: str
    margin: float
    alternative: str = "greater"
    combine: str = "all"
    min_seeds: int = 3
    alpha: float = ALPHA

    def __post_init__(self):
        _check(self.combine, self.min_seeds)
        if self.margin <= 0:
            raise ValueError(f"margin must be positive, got {self.margin}")

    def text(self) -> str:
        side = f"> -{self.margin:g}" if self.alternative == "greater" else f"< +{self.margin:g}"
        return (f"{self.what} {side} (non-inferiority, margin {self.margin:g}): one-sided paired test against the margin "
                f"per cell, Holm across cells at alpha {self.alpha:g}, at least {self.min_seeds} seeds per cell. SUPPORTED "
                f"{_combine_text(self.combine)}; REFUTED if any cell's 95% interval lies entirely beyond the margin; else "
                "INCONCLUSIVE.")  # fmt: skip

    def decide(self, cells: Sequence[Cell]) -> Verdict:
        if not cells:
            return Verdict(INCONCLUSIVE, f"not_run_at_budget: no cells of {self.what}")
        bound = -self.margin if self.alternative == "greater" else self.margin
        tests = [paired_test(c.diffs, self.alternative, popmean=bound, min_seeds=self.min_seeds) for c in cells]
        adj = holm([t.p for t in tests])
        rows = []
        for c, t, p in zip(cells, tests, adj, strict=True):
            beyond = t.ci_high < bound if self.alternative == "greater" else t.ci_low > bound
            decision = INCONCLUSIVE if t.too_few else SUPPORTED if p < self.alpha else REFUTED if beyond else INCONCLUSIVE
            rows.append({"cell": c.label, "mean": t.mean, "ci_low": t.ci_low, "ci_high": t.ci_high, "p": t.p,
                         "p_holm": p, "n": t.n, "test": t.test, "decision": decision})  # fmt: skip
        return _paired_verdict(self, cells, tests, rows, "p_holm", threshold=self.margin)


@dataclass(frozen=True)
class Equivalence:
    """|A - B| < margin by TOST: SUPPORTED if both one-sided tests against -m and +m are significant (the 90%
    interval inside +-m), Holm across cells; REFUTED if the 95% interval lies entirely outside +-m."""

    what: str
    margin: float
    combine: str = "all"
    min_seeds: int = 3
    alpha: float = ALPHA

    def __post_init__(self):
        _check(self.combine, self.min_seeds)
        if self.margin <= 0:
            raise ValueError(f"margin must be positive, got {self.margin}")

    def text(self) -> str:
        return (f"|{self.what}| < {self.margin:g} (equivalence, TOST): the larger of the two one-sided paired p-values per "
                f"cell, Holm across cells at alpha {self.alpha:g}, at least {self.min_seeds} seeds per cell. SUPPORTED "
                f"{_combine_text(self.combine)}; REFUTED if any cell's 95% interval lies entirely outside +-{self.margin:g}; "
                "else INCONCLUSIVE.")  # fmt: skip

    def decide(self, cells: Sequence[Cell]) -> Verdict:
        if not cells:
            return Verdict(INCONCLUSIVE, f"not_run_at_budget: no cells of {self.what}")
        lows = [paired_test(c.diffs, "greater", popmean=-self.margin, min_seeds=self.min_seeds) for c in cells]
        highs = [paired_test(c.diffs, "less", popmean=self.margin, min_seeds=self.min_seeds) for c in cells]
        tost = [max(a.p, b.p) for a, b in zip(lows, highs, strict=True)]
        adj = holm(tost)
        rows = []
        for c, t, p_raw, p in zip(cells, lows, tost, adj, strict=True):
            outside = t.ci_low > self.margin or t.ci_high < -self.margin
            decision = INCONCLUSIVE if t.too_few else SUPPORTED if p < self.alpha else REFUTED if outside else INCONCLUSIVE
            rows.append({"cell": c.label, "mean": t.mean, "ci_low": t.ci_low, "ci_high": t.ci_high, "p": p_raw,
                         "p_holm": p, "n": t.n, "test": t.test, "decision": decision})  # fmt: skip
        return _paired_verdict(self, cells, lows, rows, "p_holm", threshold=self.margin)


def _paired_verdict(rule, cells: Sequence[Cell], tests: list[Paired], rows: list[dict], key: str, threshold=None) -> Verdict:
    """A paired rule's cells -> its verdict: too few seeds anywhere decides nothing; else the cells combine."""
    few = _undecidable(cells, tests, rule.min_seeds)
    verdict = INCONCLUSIVE if few else _combine([r["decision"] for r in rows], rule.combine)
    top = next(r for r in rows if r["test"] == TOO_FEW) if few else _deciding(rows, verdict, key)
    counts = {d: sum(r["decision"] == d for r in rows) for d in (SUPPORTED, REFUTED)}
    if few:
        reason = f"{TOO_FEW} in {', '.join(few)}"
    else:
        reason = f"{counts[SUPPORTED]}/{len(rows)} cells support, {counts[REFUTED]} refute"
    if len(rows) > 1 or few:
        reason += f"; deciding cell {top['cell']}: mean {_fmt(top['mean'])} [{_fmt(top['ci_low'])}, {_fmt(top['ci_high'])}]"
    else:
        reason += f": mean {_fmt(top['mean'])} [{_fmt(top['ci_low'])}, {_fmt(top['ci_high'])}], {top['test']} test"
    reason += _left_out(cells)
    return Verdict(verdict, reason, effect=top["mean"], ci_low=top["ci_low"], ci_high=top["ci_high"], p_value=top[key],
                   threshold=rule.alpha if threshold is None else threshold, n_seeds=min(t.n for t in tests),
                   detail=rows)  # fmt: skip


@dataclass(frozen=True)
class Trend:
    """A monotone trend: Spearman's rho with the predicted sign (+1 rising, -1 falling), |rho| >= `min_rho` and
    p < alpha, with a 95% bootstrap interval of rho over the (x, y) pairs. REFUTED if significant the other way."""

    what: str
    sign: int = 1
    min_rho: float = 0.0
    min_points: int = 3
    alpha: float = ALPHA

    def __post_init__(self):
        if self.sign not in (1, -1):
            raise ValueError(f"sign must be +1 or -1, got {self.sign}")
        if self.min_points < 3:
            raise ValueError(f"min_points must be at least 3 (Spearman needs three pairs), got {self.min_points}")

    def text(self) -> str:
        way = "rises" if self.sign > 0 else "falls"
        size = f", |rho| >= {self.min_rho:g}" if self.min_rho else ""
        return (f"{self.what} {way}: Spearman rho with sign {self.sign:+d}{size} and one-sided p < {self.alpha:g} (at least "
                f"{self.min_points} points), 95% bootstrap interval of rho. REFUTED if significant the other way; else "
                "INCONCLUSIVE.")  # fmt: skip

    def decide(self, x: Sequence[float], y: Sequence[float], left_out: Sequence[str] = ()) -> Verdict:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        gone = f"; left out: {', '.join(left_out)}" if left_out else ""
        if len(x) < self.min_points or np.ptp(x) == 0 or np.ptp(y) == 0:
            why = f"{len(x)} points < {self.min_points}" if len(x) < self.min_points else "no variation to rank"
            return Verdict(INCONCLUSIVE, f"too few points: {why}{gone}", n_seeds=len(x))
        res = stats.spearmanr(x, y, alternative="greater" if self.sign > 0 else "less")
        other = stats.spearmanr(x, y, alternative="less" if self.sign > 0 else "greater")
        rho, lo, hi = float(res.statistic), *spearman_ci(x, y)
        if res.pvalue < self.alpha and self.sign * rho >= self.min_rho:
            verdict = SUPPORTED
        elif other.pvalue < self.alpha:
            verdict = REFUTED
        else:
            verdict = INCONCLUSIVE
        return Verdict(verdict, f"rho {rho:+.3f} [{lo:+.3f}, {hi:+.3f}], one-sided p {res.pvalue:.3g}, {len(x)} points{gone}",
                       effect=rho, ci_low=lo, ci_high=hi, p_value=float(res.pvalue), threshold=self.alpha,
                       n_seeds=len(x))  # fmt: skip


@dataclass(frozen=True)
class Scaling:
    """A power law: the OLS slope of log y on log x, with a 95% bootstrap interval over the (x, y) points, against
    the range [low, high]. SUPPORTED if the interval lies inside the range, REFUTED if it lies entirely outside."""

    what: str
    low: float
    high: float
    min_points: int = 3

    def text(self) -> str:
        return (f"log-log slope of {self.what} (OLS, 95% bootstrap interval over the points, at least {self.min_points} "
                f"points): SUPPORTED if the interval lies inside [{self.low:g}, {self.high:g}], REFUTED if entirely "
                "outside; else INCONCLUSIVE.")  # fmt: skip

    def decide(self, x: Sequence[float], y: Sequence[float]) -> Verdict:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if len(x) < self.min_points or (x <= 0).any() or (y <= 0).any() or len(np.unique(x)) < 2:
            return Verdict(INCONCLUSIVE, f"too few points: {len(x)} positive (x, y) pairs needed >= {self.min_points}")
        lx, ly = np.log(x), np.log(y)
        slope = float(stats.linregress(lx, ly).slope)

        def ols(a, b):
            return stats.linregress(a, b).slope if np.ptp(a) > 0 else np.nan

        with warnings.catch_warnings():  # resamples of one distinct x: scipy warns, the percentiles below skip them
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            res = stats.bootstrap((lx, ly), ols, paired=True, vectorized=False, n_resamples=BOOTSTRAP_RESAMPLES,
                                  method="percentile", rng=np.random.default_rng(0))  # fmt: skip
        # A resample that drew a single distinct x has no slope: percentiles over the others.
        lo, hi = (float(q) for q in np.nanpercentile(res.bootstrap_distribution, [2.5, 97.5]))
        if self.low <= lo and hi <= self.high:
            verdict = SUPPORTED
        elif hi < self.low or lo > self.high:
            verdict = REFUTED
        else:
            verdict = INCONCLUSIVE
        text = f"slope {slope:.3f} [{lo:.3f}, {hi:.3f}] against [{self.low:g}, {self.high:g}], {len(x)} points"
        return Verdict(verdict, text, effect=slope, ci_low=lo, ci_high=hi, threshold=self.high, n_seeds=len(x))  # fmt: skip


@dataclass(frozen=True)
class Estimate:
    """An effect with a 95% interval from a resampling scheme of the study's own (e.g. the hierarchical bootstrap,
    items nested in seeds), its p-value where one was tested (Holm-adjusted where a family was), and its seeds."""

    mean: float
    low: float
    high: float
    n: int
    """Seeds behind it."""
    p: float = math.nan
    label: str = ""
    """The cell or quantity, named in reasons."""
    left_out: tuple[str, ...] = ()
    """The runs it could not use, each with why."""


def _gone_estimates(estimates: Sequence[Estimate]) -> str:
    names = [f"{e.label}: {', '.join(e.left_out)}" for e in estimates if e.left_out]
    return f"; left out: {'; '.join(names)}" if names else ""


@dataclass(frozen=True)
class Exceeds:
    """The effect reaches `threshold`, decided on an `Estimate`'s interval.

    `by="interval"`: SUPPORTED if the interval's lower end is >= threshold. `by="estimate"`: SUPPORTED if the
    estimate is >= threshold and the interval lies above 0 (and, when the estimate carries a p-value, p < alpha).
    Either way REFUTED if the interval's upper end is < threshold; fewer than `min_seeds` seeds decide nothing.
    """

    what: str
    threshold: float
    by: str = "interval"
    min_seeds: int = 3
    alpha: float = ALPHA

    def __post_init__(self):
        if self.by not in ("interval", "estimate"):
            raise ValueError(f"by is 'interval' or 'estimate', got {self.by!r}")
        if self.min_seeds < 1:
            raise ValueError(f"min_seeds must be at least 1, got {self.min_seeds}")

    def text(self) -> str:
        win = (
            f"the 95% interval's lower end is >= {self.threshold:g}"
            if self.by == "interval"
            else f"the estimate is >= {self.threshold:g} with the 95% interval above 0 (p < {self.alpha:g} where tested)"
        )
        return (f"{self.what} against {self.threshold:g} (at least {self.min_seeds} seeds): SUPPORTED if {win}; REFUTED if "
                f"the interval's upper end is < {self.threshold:g}; else INCONCLUSIVE.")  # fmt: skip

    def decide(self, e: Estimate, left_out: Sequence[str] = ()) -> Verdict:
        left_out = (*e.left_out, *left_out)
        gone = f"; left out: {', '.join(left_out)}" if left_out else ""
        numbers = dict(effect=e.mean, ci_low=e.low, ci_high=e.high, p_value=e.p, threshold=self.threshold, n_seeds=e.n)
        text = f"{self.what} {_fmt(e.mean)} [{_fmt(e.low)}, {_fmt(e.high)}] against {self.threshold:g}, {e.n} seeds{gone}"
        if e.n < self.min_seeds:
            return Verdict(INCONCLUSIVE, f"{TOO_FEW} (n = {e.n} < {self.min_seeds}): {text}", **numbers)
        if self.by == "interval":
            won = e.low >= self.threshold
        else:
            won = e.mean >= self.threshold and e.low > 0 and not (e.p >= self.alpha)  # an untested p (nan) passes
        verdict = SUPPORTED if won else REFUTED if e.high < self.threshold else INCONCLUSIVE
        return Verdict(verdict, text, **numbers)


@dataclass(frozen=True)
class Within:
    """Every cell's 95% interval (an `Estimate` the study computed) inside [low, high]: SUPPORTED if every interval
    lies inside, REFUTED if some interval lies entirely outside; a cell with fewer than `min_seeds` seeds decides
    nothing (the interval twin of `Scaling`, for quantities measured with a bootstrap of their own)."""

    what: str
    low: float
    high: float
    min_seeds: int = 3

    def text(self) -> str:
        return (f"{self.what}, 95% interval per cell, at least {self.min_seeds} seeds per cell: SUPPORTED if every interval "
                f"lies within [{self.low:g}, {self.high:g}]; REFUTED if some interval lies entirely outside it; else "
                "INCONCLUSIVE.")  # fmt: skip

    def decide(self, cells: Sequence[Estimate], note: str = "") -> Verdict:
        if not cells:
            return Verdict(INCONCLUSIVE, f"not_run_at_budget: no cells of {self.what}")
        few = [f"{c.label} (n = {c.n} < {self.min_seeds})" for c in cells if c.n < self.min_seeds]
        if few:
            return Verdict(INCONCLUSIVE, f"{TOO_FEW} in {', '.join(few)}{_gone_estimates(cells)}",
                           n_seeds=min(c.n for c in cells))  # fmt: skip
        inside = [self.low <= c.low and c.high <= self.high for c in cells]
        outside = [c.high < self.low or c.low > self.high for c in cells]
        verdict = REFUTED if any(outside) else SUPPORTED if all(inside) else INCONCLUSIVE
        top = max(cells, key=lambda c: max(self.low - c.low, c.high - self.high, c.low - self.high))
        text = "; ".join(f"{c.label}: {c.mean:.3g} [{c.low:.3g}, {c.high:.3g}]" for c in cells)
        reason = f"{text}{'; ' + note if note else ''}{_gone_estimates(cells)}"
        detail = [{"cell": c.label, "mean": c.mean, "ci_low": c.low, "ci_high": c.high, "n": c.n} for c in cells]
        return Verdict(verdict, reason, top.mean, top.low, top.high, threshold=self.high, n_seeds=min(c.n for c in cells),
                       detail=detail)  # fmt: skip


@dataclass(frozen=True)
class AllOf:
    """Several rules, each deciding on its own measurement: SUPPORTED if every one supports, REFUTED if any refutes,
    else INCONCLUSIVE; when any of them lacks seeds ("too few seeds"), INCONCLUSIVE whatever the others say. The
    numbers shown are the refuting part's, else the first part's."""

    rules: tuple
    what: str = ""

    def text(self) -> str:
        parts = " ".join(f"({i}) {r.text()}" for i, r in enumerate(self.rules, 1))
        head = f"{self.what}: " if self.what else ""
        return (
            f"{head}{parts} Together: SUPPORTED if every part is SUPPORTED; REFUTED if any part is REFUTED; else INCONCLUSIVE."
        )

    def decide(self, *inputs) -> Verdict:
        """One input per rule, in order: a tuple of its `decide` arguments, or its single argument."""
        if len(inputs) != len(self.rules):
            raise ValueError(f"{self.what or 'AllOf'}: {len(inputs)} measurements for {len(self.rules)} rules")
        parts = [r.decide(*m) if isinstance(m, tuple) else r.decide(m) for r, m in zip(self.rules, inputs, strict=True)]
        few = any(v.reason.startswith(TOO_FEW) for v in parts)
        verdict = INCONCLUSIVE if few else _combine([v.verdict for v in parts], "all")
        top = next((v for v in parts if v.verdict == REFUTED), parts[0])
        reason = "; ".join(f"({i}) {v.verdict}: {v.reason}" for i, v in enumerate(parts, 1))
        detail = [{"part": i} | d for i, v in enumerate(parts, 1) for d in v.detail]
        return Verdict(verdict, reason, top.effect, top.ci_low, top.ci_high, top.p_value, top.threshold,
                       min(v.n_seeds for v in parts), detail)  # fmt: skip


@dataclass(frozen=True)
class Control:
    """A control decided by another rule: the rule's SUPPORTED is the control's PASS, REFUTED its FAIL. Without the
    data to decide (INCONCLUSIVE) a control neither passes nor fails, so the study cannot count it as working.
    `must` is what the control has to come out as (a negative control must FAIL)."""

    rule: Exact | Bounds | Superiority | NonInferiority | Equivalence | Trend | Scaling | Exceeds | Within | AllOf
    must: str = PASS

    def __post_init__(self):
        if self.must not in (PASS, FAIL):
            raise ValueError(f"must is PASS or FAIL, got {self.must!r}")

    def text(self) -> str:
        return f"PASS if: {self.rule.text()} Must {self.must}, else the study is INVALID."

    def decide(self, *args, **kwargs) -> Verdict:
        v = self.rule.decide(*args, **kwargs)
        outcome = {SUPPORTED: PASS, REFUTED: FAIL}.get(v.verdict, INCONCLUSIVE)
        return Verdict(outcome, v.reason, v.effect, v.ci_low, v.ci_high, v.p_value, v.threshold, v.n_seeds, v.detail)


Rule = Exact | Bounds | Superiority | NonInferiority | Equivalence | Trend | Scaling | Exceeds | Within | AllOf | Control
"""Any rule of the vocabulary."""
