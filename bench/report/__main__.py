"""``python -m bench.report RESULTS_DIR [--out DIR]``: rebuild the report from stored records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results folder (a run, a sweep, or several)")
    parser.add_argument(
        "--out", type=Path, help="where to write report.md, report.html and figures/ (default: RESULTS)"
    )
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        print(f"fxbench: {args.results} is not a folder of results.", file=sys.stderr)
        return 2
    from bench.records import write_summary
    from bench.report import build_report

    write_summary(args.results)
    paths = build_report(args.results, args.out)
    print(f"report: {paths['md']}\n        {paths['html']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
