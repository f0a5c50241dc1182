"""`python -m analysis [--results DIR] [--out DIR]`: verdicts, figures and Markdown reports from Parquet alone."""

import argparse
import sys
from pathlib import Path

from analysis.report import report_all


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--out", type=Path, default=Path("reports"))
    p.add_argument("--screenshot", type=Path, default=None, help="also save a PNG of report.html (needs chromium)")
    args = p.parse_args(argv)
    if not args.results.is_dir():
        print(f"analysis: error: no results directory {args.results}", file=sys.stderr)
        return 2
    index = report_all(args.results, args.out)
    print(index.read_text())
    if args.screenshot:
        from analysis.html import screenshot

        print(f"screenshot: {screenshot(args.out / 'report.html', args.screenshot).resolve()}")
    print(f"markdown: {index.resolve()}")
    print(f"report: {(args.out / 'report.html').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
