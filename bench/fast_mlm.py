"""Pseudo-likelihood scoring: T-TA's one pass against MLM's T masked copies, and the batched copies against a loop.

    python bench/fast_mlm.py [--windows 256] [--length 32] [--reps 5] [--threads 1]

Model of the fast_mlm local budget (3 layers, d = 96, 4 heads, FFN 384, 4,003-word vocabulary), untrained: the
arithmetic does not depend on the weights. Prints, per length T, the median seconds to score `--windows` random
windows with T-TA (`pll_single`), MLM with its copies batched (`pll_masked`, the study's path) and MLM one position
at a time (`pll_masked_naive`, the reference), and the speed-ups with their ratio to T. The paper reports T-TA over
6x faster on CPU (claim T4); the ceiling is about T.
"""

import argparse
import statistics
import time

import torch

from core.tta import Encoder, pll_masked, pll_masked_naive, pll_single

VOCAB, MASK = 4003, 4001


def seconds(fn, model, x, keep, batch: int, reps: int) -> float:
    """Median seconds to score all windows `batch` at a time (one warm-up pass first)."""
    out = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        for i in range(0, len(x), batch):
            fn(model, x[i : i + batch], keep[i : i + batch], keep[i : i + batch])
        out.append(time.perf_counter() - t0)
    return statistics.median(out[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=256)
    p.add_argument("--lengths", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    models = {}
    for objective in ("tta", "mlm"):
        torch.manual_seed(0)
        models[objective] = Encoder(VOCAB, max(args.lengths), 96, 4, 3, 384, objective, MASK).eval()
    print(f"{args.windows} windows, batch {args.batch}, {args.threads} thread(s), median of {args.reps}")
    print("T | tta s | mlm batched s | mlm loop s | mlm / tta | ratio to T | loop / batched")
    for length in args.lengths:
        x = torch.randint(0, 4000, (args.windows, length), generator=torch.Generator().manual_seed(length))
        keep = torch.ones_like(x, dtype=torch.bool)
        tta = seconds(pll_single, models["tta"], x, keep, args.batch, args.reps)
        mlm = seconds(pll_masked, models["mlm"], x, keep, args.batch, args.reps)
        loop = seconds(pll_masked_naive, models["mlm"], x, keep, args.batch, max(1, args.reps // 2))
        print(
            f"{length} | {tta:.3f} | {mlm:.3f} | {loop:.3f} | {mlm / tta:.1f}x | {mlm / tta / length:.2f} | {loop / mlm:.2f}x"
        )


if __name__ == "__main__":
    main()
