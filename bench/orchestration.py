"""Orchestration overhead: N one-second trials on 2 slots through the runner, against the ideal N/2 seconds; and, with
`--scale`, what recording a trial costs as a study grows.

    python bench/orchestration.py [--trials 40] [--seconds 1.0]
    python bench/orchestration.py --scale [--trials 2000]
    python bench/orchestration.py --tune-alone [--trials 40]

Ray starts first (its start-up is printed on its own line and is not part of the ratio); the run records every
trial to Parquet exactly as a study does. The stand-in trial is the synthetic study's (`studies._synthetic`): a
sleep and one report, in a module that imports no more than Ray Tune's own trainable wrapper does.

Default mode, last line: `overhead ratio: <wall / ideal>x`.

`--tune-alone` runs the same trials through Ray Tune by itself (a function trainable that sleeps and reports once,
a grid of seeds, `reuse_actors`, two slots, nothing recorded): the floor under the runner on this machine, with the
same last line.

`--scale` runs zero-second trials and prints the recording time per trial of the first and the last 100 trials: the
recorder's `finish` on Ray Tune's callback thread, plus the writer thread's share of its batch (metrics file and
trial-table part), elapsed and in the writer's CPU time. The elapsed time also holds the writer's waits for the GIL
while Ray Tune's own loop (which grows with the number of trials) runs; the CPU time is what recording costs. Last
line: `recording last/first 100: <ratio>x`, in CPU time.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import studies._runner  # noqa: E402
from studies import _synthetic  # noqa: E402
from studies._ray import init_ray  # noqa: E402
from studies._record import Recorder  # noqa: E402
from studies._runner import run  # noqa: E402

RECORDERS: list[Recorder] = []


class Kept(Recorder):
    """The runner's recorder, kept for its timings once the run is over."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        RECORDERS.append(self)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=None, help="default 40 (2000 with --scale)")
    p.add_argument("--seconds", type=float, default=None, help="trial length: default 1.0 (0 with --scale)")
    p.add_argument("--scale", action="store_true", help="recording cost per trial, first 100 against last 100")
    p.add_argument("--tune-alone", action="store_true", help="the same trials through Ray Tune alone, nothing recorded")
    args = p.parse_args()
    trials = args.trials or (2000 if args.scale else 40)
    seconds = args.seconds if args.seconds is not None else (0.0 if args.scale else 1.0)
    t0 = time.perf_counter()
    init_ray(None, num_cpus=2)
    print(f"ray.init: {time.perf_counter() - t0:.1f} s")
    if args.tune_alone:
        wall = tune_alone(trials, seconds)
        print(f"ray tune alone: {trials} trials, wall {wall:.1f} s, ideal {trials * seconds / 2:.1f} s")
        print(f"overhead ratio: {wall / (trials * seconds / 2):.2f}x")
        return
    studies._runner.Recorder = Kept
    study = _synthetic.get_study(seeds=trials // 2, steps=1, sleep=seconds)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        summary = run(study, Path(d))
        wall = time.perf_counter() - t0
    ideal = trials * seconds / 2
    print(
        f"| trials | slots | trial s | wall s | ideal s | trials/hour |\n|---|---|---|---|---|---|\n"
        f"| {summary['ok']} | 2 | {seconds} | {wall:.1f} | {ideal:.1f} | {summary['ok'] / wall * 3600:.0f} |"
    )
    if not args.scale:
        print(f"overhead ratio: {wall / ideal:.2f}x")
        return
    (rec,) = RECORDERS

    def ms(xs: list[float]) -> float:
        return statistics.mean(xs) * 1e3

    cpu = [f + w for f, w in zip(rec.finish_s, rec.writer.write_cpu_s, strict=True)]
    elapsed = [f + w for f, w in zip(rec.finish_s, rec.writer.write_s, strict=True)]
    for name, xs in (
        ("callback (finish)", rec.finish_s),
        ("writer, elapsed", rec.writer.write_s),
        ("writer, CPU", rec.writer.write_cpu_s),
        ("recording, elapsed", elapsed),
        ("recording, CPU", cpu),
    ):
        print(
            f"{name:20s} per trial: first 100 {ms(xs[:100]):6.2f} ms, last 100 {ms(xs[-100:]):6.2f} ms, "
            f"ratio {ms(xs[-100:]) / ms(xs[:100]):.2f}x"
        )
    print(f"recording last/first 100: {ms(cpu[-100:]) / ms(cpu[:100]):.2f}x")


def sleeper(config: dict) -> None:
    """Ray Tune's side of the stand-in trial: sleep, report once."""
    from ray import tune

    time.sleep(config["sleep"])
    tune.report({"score": float(config["seed"])})


def tune_alone(trials: int, seconds: float) -> float:
    """Wall seconds of `trials` sleeping trials through a bare `tune.Tuner` on two slots (actor reuse, no recording)."""
    from ray import tune

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        tune.Tuner(
            sleeper,
            param_space={"seed": tune.grid_search(list(range(trials))), "sleep": seconds},
            tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=2),
            run_config=tune.RunConfig(storage_path=d, verbose=0),
        ).fit()
        return time.perf_counter() - t0


if __name__ == "__main__":
    main()
