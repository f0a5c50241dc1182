"""Verdicts, figures and a Markdown report for every study with results, from the Parquet files alone."""

import json
import math
import sys
from pathlib import Path

import pandas as pd

from analysis import style
from analysis.load import tables_for
from analysis.plots import GENERIC
from analysis.schema import read_trials, write_verdicts
from analysis.verdict import evaluate
from studies import BUDGETS, discover


def _num(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def _detail_table(detail: str) -> str:
    rows = json.loads(detail) if detail else []
    if not rows:
        return ""
    df = pd.DataFrame(rows)
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(_num(v) for v in r) + " |\n" for r in df.itertuples(index=False))


def draw_figures(study, tables, fig_dir: Path) -> list[str]:
    """Draw the study's figures and the generic ones into `fig_dir`; return the stems drawn.

    A figure that fails is reported on stderr and skipped, so one broken plot never loses the report.
    """
    fig_dir.mkdir(parents=True, exist_ok=True)
    drawn = []
    for draw in (*study.figures, *GENERIC):
        try:
            made = draw(tables)
        except Exception as exc:  # noqa: BLE001
            print(f"analysis: warning: {study.name}/{study.budget} figure {draw.__name__} failed: {exc}", file=sys.stderr)
            continue
        if made is not None:
            stem, fig = made
            style.save(fig, fig_dir / f"{stem}.png")
            drawn.append(stem)
    return drawn


def study_report(name: str, module, results: Path, out: Path) -> list[str]:
    """Evaluate, draw and write `out/<study>.md` for every budget with results; return summary lines."""
    study_dir = results / name
    trials = read_trials(study_dir)
    budgets = [b for b in BUDGETS if (trials["budget"] == b).any()]
    if not budgets:
        return []
    lines, summary = [f"# {name}\n"], []
    meta_path = study_dir / "metadata.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    for budget in budgets:
        study = module.get_study(budget)
        tables = tables_for(study_dir, budget)
        verdicts = evaluate(study, tables)
        write_verdicts(study_dir, verdicts)
        counts = tables.trials["status"].value_counts().to_dict()
        lines += [
            f"## Budget `{budget}`\n",
            f"Article: {study.article}\n",
            f"Trials: {len(tables.trials)} ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
            f"command `python -m studies run {name} --budget {budget}`; commit `{meta.get('git_commit', '?')}` "
            f"(latest run: budget {meta.get('budget', '?')}, started {meta.get('started_at', '?')}).\n",
        ]
        lines += ["| claim | kind | verdict | effect | 95% CI | p | n | reason |", "|---|---|---|---|---|---|---|---|"]
        for _, v in verdicts.iterrows():
            lines.append(
                f"| {v['claim_id']} | {v['kind']} | **{v['verdict']}** | {_num(v['effect'])} | "
                f"[{_num(v['ci_low'])}, {_num(v['ci_high'])}] | {_num(v['p_value'])} | {v['n_seeds']} | {v['reason']} |"
            )
            summary.append(f"{name}/{budget} {v['claim_id']}: {v['verdict']}")
        lines.append("")
        drawn = draw_figures(study, tables, out / name / budget)
        figure_of = {c.id: c.figure for c in study.claims}
        for _, v in verdicts.iterrows():
            lines += [
                f"### {v['claim_id']}: {v['verdict']}\n",
                f"*Claim.* {v['statement']}\n",
                f"*Rule.* {v['rule']}\n",
                f"*Reason.* {v['reason']}\n",
                _detail_table(v["detail"]),
            ]
            if figure_of[v["claim_id"]] in drawn:
                lines.append(f"![{figure_of[v['claim_id']]}]({name}/{budget}/{figure_of[v['claim_id']]}.png)\n")
        lines.append("### All figures\n")
        lines += [f"![{stem}]({name}/{budget}/{stem}.png)\n" for stem in drawn]
    (out / f"{name}.md").write_text("\n".join(lines))
    return summary


def report_all(results: Path, out: Path) -> Path:
    """Reports for every discovered study with results, plus `out/README.md` indexing their verdicts.

    Args:
        results (Path):
            Results root.
        out (Path):
            Report directory.

    Returns:
        Path: the index file.
    """
    out.mkdir(parents=True, exist_ok=True)
    index = [
        "# claimbench report\n",
        f"Results: `{results}`. Regenerate with `python -m analysis --results {results} --out {out}`.\n",
    ]
    for name, module in discover().items():
        summary = study_report(name, module, results, out)
        if summary:
            index.append(f"## [{name}]({name}.md)\n")
            index += [f"- {s}" for s in summary] + [""]
    path = out / "README.md"
    path.write_text("\n".join(index))
    return path
