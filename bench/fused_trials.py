"""Fused trials: the same flooding-style sweep through the runner, fused into bundles and one Ray trial per run.

    python bench/fused_trials.py [--sweeps digits,mnist_5k] [--seeds N] [--epochs N]
    python bench/fused_trials.py --device cuda --sweeps digits --seeds 11 --cpus 16   # one GPU, 264 runs

Each sweep is the flooding study's trainable at fixed shapes (an MLP, Adam, batch 128) over the local budget's
label noise x flood levels x seeds (digits: 3 x 8 x 4 = 96 runs of 60 epochs; MNIST-5k: 1 x 8 x 2 = 16 runs of
10 epochs, 784-256-256-10), run twice on one embedded Ray with two slots (Ray's start-up is not timed): `fuse=False` (one
Ray trial per run, as before) and `fuse=True` (the runner's bundles, `core.train.fused`). Both record every run to
Parquet as a study does; the final metrics of the two runs are compared (they train the same models). Peak
memory is the largest sum of the resident memory of Ray's worker processes, sampled every 0.2 s. The last line
is `fused speedup: <ratio>x` for the digits sweep.

With `--device cuda` every trial of both modes holds `--gpus-per-trial` of the GPU (default 1/8: eight slots), as
`python -m studies run ... --gpus-per-trial` gives it: lone runs train on the GPU one per Ray trial, and bundles hold
as many members as fit in a trial's share of GPU memory (then cut so every slot works).
"""

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from ray import tune

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.schema import read_trials  # noqa: E402
from studies import flooding  # noqa: E402
from studies._ray import init_ray
from studies._runner import run  # noqa: E402

SWEEPS = {  # flooding's local design (label noise x flood levels) at small shapes; seeds from --seeds
    "digits": {"dataset": "digits", "widths": [128, 128], "epochs": 60, "seeds": 4,
               "levels": flooding.FLOOD_LEVELS["local"]},
    "mnist_5k": {"dataset": "mnist_5k", "widths": [256, 256], "epochs": 10, "seeds": 2,
                 "levels": {0.2: flooding.FLOOD_LEVELS["local"][0.2]}},
}  # fmt: skip


def study_for(name: str, seeds: int | None = None, epochs: int | None = None, gpu: float = 0.0):
    spec = SWEEPS[name]
    base = flooding.get_study("smoke")
    cells = [{"label_noise": eta, "flood_level": b} for eta, levels in spec["levels"].items() for b in levels]
    fixed = {**flooding.FIXED["smoke"], "dataset": spec["dataset"], "widths": spec["widths"],
             "epochs": epochs or spec["epochs"]}  # fmt: skip
    space = {"cell": tune.grid_search(cells), "seed": tune.grid_search(list(range(seeds or spec["seeds"]))), **fixed}
    resources = {**base.resources, **({"gpu": gpu} if gpu else {})}
    return dataclasses.replace(base, name=f"bench_{name}", param_space=space, checks=None, resources=resources)


class PeakRSS:
    """The largest total resident memory of Ray's worker processes (`ray::` in their title), sampled in a thread."""

    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.is_set():
            total = 0
            for proc in Path("/proc").glob("[0-9]*"):  # Linux; psutil is not a dependency
                try:
                    if proc.joinpath("cmdline").read_bytes().startswith(b"ray::"):
                        total += int(proc.joinpath("statm").read_text().split()[1]) * page
                except (OSError, IndexError, ValueError):
                    continue  # the process ended meanwhile
            self.peak = max(self.peak, total)
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def timed(study, fuse: bool, root: Path) -> tuple[float, int, dict]:
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        summary = run(study, root, fuse=fuse)
        wall = time.perf_counter() - t0
    return wall, mem.peak, summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sweeps", default="digits,mnist_5k")
    p.add_argument("--seeds", type=int, default=None, help="seeds per sweep (default: 4 digits, 2 mnist_5k)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: 60 digits, 10 mnist_5k)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--gpus-per-trial", type=float, default=0.125, help="each trial's GPU share with --device cuda")
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the embedded Ray")
    args = p.parse_args()
    gpu = args.gpus_per_trial if args.device == "cuda" else 0.0
    if gpu:
        import torch

        if not torch.cuda.is_available():
            sys.exit("bench/fused_trials.py: error: --device cuda: this machine has no CUDA GPU")
        print(f"device: {torch.cuda.get_device_name()}, {gpu:g} GPU a trial, {args.cpus} CPUs")
    t0 = time.perf_counter()
    init_ray(None, num_cpus=args.cpus)
    print(f"ray.init: {time.perf_counter() - t0:.1f} s (not timed below)")
    print("| sweep | mode | trials | bundles | wall s | trials/hour | peak worker MiB | fused/unfused |")
    print("|---|---|---|---|---|---|---|---|")
    speedups = {}
    for name in args.sweeps.split(","):
        study = study_for(name, args.seeds, args.epochs, gpu)
        with tempfile.TemporaryDirectory() as d:
            walls = {}
            for fuse in (False, True):
                wall, peak, summary = timed(study, fuse, Path(d) / ("fused" if fuse else "alone"))
                walls[fuse] = wall
                n = summary["ok"] + summary["diverged"] + summary["failed"]
                ratio = f"{walls[False] / wall:.2f}x" if fuse else ""
                print(f"| {name} | {'fused' if fuse else 'unfused'} | {n} | {summary['bundles']} | {wall:.1f} | "
                      f"{n / wall * 3600:.0f} | {peak / 2**20:.0f} | {ratio} |", flush=True)  # fmt: skip
            a, f = (read_trials(Path(d) / m / study.name).set_index("trial_id").sort_index() for m in ("alone", "fused"))
            worst = float(((a["test/loss"] - f["test/loss"]).abs() / a["test/loss"].abs()).max())
            print(f"  {name}: same {len(a)} trial ids: {list(a.index) == list(f.index)}; "
                  f"largest relative difference of the final test loss, fused vs alone: {worst:.1e}")  # fmt: skip
            speedups[name] = walls[False] / walls[True]
    for name, ratio in speedups.items():
        if name != "digits":
            print(f"{name} fused speedup: {ratio:.2f}x")
    if "digits" in speedups:
        print(f"fused speedup: {speedups['digits']:.2f}x")


if __name__ == "__main__":
    main()
