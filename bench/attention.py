"""Causal attention, forward + backward: linear_elu (chunked) against SDPA, the materialised softmax and, on CUDA, fla.

    python bench/attention.py [--max-n 8192] [--reps 5] [--threads 2] [--chunk 64] [--batch 1] [--heads 1]
                              [--dtypes float32,bfloat16]
    python bench/attention.py --batch 4 --heads 8 --min-n 1024 --max-n 65536 --dtypes bfloat16,float32   # a GPU

Prints a table (dtype, n, variant, median ms, MiB kept for backward; on a GPU also the allocator's peak), the log-log
slopes of time and memory over n >= 2048 for linear_elu, and the speed-ups at each n. `fla` is flash-linear-attention's
Triton chunked kernel fed the same elu + 1 features (`core.attention.fla_linear_elu`), timed where it can run (CUDA
and the gpu extra). The materialised softmax is skipped where its weights would not fit (`--softmax-max-bytes`).
Targets on a 2-core CPU at n = 8192 (issue 9): linear_elu >= 15x faster than sdpa and >= 50x faster than softmax,
with time and memory slopes <= 1.15. On a GPU (issue 22), B = 4, H = 8, d = 64, bfloat16, n = 32768: the fastest
causal linear form >= 5x faster than sdpa, and linear_elu within 2x of fla.
"""

import argparse
import functools
import statistics
import time

import numpy as np
import torch

from core.attention import fla_available, fla_linear_elu, kernel_attention, sdpa, softmax
from core.memory import saved_bytes

VARIANTS = {
    "linear_elu": lambda chunk: functools.partial(kernel_attention, "linear_elu", causal=True, chunk=chunk),
    "fla": lambda chunk: functools.partial(fla_linear_elu, causal=True),
    "sdpa": lambda chunk: functools.partial(sdpa, causal=True),
    "softmax": lambda chunk: functools.partial(softmax, causal=True),
}
LINEAR = ("linear_elu", "fla")


def measure(fn, shape: tuple[int, int, int, int], dtype: torch.dtype, reps: int, device: str) -> tuple[float, float, float]:
    """Median forward + backward ms, bytes kept for backward, and (GPU) the allocator's peak bytes."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    g = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(shape, generator=g, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
    times = []
    for _ in range(reps + 2):
        sync()
        t0 = time.perf_counter()
        fn(q, k, v).float().sum().backward()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    peak = float("nan")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _, kept = saved_bytes(fn, q, k, v)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated()
    return statistics.median(times[2:]), kept, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-n", type=int, default=8192)
    ap.add_argument("--min-n", type=int, default=512)
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--dtypes", default="float32", help="comma-separated torch dtypes, e.g. bfloat16,float32")
    ap.add_argument("--softmax-max-bytes", type=float, default=4 * 2**30,
                    help="skip the materialised softmax where its B x H x n x n float32 weights exceed this")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {args.threads} threads"
    variants = {v: make for v, make in VARIANTS.items() if v != "fla" or fla_available()}
    print(
        f"device: {name}; torch {torch.__version__}; B = {args.batch}, H = {args.heads}, d = {args.d}, causal, "
        f"forward + backward, chunk {args.chunk}; variants: {', '.join(variants)}"
        + ("" if "fla" in variants else " (fla needs CUDA and the gpu extra)")
    )
    ns = [2**i for i in range(args.min_n.bit_length() - 1, args.max_n.bit_length())]
    rows = []
    print(f"{'dtype':>9} {'n':>7} {'variant':>11} {'ms':>10} {'MiB kept':>10} {'MiB peak':>10}")
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        for n in ns:
            for variant, make in variants.items():
                if variant == "softmax" and args.batch * args.heads * n * n * 4 > args.softmax_max_bytes:
                    continue
                shape = (args.batch, args.heads, n, args.d)
                ms, kept, peak = measure(make(args.chunk), shape, dtype, args.reps, device)
                rows.append((dtype_name, n, variant, ms, kept, peak))
                print(f"{dtype_name:>9} {n:>7} {variant:>11} {ms:>10.2f} {kept / 2**20:>10.2f} {peak / 2**20:>10.2f}",
                      flush=True)  # fmt: skip
    for dtype_name in args.dtypes.split(","):
        lin = [(n, ms, kept) for dt, n, v, ms, kept, _ in rows if dt == dtype_name and v == "linear_elu" and n >= 2048]
        if len(lin) >= 2:
            ln = np.log([r[0] for r in lin])
            t_slope = np.polyfit(ln, np.log([r[1] for r in lin]), 1)[0]
            m_slope = np.polyfit(ln, np.log([r[2] for r in lin]), 1)[0]
            print(f"{dtype_name}: linear_elu slopes over n >= 2048: time {t_slope:.3f}, memory {m_slope:.3f}")
        for n in ns:
            at = {v: ms for dt, m, v, ms, *_ in rows if dt == dtype_name and m == n}
            fastest = min((v for v in LINEAR if v in at), key=at.get)
            parts = [f"{other} / {fastest} = {at[other] / at[fastest]:.1f}x" for other in ("sdpa", "softmax") if other in at]
            if "fla" in at:
                parts.append(f"linear_elu / fla = {at['linear_elu'] / at['fla']:.2f}x")
            print(f"{dtype_name} n = {n}: fastest causal linear form {fastest}; " + "; ".join(parts))


if __name__ == "__main__":
    main()
