"""Verdicts, figures, Markdown and a self-contained HTML report for every study, from the Parquet files alone.

`collect` reads every study's tables, then evaluates each study at each budget it has results for (writing
`<out>/<study>/verdicts.parquet`) and draws its figures once; `write_markdown` and `analysis.html.write_html`
render the same sections. Studies without results still appear, marked not run, so the overview shows every claim
of every article. The results are only read: everything is written under `out`.
"""

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis import style
from analysis.load import lacking_metrics, tables_for
from analysis.plots import GENERIC, fig_nuisance_axes
from analysis.schema import VERDICT_COLUMNS, describe_incomplete, read_json, read_trials, write_verdicts
from analysis.store import ResultsError, join
from analysis.verdict import Tables, evaluate
from studies import BUDGETS, Study, discover


@dataclass
class BudgetSection:
    """One study at one budget: its verdicts and figures."""

    budget: str
    study: Study
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
    reference: Study
    """The study at the smoke budget, for its article and claims when nothing ran."""
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


def draw_figures(study: Study, tables: Tables, fig_dir: Path) -> dict[str, Path]:
    """Draw the study's figures and the generic ones into `fig_dir`.

    A figure that fails, drawing or saving, is reported on stderr and skipped, so one broken plot never loses the
    report. Every figure is closed once saved, and whatever a failed one opened is closed too: none stays open.

    Args:
        study (Study):
            The study at this budget.
        tables (Tables):
            Its results.
        fig_dir (Path):
            Where the PNG files go.

    Returns:
        dict[str, Path]: stem -> file of every figure drawn.
    """
    fig_dir.mkdir(parents=True, exist_ok=True)
    drawn = {}
    draws = [*study.figures, *GENERIC] + ([lambda t: fig_nuisance_axes(t, study.tuning)] if study.tuning else [])
    for draw in draws:
        with style.closing_figures():
            try:
                made = draw(tables)
                if made is not None:
                    stem, fig = made
                    style.save(fig, fig_dir / f"{stem}.png")
                    drawn[stem] = fig_dir / f"{stem}.png"
            except Exception as exc:  # noqa: BLE001
                print(f"analysis: warning: {study.name}/{study.budget} figure {draw.__name__} failed: {exc}", file=sys.stderr)
    return drawn


def collect(results: Path | str, out: Path) -> list[StudySection]:
    """Evaluate and draw every discovered study at every budget it has results for.

    Every table is read before anything is written: a damaged or foreign one (`analysis.store.ResultsError`)
    stops the analysis with nothing written. `results` is only read.

    Args:
        results (Path | str):
            Results root, a local path or a URI.
        out (Path):
            Report directory (verdicts go to `out/<study>/verdicts.parquet`, figures to `out/<study>/<budget>/`).

    Returns:
        list[StudySection]: one per discovered study, in name order.
    """
    loaded, incomplete = [], []
    for name, module in discover().items():
        study_dir = join(results, name)
        trials = read_trials(study_dir)
        budgets = [b for b in BUDGETS if ((trials["budget"] == b) & (trials["phase"] != "checks")).any()]
        meta = {b: read_json(join(study_dir, "metadata", f"{b}.json")) for b in budgets}
        tables = {b: tables_for(study_dir, b) for b in budgets}
        for b in budgets:  # finished trials whose metrics are gone: no verdict may stand on the rest
            if lacking := lacking_metrics(study_dir, trials, tables[b]):
                incomplete.append(describe_incomplete(study_dir, b, lacking))
        loaded.append((name, module, [(b, tables[b], meta[b]) for b in budgets]))
    if incomplete:
        more = f" (and {len(incomplete) - 1} more studies or budgets)" if len(incomplete) > 1 else ""
        raise ResultsError(incomplete[0] + more)
    sections = []
    for name, module, per_budget in loaded:
        section = StudySection(name, module.get_study("smoke"))
        for budget, tables, meta in per_budget:
            study = module.get_study(budget)
            where = f"analysis: {name}/{budget}:"
            if tables.ignored:
                print(
                    f"{where} ignored {tables.ignored} main row(s) outside the current plan (superseded runs)", file=sys.stderr
                )
            if tables.waiting:  # partial data decides nothing: the section says so and holds no verdict
                print(f"{where} no verdicts: {tables.waiting}; `{rerun(name, budget)}` finishes it", file=sys.stderr)
                verdicts, figures = pd.DataFrame(columns=VERDICT_COLUMNS), {}
            else:
                verdicts = evaluate(study, tables)
                figures = draw_figures(study, tables, out / name / budget)
            section.budgets.append(BudgetSection(budget, study, tables, verdicts, figures, meta))
        decided = [b.verdicts for b in section.budgets if not b.tables.waiting]
        all_verdicts = pd.concat(decided, ignore_index=True) if decided else None
        write_verdicts(out / name, all_verdicts)  # None: no results, so no verdicts of an earlier analysis stay
        sections.append(section)
    return sections


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return ""
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(num(v) for v in r) + " |\n" for r in df.itertuples(index=False))


def write_markdown(sections: list[StudySection], results: Path, out: Path) -> Path:
    """`out/<study>.md` per study with results and `out/README.md` indexing every verdict.

    Args:
        sections (list[StudySection]):
            From `collect`.
        results (Path):
            Results root (for the regeneration command).
        out (Path):
            Report directory.

    Returns:
        Path: the index file.
    """
    index = [
        "# claimbench report\n",
        f"Results: `{results}`. Regenerate with `python -m analysis --results {results} --out {out}`.\n",
    ]
    for s in sections:
        if not s.budgets:
            index += [f"## {s.name}: not run\n", f"Claims: {' '.join(c.id for c in s.reference.claims)}\n"]
            continue
        index.append(f"## [{s.name}]({s.name}.md)\n")
        lines = [f"# {s.name}\n", f"Article: {s.reference.article}\n"]
        for b in s.budgets:
            counts = b.tables.trials["status"].value_counts().to_dict()
            lines += [
                f"## Budget `{b.budget}`\n",
                f"Trials: {len(b.tables.trials)} ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
                f"command `python -m studies run {s.name} --budget {b.budget}`; "
                f"latest run: commit `{b.meta.get('git_commit', '?')}`, started {b.meta.get('started_at', '?')}; "
                f"data: {'; '.join(b.meta.get('data', [])) or 'generated'}.\n",
                *plan_notes(s.name, b.budget, b.tables),
                "| " + " | ".join(VERDICT_HEADER) + " |",
                "|" + "---|" * len(VERDICT_HEADER),
            ]
            for _, v in b.verdicts.iterrows():
                cells = verdict_fields(v)
                cells[2] = f"**{cells[2]}**"
                lines.append("| " + " | ".join(cells) + " |")
                index.append(f"- {s.name}/{b.budget} {v['claim_id']}: {v['verdict']}")
            lines.append("")
            figure_of = {c.id: c.figure for c in b.study.claims}
            for _, v in b.verdicts.iterrows():
                lines += [
                    f"### {v['claim_id']}: {v['verdict']}\n",
                    f"*Claim.* {v['statement']}\n",
                    f"*Rule.* {v['rule']}\n",
                    f"*Reason.* {v['reason']}\n",
                    _md_table(detail_rows(v["detail"])),
                ]
                stem = figure_of[v["claim_id"]]
                if stem in b.figures:
                    lines.append(f"![{stem}]({s.name}/{b.budget}/{stem}.png)\n")
            lines.append("### All figures\n")
            lines += [f"![{stem}]({s.name}/{b.budget}/{stem}.png)\n" for stem in b.figures]
        index.append("")
        (out / f"{s.name}.md").write_text("\n".join(lines))
    path = out / "README.md"
    path.write_text("\n".join(index))
    return path


def report_all(results: Path | str, out: Path) -> Path:
    """Markdown and HTML reports for every discovered study.

    Args:
        results (Path | str):
            Results root, a local path or a URI.
        out (Path):
            Report directory.

    Returns:
        Path: the Markdown index (`report.html` lies beside it).
    """
    from analysis.html import write_html

    sections = collect(results, out)  # reads every table first: a damaged one leaves `out` untouched
    out.mkdir(parents=True, exist_ok=True)
    write_html(sections, results, out)
    return write_markdown(sections, results, out)
