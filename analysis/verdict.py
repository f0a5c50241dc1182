"""Verdicts: what a claim's check returns, and how a study's claims and controls combine.

A claim check maps the study's result tables to a `Verdict`. Claims come out SUPPORTED, REFUTED or
INCONCLUSIVE; controls come out PASS or FAIL. A negative control (`X-C…`) must FAIL and a positive control
(`X-P…`) must PASS; if either does not, the study is INVALID and no claim of it may stand as SUPPORTED or
REFUTED: those verdicts become INVALID, naming the control. Diagnostics (`X-D…`) never invalidate.
"""

import json
import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.schema import BUDGETS

SUPPORTED, REFUTED, INCONCLUSIVE, INVALID = "SUPPORTED", "REFUTED", "INCONCLUSIVE", "INVALID"
PASS, FAIL = "PASS", "FAIL"
EXPECTED = {"positive_control": PASS, "negative_control": FAIL}
CLAIM_KINDS = ("exact", "empirical", "positive_control", "negative_control", "diagnostic")


@dataclass(frozen=True)
class Claim:
    """A claim of the article, or a control, with its pre-registered decision rule."""

    id: str
    """Stable id from the spec, e.g. `F1`, `F-C1`."""
    statement: str
    """What is claimed, in one sentence."""
    rule: object
    """The decision rule: an object of `analysis.rules` (its `text()` is the rule the report shows, and it decides),
    or, for a rule of no shape there, the rule as pre-registered text and a `check` that decides itself."""
    kind: str
    """One of `CLAIM_KINDS`; controls decide whether the study is INVALID."""
    check: Callable
    """`check(tables: Tables)`: with a rule object, the measurement the rule decides on (its `decide` argument, or a
    tuple of its arguments), or a `Verdict` when there is nothing to decide (e.g. not run at this budget); with a
    text rule, the `Verdict` itself."""
    figure: str = ""
    """File stem of the study figure that shows this claim, embedded beside its verdict in the report."""
    decides_from: str = "smoke"
    """The smallest budget at which the claim gets a verdict; below it a SUPPORTED or REFUTED is reported as
    INCONCLUSIVE, "direction only", with its numbers (applied in one place, `evaluate`)."""

    @property
    def rule_text(self) -> str:
        return self.rule if isinstance(self.rule, str) else self.rule.text()

    def decide(self, tables: "Tables") -> "Verdict":
        """Measure, then decide by the claim's rule (a text rule's check decides itself)."""
        out = self.check(tables)
        if isinstance(out, Verdict) or isinstance(self.rule, str):
            return out
        return self.rule.decide(*out) if isinstance(out, tuple) else self.rule.decide(out)


@dataclass(frozen=True)
class StudyClaims:
    """What the analysis of one study needs besides its results: the article, its claims and figures.

    Each study's lives in `analysis/claims/<study>.py` beside the checks it names; the study module (`studies/`)
    hands the same objects to the runner, so `python -m analysis` reads them without importing `studies/`.
    """

    name: str
    """The study's name, e.g. `flooding` (its results folder)."""
    article: str
    """Article title and URL."""
    claims: tuple[Claim, ...]
    """Claims and controls."""
    figures: tuple[Callable, ...] = ()
    """`fig(tables) -> (name, matplotlib Figure) | None` functions."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim or control, with the numbers behind it."""

    verdict: str
    """SUPPORTED, REFUTED, INCONCLUSIVE (claims) or PASS, FAIL (controls)."""
    reason: str
    """One line of reasoning, e.g. `2/3 cells significant after Holm`, or why it is inconclusive."""
    effect: float = math.nan
    """Effect size in the claim's units (a mean paired difference, a slope, a correlation)."""
    ci_low: float = math.nan
    """Lower end of the effect's 95% interval."""
    ci_high: float = math.nan
    """Upper end."""
    p_value: float = math.nan
    """The deciding p-value (Holm-adjusted where cells are tested)."""
    threshold: float = math.nan
    """The rule's threshold (alpha, tolerance, margin)."""
    n_seeds: int = 0
    """Seeds (or random instances) behind the effect."""
    detail: list[dict] = field(default_factory=list)
    """Per-cell numbers, shown as a table in the report."""


@dataclass(frozen=True)
class Tables:
    """One study's results at one budget, as read from its Parquet files."""

    budget: str
    """The budget these rows belong to."""
    trials: pd.DataFrame
    """Training trials: one row per trial (`status` ok, diverged or failed), `config/*` and final metrics."""
    metrics: pd.DataFrame
    """Long table of the training trials: `trial_id, step, series, metric, value` (`analysis.schema.METRIC_SCHEMA`)."""
    checks: pd.DataFrame
    """Long table of the exact checks: `step, series, metric, value` (a check's values are one series at step 0)."""
    tuning: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Tuning-phase trial rows (Optuna over nuisance parameters), for the axis plots; empty without tuning."""
    ignored: int = 0
    """Main rows of this budget outside its current plan (e.g. confirmation runs of a superseded tuning): not read."""
    waiting: str = ""
    """Why no verdict may be drawn yet (tuning unfinished, planned trials not recorded); empty when complete."""

    def __post_init__(self):
        for name in ("metrics", "checks"):  # tables planted by hand may leave out `series`: every row a scalar
            df = getattr(self, name)
            if "series" not in df and "step" in df:
                object.__setattr__(self, name, df.assign(series=0))

    def check(self, metric: str) -> list[float]:
        """Values of one exact-check metric, in order (empty when the checks did not run)."""
        rows = self.checks[self.checks["metric"] == metric].sort_values(["step", "series"])
        return rows["value"].tolist()

    def series(self, metric: str, trial_id: str) -> np.ndarray:
        """One trial's values of a list metric (e.g. per-chunk test values), in series order, at its last step."""
        m = self.metrics[(self.metrics["metric"] == metric) & (self.metrics["trial_id"] == trial_id)]
        if m.empty:
            return np.array([], dtype=float)
        return m[m["step"] == m["step"].max()].sort_values("series")["value"].to_numpy()

    def curves(self, metric: str) -> pd.DataFrame:
        """Per-epoch values of a metric joined with the trial configs: columns `trial_id, step, value, config/*`."""
        m = self.metrics[self.metrics["metric"] == metric][["trial_id", "step", "value"]]
        return m.merge(self.trials, on="trial_id").sort_values(["trial_id", "step"])


def all_cells(verdicts: list[str]) -> str:
    """A claim tested in several cells: SUPPORTED if every cell supports it, REFUTED if any refutes it, else INCONCLUSIVE."""
    if verdicts and all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return REFUTED if REFUTED in verdicts else INCONCLUSIVE


def _gated(claim: Claim, v: Verdict, budget: str) -> Verdict:
    """A claim below its `decides_from` budget reports its direction only: SUPPORTED/REFUTED become INCONCLUSIVE."""
    if claim.kind in EXPECTED or v.verdict not in (SUPPORTED, REFUTED) or budget not in BUDGETS:
        return v
    if BUDGETS.index(budget) >= BUDGETS.index(claim.decides_from):
        return v
    reason = f"direction only at {budget} (verdicts from {claim.decides_from} on): would be {v.verdict}; {v.reason}"
    return Verdict(INCONCLUSIVE, reason, v.effect, v.ci_low, v.ci_high, v.p_value, v.threshold, v.n_seeds, v.detail)


def evaluate(study, tables: Tables) -> pd.DataFrame:
    """Run every control and claim check of a study and apply the INVALID rule.

    A check that raises is recorded as INCONCLUSIVE (reason `check_error: …`) so one broken check loses
    nothing else.

    Args:
        study (StudyClaims | studies.Study):
            The study, for its name and claims.
        tables (Tables):
            Its results at one budget.

    Returns:
        pd.DataFrame: one row per claim in the verdict-table schema.
    """
    results: dict[str, Verdict] = {}
    for claim in study.claims:
        try:
            results[claim.id] = _gated(claim, claim.decide(tables), tables.budget)
        except Exception as exc:  # noqa: BLE001 - a failing check must not hide the other verdicts
            last = traceback.format_exception_only(exc)[-1].strip()
            results[claim.id] = Verdict(INCONCLUSIVE, f"check_error: {last}")
    broken = [
        f"{c.id} {results[c.id].verdict} (must {EXPECTED[c.kind]})"
        for c in study.claims
        if c.kind in EXPECTED and results[c.id].verdict != EXPECTED[c.kind]
    ]
    rows = []
    for claim in study.claims:
        v = results[claim.id]
        verdict, reason = v.verdict, v.reason
        if broken and claim.kind not in EXPECTED and verdict in (SUPPORTED, REFUTED):
            verdict, reason = INVALID, f"would be {v.verdict}, but controls failed: {'; '.join(broken)}"
        rows.append(
            {
                "study": study.name,
                "claim_id": claim.id,
                "kind": claim.kind,
                "budget": tables.budget,
                "verdict": verdict,
                "reason": reason,
                "effect": v.effect,
                "ci_low": v.ci_low,
                "ci_high": v.ci_high,
                "p_value": v.p_value,
                "threshold": v.threshold,
                "n_seeds": v.n_seeds,
                "rule": claim.rule_text,
                "statement": claim.statement,
                "controls_ok": not broken,
                "detail": json.dumps(v.detail, default=float),
            }
        )
    return pd.DataFrame(rows)
