"""One self-contained `report.html`: figures embedded as data URIs, inline CSS, nothing fetched to view it.

An overview table of every study x claim with its verdict per budget (colour-coded; `not run` where no
results exist), then a section per study: claims, rules, the numbers behind each verdict, its figure, all
figures, the data used, the commit, library versions and the command that regenerates it. A small script
records in `<body data-images data-images-loaded>` how many images decoded, for the browser test.
"""

import base64
import html
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from analysis import style
from analysis.schema import BUDGETS
from analysis.sections import VERDICT_HEADER, BudgetSection, StudySection, detail_rows, num, plan_notes, verdict_fields
from analysis.store import join

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.badge { display: inline-block; white-space: nowrap; padding: 1px 7px; border-radius: 4px; font-weight: 600;
         font-size: 0.85em; }
.small { color: #666; font-size: 0.85em; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.3em 0; }
details { margin: 0.3em 0 0.8em; }
code { background: #f6f6f6; padding: 0 3px; }
"""
SCRIPT = """
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  document.body.dataset.images = imgs.length;
  document.body.dataset.imagesLoaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
});
"""


def _e(x) -> str:
    return html.escape(str(x))


def badge(verdict: str, label: str | None = None, title: str = "") -> str:
    """A label (the verdict itself unless given) on the verdict's colour, with an optional hover text."""
    hover = f' title="{_e(title)}"' if title else ""
    colour = style.VERDICT.get(verdict, "#ddd")
    return f'<span class="badge" style="background:{colour}"{hover}>{_e(verdict if label is None else label)}</span>'


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(df) -> str:
    if df.empty:
        return ""
    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(num(v))}</td>" for v in r) + "</tr>" for r in df.itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"


def _standing(s: StudySection) -> tuple[dict, set]:
    """A study's verdict table per budget (indexed by claim id) and the budgets whose runs are incomplete."""
    return {b.budget: b.verdicts.set_index("claim_id") for b in s.budgets}, {b.budget for b in s.budgets if b.tables.waiting}


def glance(sections: list[StudySection]) -> str:
    """One row per study, one cell per budget: each claim's id on its verdict's colour (the statement and the verdict
    on hover), so every study's standing fits one screen."""
    head = "<tr><th>study</th>" + "".join(f"<th>{b}</th>" for b in BUDGETS) + "</tr>"
    rows = []
    for s in sections:
        by_budget, waiting = _standing(s)
        cells = []
        for budget in BUDGETS:
            if budget not in by_budget or budget in waiting:
                cells.append(f"<td>{badge('incomplete' if budget in waiting else 'not run')}</td>")
                continue
            verdicts = by_budget[budget]["verdict"].reindex([c.id for c in s.claimed.claims]).fillna("not run")
            marks = [badge(v, c.id, f"{c.id}: {v}. {c.statement}") for c, v in zip(s.claimed.claims, verdicts, strict=True)]
            cells.append(f"<td>{' '.join(marks)}</td>")
        rows.append(f'<tr><td><a href="#{_e(s.name)}">{_e(s.name)}</a></td>{"".join(cells)}</tr>')
    legend = " ".join(badge(v) for v in style.VERDICT)
    return f'<table id="glance">{head}{"".join(rows)}</table><p class="small">{legend}</p>'


def overview(sections: list[StudySection]) -> str:
    """The article x claim table with a verdict cell per budget."""
    head = "<tr><th>study</th><th>claim</th><th>statement</th>" + "".join(f"<th>{b}</th>" for b in BUDGETS) + "</tr>"
    rows = []
    for s in sections:
        by_budget, waiting = _standing(s)
        for claim in s.claimed.claims:
            cells = []
            for budget in BUDGETS:
                v = by_budget.get(budget)
                if v is None or claim.id not in v.index:
                    cells.append(f"<td>{badge('incomplete' if budget in waiting else 'not run')}</td>")
                    continue
                r = v.loc[claim.id]
                numbers = f"{num(r['effect'])} [{num(r['ci_low'])}, {num(r['ci_high'])}], n={r['n_seeds']}"
                cells.append(f'<td>{badge(r["verdict"])}<br><span class="small">{_e(numbers)}</span></td>')
            link = f'<a href="#{_e(s.name)}">{_e(s.name)}</a>'
            rows.append(f"<tr><td>{link}</td><td>{_e(claim.id)}</td><td>{_e(claim.statement)}</td>{''.join(cells)}</tr>")
    return f'<table id="overview">{head}{"".join(rows)}</table>'


def budget_section(s: StudySection, b: BudgetSection) -> str:
    """Verdicts, numbers and figures of one study at one budget."""
    counts = ", ".join(f"{v} {k}" for k, v in b.tables.trials["status"].value_counts().items())
    m = b.meta
    out = [
        f'<h3 id="{_e(s.name)}-{b.budget}">{_e(s.name)} at <code>{b.budget}</code></h3>',
        f"<p>Trials: {len(b.tables.trials)} ({_e(counts)}). Regenerate the data with "
        f"<code>python -m studies run {_e(s.name)} --budget {b.budget}</code>.</p>",
        f'<p class="small">Latest run: <code>{_e(m.get("command", "?"))}</code>, '
        f"commit <code>{_e(m.get('git_commit', '?'))}</code>, "
        f"started {_e(m.get('started_at', '?'))}; data: {_e('; '.join(m.get('data', [])) or 'generated')}.</p>"
        '<details><summary class="small">Library versions</summary>'
        f"<pre>{_e(json.dumps(m.get('versions', {}), indent=1))}</pre></details>",
        *(f"<p>{_e(line.strip())}</p>" for line in plan_notes(s.name, b.budget, b.tables)),
        "<table><tr>" + "".join(f"<th>{h}</th>" for h in VERDICT_HEADER) + "</tr>",
    ]
    for _, v in b.verdicts.iterrows():
        cells = [_e(c) for c in verdict_fields(v)]
        cells[2] = badge(v["verdict"])
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    figure_of = {c.id: c.figure for c in b.claimed.claims}
    for _, v in b.verdicts.iterrows():
        out += [
            f"<h4>{_e(v['claim_id'])} {badge(v['verdict'])}</h4>",
            f"<p><b>Claim.</b> {_e(v['statement'])}<br><b>Rule.</b> {_e(v['rule'])}<br><b>Reason.</b> {_e(v['reason'])}</p>",
            _table(detail_rows(v["detail"])),
        ]
        stem = figure_of.get(v["claim_id"])
        if stem in b.figures:
            out.append(_img(b.figures[stem], stem))
    out.append("<details><summary>All figures</summary>")
    out += [_img(path, stem) for stem, path in b.figures.items()]
    out.append("</details>")
    return "\n".join(out)


def study_section(s: StudySection, results: Path) -> str:
    """A study: article and results location, then each budget with the provenance of its latest run."""
    out = [f'<h2 id="{_e(s.name)}">{_e(s.name)}</h2>', f"<p>{_e(s.claimed.article)}</p>"]
    if not s.budgets:
        out.append(f"<p>{badge('not run')} Run it with <code>python -m studies run {_e(s.name)} --budget smoke</code>.</p>")
        return "\n".join(out)
    out.append(f'<p class="small">Results: <code>{_e(join(results, s.name))}</code>.</p>')
    out += [budget_section(s, b) for b in s.budgets]
    return "\n".join(out)


def write_html(sections: list[StudySection], results: Path, out: Path) -> Path:
    """Write `out/report.html`.

    Args:
        sections (list[StudySection]):
            From `analysis.report.collect`.
        results (Path):
            Results root, for provenance and the regeneration command.
        out (Path):
            Report directory.

    Returns:
        Path: the HTML file.
    """
    body = [
        "<h1>claimbench: verdicts on published claims</h1>",
        f'<p class="small">From the Parquet files in <code>{_e(results)}</code>; regenerate with '
        f"<code>python -m analysis --results {_e(results)} --out {_e(out)}</code>. SUPPORTED and REFUTED follow each "
        "claim's pre-registered rule; a study whose controls misbehave is INVALID.</p>",
        "<h2>At a glance</h2>",
        glance(sections),
        "<h2>Every claim</h2>",
        overview(sections),
        *(study_section(s, results) for s in sections),
    ]
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>claimbench report</title>'
        f"<style>{CSS}</style><script>{SCRIPT}</script></head><body>{''.join(body)}</body></html>"
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=5000",
]


def chromium() -> str | None:
    """Path of a headless-capable Chromium (Debian's `chromium`), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browse(page: Path, *args: str) -> str:
    """Open `page` in headless Chromium with extra flags (e.g. `--dump-dom`); return its stdout.

    Args:
        page (Path):
            The HTML file.
        *args (str):
            Chromium flags.

    Returns:
        str: what Chromium printed on stdout.
    """
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("chromium not found: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


def screenshot(page: Path, png: Path, size: str = "1280,1000") -> Path:
    """Save a PNG of the top of `page` as a browser shows it.

    Args:
        page (Path):
            The HTML file.
        png (Path):
            Destination.
        size (str):
            Window `width,height` in pixels.

    Returns:
        Path: the PNG.
    """
    png.parent.mkdir(parents=True, exist_ok=True)
    browse(page, f"--window-size={size}", f"--screenshot={png.resolve()}")
    return png
