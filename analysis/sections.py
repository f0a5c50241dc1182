"""A report's sections and the cells they print, shared by the Markdown (`analysis.report`) and HTML
(`analysis.html`) renderings."""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.verdict import StudyClaims, Tables


@dataclass
class BudgetSection:
    """One study at one budget: its verdicts and figures."""

    budget: str
    claimed: StudyClaims
    tables: Tables
    verdicts: pd.DataFrame
    figures: dict[str, Path]
    """Figure stem -> PNG file."""
    meta: dict
    """The latest run's `metadata/<budget>.json` (empty if missing)."""


@dataclass
class StudySection:
    """One study: what it claims, and its results per budget (none when it was not run)."""

    name: str
    claimed: StudyClaims
    """Its article, claims and figures (shown also when nothing ran)."""
    budgets: list[BudgetSection] = field(default_factory=list)


def rerun(name: str, budget: str) -> str:
    """The command that runs (or finishes) a study at a budget."""
    return f"python -m studies run {name} --budget {budget}"


def plan_notes(name: str, budget: str, tables: Tables) -> list[str]:
    """Lines on what the verdicts do not read: rows outside the plan, and why there are none yet (Markdown)."""
    out = []
    if tables.ignored:
        out.append(f"Ignored {tables.ignored} main row(s) outside the current plan (runs of a superseded tuning or grid).\n")
    if tables.waiting:
        out.append(f"**Incomplete:** {tables.waiting}; no verdicts until `{rerun(name, budget)}` finishes it.\n")
    return out


def num(x) -> str:
    """A number for a table: 3 significant digits, `–` for missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.3g}" if isinstance(x, float) else str(x)


VERDICT_HEADER = ("claim", "kind", "verdict", "effect", "95% CI", "p", "n", "reason")


def verdict_fields(v: pd.Series) -> list[str]:
    """The cells of a verdict-table row, in `VERDICT_HEADER` order, as text."""
    ci = f"[{num(v['ci_low'])}, {num(v['ci_high'])}]"
    return [v["claim_id"], v["kind"], v["verdict"], num(v["effect"]), ci, num(v["p_value"]), str(v["n_seeds"]), v["reason"]]


def detail_rows(detail: str) -> pd.DataFrame:
    """The per-cell numbers stored with a verdict."""
    return pd.DataFrame(json.loads(detail) if detail else [])
