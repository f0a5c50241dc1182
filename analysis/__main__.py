"""`python -m analysis [--results DIR|URI] [--out DIR] [--study FILE ...]`: verdicts, figures and Markdown reports
from Parquet alone.

Besides the built-in studies, a results folder of a study outside the package is reported with the claims of the
study file its run recorded; `--study FILE` names that file instead (it moved) or adds one without results.

`--results` is a local folder or a URI (`s3://bucket/prefix`, `gs://…`, `file://…`), only ever read; the reports and
`<out>/<study>/verdicts.parquet` go to a local `--out`. A damaged or foreign table is one line, exit 2, nothing written.
"""

import argparse
import sys
from pathlib import Path

from analysis.claims import StudyFileError
from analysis.report import report_all
from analysis.store import ResultsError, check_reachable, exists, exit_now_if_a_probe_hangs, first_line, results_location


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    p.add_argument("--results", type=results_location, default=Path("results"), help="folder or URI (s3://bucket/prefix)")
    p.add_argument("--out", type=Path, default=Path("reports"))
    p.add_argument(
        "--study",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a study file outside the package to report (repeatable; default: the files the runs recorded)",
    )
    p.add_argument("--screenshot", type=Path, default=None, help="also save a PNG of report.html (needs chromium)")
    args = p.parse_args(argv)
    try:
        check_reachable(args.results)  # a store that does not answer is named within 30 s; Ctrl-C works meanwhile
        found = exists(args.results)
    except (OSError, ValueError) as exc:  # an unknown scheme or bucket, no credentials, an unreachable endpoint
        print(f"analysis: error: cannot read {args.results}: {first_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("analysis: interrupted; nothing was written", file=sys.stderr)
        return 130
    if not found:
        print(f"analysis: error: no results directory {args.results}", file=sys.stderr)
        return 2
    try:
        index = report_all(args.results, args.out, args.study)
    except (ResultsError, StudyFileError) as exc:  # a damaged table, or a bad --study file: one line, nothing written
        print(f"analysis: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"analysis: interrupted; the results were only read, the report in {args.out} may be partial", file=sys.stderr)
        return 130
    print(index.read_text())
    if args.screenshot:
        from analysis.html import screenshot

        print(f"screenshot: {screenshot(args.out / 'report.html', args.screenshot).resolve()}")
    print(f"markdown: {index.resolve()}")
    print(f"report: {(args.out / 'report.html').resolve()}")
    return 0


if __name__ == "__main__":
    code = main()
    exit_now_if_a_probe_hangs(code)  # a store that never answered would hold pyarrow's shutdown
    sys.exit(code)
