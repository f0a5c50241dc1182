"""`python -m analysis [--results DIR] [--out DIR]`: verdicts, figures and Markdown reports from Parquet alone."""

import argparse
import sys
from pathlib import Path

from analysis.report import report_all


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--out", type=Path, default=Path("reports"))
    args = p.parse_args(argv)
    if not args.results.is_dir():
        print(f"analysis: error: no results directory {args.results}", file=sys.stderr)
        return 2
    index = report_all(args.results, args.out)
    print(index.read_text())
    print(f"report: {index.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
