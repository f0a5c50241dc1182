"""Verdicts, figures, Markdown and a self-contained HTML report for every study, from the Parquet files alone.

Every study means the built-in ones and those outside the package whose runs a results root holds (their claims come
from the study file the run recorded, `analysis.load.outside_studies`).

`collect` reads every study's tables, then evaluates each study at each budget it has results for (writing
`<out>/<study>/verdicts.parquet`) and draws its figures once; `write_markdown` and `analysis.html.write_html`
render the same sections. Studies without results still appear, marked not run, so the overview shows every claim
of every article. The results are only read: everything is written under `out`.
"""

import sys
from pathlib import Path

import pandas as pd

from analysis import style
from analysis.claims import StudyFileError, claims_of_file, discover
from analysis.html import write_html
from analysis.load import lacking_metrics, outside_studies, tables_for
from analysis.plots import GENERIC, fig_nuisance_axes
from analysis.schema import BUDGETS, VERDICT_COLUMNS, describe_incomplete, read_json, read_trials, write_verdicts
from analysis.sections import VERDICT_HEADER, BudgetSection, StudySection, detail_rows, num, plan_notes, rerun, verdict_fields
from analysis.store import ResultsError, join
from analysis.verdict import StudyClaims, Tables, evaluate


def draw_figures(claimed: StudyClaims, tables: Tables, fig_dir: Path, tuning: dict | None = None) -> dict[str, Path]:
    """Draw the study's figures and the generic ones into `fig_dir`.

    A figure that fails, drawing or saving, is reported on stderr and skipped, so one broken plot never loses the
    report. Every figure is closed once saved, and whatever a failed one opened is closed too: none stays open.

    Args:
        claimed (StudyClaims):
            The study's figures.
        tables (Tables):
            Its results.
        fig_dir (Path):
            Where the PNG files go.
        tuning (dict | None):
            The run's tuning (`metadata/<budget>.json`: metric, mode and each arm's ranges) for the axis plots.

    Returns:
        dict[str, Path]: stem -> file of every figure drawn.
    """
    fig_dir.mkdir(parents=True, exist_ok=True)
    drawn = {}
    draws = [*claimed.figures, *GENERIC] + ([lambda t: fig_nuisance_axes(t, tuning)] if tuning else [])
    for draw in draws:
        with style.closing_figures():
            try:
                made = draw(tables)
                if made is not None:
                    stem, fig = made
                    style.save(fig, fig_dir / f"{stem}.png")
                    drawn[stem] = fig_dir / f"{stem}.png"
            except Exception as exc:  # noqa: BLE001
                where = f"{claimed.name}/{tables.budget}"
                print(f"analysis: warning: {where} figure {draw.__name__} failed: {exc}", file=sys.stderr)
    return drawn


def collect(results: Path | str, out: Path, study_files: list[Path] = (), draw: bool = True) -> list[StudySection]:
    """Evaluate and draw every discovered study, and every study outside the package, at every budget it has results for.

    Every table is read before anything is written: a damaged or foreign one (`analysis.store.ResultsError`)
    stops the analysis with nothing written. `results` is only read. A study outside the package is found by the
    study file its run recorded, or named by `study_files` (`analysis.load.outside_studies`); its claims are those of
    the file's `get_study(budget)`. A recorded file that is gone, changed or broken is one line on stderr.

    Args:
        results (Path | str):
            Results root, a local path or a URI.
        out (Path):
            Report directory (verdicts go to `out/<study>/verdicts.parquet`, figures to `out/<study>/<budget>/`).
        study_files (list[Path]):
            Study files outside the package to report (`--study PATH`), also without recorded results.
        draw (bool):
            Draw the figures (False: verdicts only, as `analysis.published` re-derives them).

    Returns:
        list[StudySection]: one per study, built-in ones first, each group in name order.
    """
    files, notes = outside_studies(results, study_files)
    for note in notes:
        print(f"analysis: warning: {note}", file=sys.stderr)
    claims_of = {name: (lambda budget, c=claimed: c) for name, claimed in discover().items()}
    claims_of |= {name: (lambda budget, f=file: claims_of_file(f, budget)) for name, file in files.items()}
    loaded, incomplete = [], []
    for name, claims_at in claims_of.items():
        study_dir = join(results, name)
        trials = read_trials(study_dir)
        budgets = [b for b in BUDGETS if ((trials["budget"] == b) & (trials["phase"] != "checks")).any()]
        try:
            claimed = {b: claims_at(b) for b in budgets or ["smoke"]}
        except StudyFileError as exc:  # a study file whose get_study fails at a budget it ran: left out, in one line
            print(f"analysis: warning: {name}: not reported: {exc}", file=sys.stderr)
            continue
        meta = {b: read_json(join(study_dir, "metadata", f"{b}.json")) for b in budgets}
        tables = {b: tables_for(study_dir, b) for b in budgets}
        for b in budgets:  # finished trials whose metrics are gone: no verdict may stand on the rest
            if lacking := lacking_metrics(study_dir, trials, tables[b]):
                incomplete.append(describe_incomplete(study_dir, b, lacking))
        loaded.append((name, claimed, [(b, tables[b], meta[b]) for b in budgets]))
    if incomplete:
        more = f" (and {len(incomplete) - 1} more studies or budgets)" if len(incomplete) > 1 else ""
        raise ResultsError(incomplete[0] + more)
    sections = []
    for name, claimed_at, per_budget in loaded:
        section = StudySection(name, next(iter(claimed_at.values())))
        for budget, tables, meta in per_budget:
            claimed = claimed_at[budget]
            where = f"analysis: {name}/{budget}:"
            if tables.ignored:
                print(
                    f"{where} ignored {tables.ignored} main row(s) outside the current plan (superseded runs)", file=sys.stderr
                )
            if tables.waiting:  # partial data decides nothing: the section says so and holds no verdict
                print(f"{where} no verdicts: {tables.waiting}; `{rerun(name, budget)}` finishes it", file=sys.stderr)
                verdicts, figures = pd.DataFrame(columns=VERDICT_COLUMNS), {}
            else:
                verdicts = evaluate(claimed, tables)
                figures = draw_figures(claimed, tables, out / name / budget, meta.get("tuning")) if draw else {}
            section.budgets.append(BudgetSection(budget, claimed, tables, verdicts, figures, meta))
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
            index += [f"## {s.name}: not run\n", f"Claims: {' '.join(c.id for c in s.claimed.claims)}\n"]
            continue
        index.append(f"## [{s.name}]({s.name}.md)\n")
        lines = [f"# {s.name}\n", f"Article: {s.claimed.article}\n"]
        for b in s.budgets:
            counts = b.tables.trials["status"].value_counts().to_dict()
            lines += [
                f"## Budget `{b.budget}`\n",
                f"Trials: {len(b.tables.trials)} ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
                f"command `python -m studies run {b.meta.get('study_file') or s.name} --budget {b.budget}`; "
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
            figure_of = {c.id: c.figure for c in b.claimed.claims}
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


def report_all(results: Path | str, out: Path, study_files: list[Path] = ()) -> Path:
    """Markdown and HTML reports for every discovered study and every study outside the package with results.

    Args:
        results (Path | str):
            Results root, a local path or a URI.
        out (Path):
            Report directory.
        study_files (list[Path]):
            Study files outside the package to report as well (`collect`).

    Returns:
        Path: the Markdown index (`report.html` lies beside it).
    """
    sections = collect(results, out, study_files)  # reads every table first: a damaged one leaves `out` untouched
    out.mkdir(parents=True, exist_ok=True)
    write_html(sections, results, out)
    return write_markdown(sections, results, out)
