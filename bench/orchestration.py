"""Orchestration overhead: N one-second trials on 2 slots through the runner, against the ideal N/2 seconds.

    python bench/orchestration.py [--trials 40] [--seconds 1.0]

Ray starts first (its start-up is printed on its own line and is not part of the ratio); the run records every
trial to Parquet exactly as a study does. The last line is `overhead ratio: <wall / ideal>x`.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studies import _synthetic  # noqa: E402
from studies._runner import init_ray, run  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--seconds", type=float, default=1.0)
    args = p.parse_args()
    t0 = time.perf_counter()
    init_ray(None, num_cpus=2)
    print(f"ray.init: {time.perf_counter() - t0:.1f} s")
    study = _synthetic.get_study(seeds=args.trials // 2, steps=1, sleep=args.seconds)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        summary = run(study, Path(d))
        wall = time.perf_counter() - t0
    ideal = args.trials * args.seconds / 2
    print(
        f"| trials | slots | trial s | wall s | ideal s | trials/hour |\n|---|---|---|---|---|---|\n"
        f"| {summary['ok']} | 2 | {args.seconds} | {wall:.1f} | {ideal:.1f} | {summary['ok'] / wall * 3600:.0f} |"
    )
    print(f"overhead ratio: {wall / ideal:.2f}x")


if __name__ == "__main__":
    main()
