"""A synthetic study with a planted answer, for testing and benchmarking the orchestration (not discovered).

Arm `effect` adds a known shift to a noisy score; a trial can be told to sleep, raise or diverge. Its one claim,
S1, is decided by a one-sided paired t-test, so tests can check a verdict against the planted truth.
"""

import math
import os
import time
from pathlib import Path

import numpy as np
import ray
from ray import tune

from studies import Claim, Fusion, Study, Tuning, trial_device


def devices() -> dict[str, float]:
    """What the trial was given, as metrics: its node, Ray's GPU ids, whether `CUDA_VISIBLE_DEVICES` shows exactly
    those, the first id (-1 for none) and whether the trial's tensors live on CUDA (`studies.trial_device`)."""
    import torch  # here, not at import: a trial without `report_devices` never loads torch

    ids = [str(i) for i in ray.get_gpu_ids()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    on_cuda = torch.zeros(1, device=trial_device()).is_cuda
    node = ray.get_runtime_context().get_node_id()
    return {
        "device/node": float(int(node[:12], 16)),  # the node the trial ran on, as a number (first 48 bits of its id)
        "device/gpus": float(len(ids)),
        "device/gpu_id": float(ids[0]) if ids else -1.0,
        "device/visible_is_assigned": float(visible.split(",") == ids if ids else visible in ("", "-1")),
        "device/on_cuda": float(on_cuda),
        "device/cuda_initialized": float(torch.cuda.is_initialized()),  # 0 in a CPU trial, even on a GPU machine
    }


def train(config: dict) -> None:
    """Report `steps` noisy scores; raise at step `fail_at`, report a NaN loss at step `diverge_at`.

    With `report_devices`, each report also carries `devices()`. With `live_dir`, a file named after the trial's
    node lives there while the trial trains (a test sees where trials are running, to fail a node that has one).
    """
    live = None
    if config.get("live_dir"):
        node = ray.get_runtime_context().get_node_id()
        live = Path(config["live_dir"]) / f"{node}-{config['effect']}-{config['seed']}-{os.getpid()}"
        live.touch()
    try:
        _steps(config)
    finally:
        if live is not None:
            live.unlink(missing_ok=True)


def train_fused(configs: list[dict], report) -> None:
    """The members of a bundle, each as `train` would run it alone; one report a step carries every member's."""
    per_member = []
    for config in configs:
        rows: list[dict] = []
        _steps(config, rows.append)  # a planted failure raises here and fails the whole bundle
        per_member.append(rows)
    for step in range(max(len(rows) for rows in per_member)):
        report([rows[step] if step < len(rows) else None for rows in per_member])


def _steps(config: dict, report=None) -> None:
    rng = np.random.default_rng([config["seed"], round(config["effect"] * 1000)])  # arms get independent noise
    extra = devices() if config.get("report_devices") else {}
    for step in range(1, config["steps"] + 1):
        if config.get("sleep"):
            time.sleep(config["sleep"])
        if step == config.get("fail_at"):
            raise RuntimeError(f"planted failure at step {step}")
        loss = math.nan if step == config.get("diverge_at") else 1.0 / step + 0.01 * rng.standard_normal()
        # A nuisance lr, when tuned, costs (log10 lr + 2)^2: its best value is 0.01 in every arm.
        score = config["effect"] - (math.log10(config["lr"]) + 2) ** 2 if "lr" in config else config["effect"]
        noisy = score + 0.1 * rng.standard_normal()
        (report or tune.report)({"step": step, "train/loss": loss, "val/score": score, "test/score": noisy, **extra})


def check_s1(t):
    """S1: arm effect > 0 beats effect = 0 on the final score, one-sided paired t over seeds (`analysis.verdict.Tables`
    in, `Verdict` out)."""
    # Imported here: Ray's workers import this module to run `train`, and the statistics (scipy, pandas) would add
    # about half a second to each worker's start for nothing (bench/orchestration.py times this study).
    from analysis.stats import ALPHA, paired_test
    from analysis.verdict import INCONCLUSIVE, REFUTED, SUPPORTED, Verdict

    ok = t.trials[t.trials["status"] == "ok"]
    a = ok[ok["config/effect"] > 0].set_index("seed")["test/score"]
    b = ok[ok["config/effect"] == 0].set_index("seed")["test/score"]
    d = (a - b).dropna().to_numpy()
    res = paired_test(d)
    verdict = SUPPORTED if res.p < ALPHA else (REFUTED if paired_test(d, "less").p < ALPHA else INCONCLUSIVE)
    return Verdict(verdict, f"paired t over {res.n} seeds", res.mean, res.ci_low, res.ci_high, res.p, ALPHA, res.n)


def get_study(
    budget: str = "smoke",
    seeds: int = 4,
    effect: float = 0.5,
    steps: int = 3,
    sleep: float = 0.0,
    fail_seed: int | None = None,
    diverge_seed: int | None = None,
    tuned_trials: int = 0,
    untuned_baseline: bool = False,
    gpu: float = 0.0,
    report_devices: bool = False,
    max_concurrent: int | None = 2,
    live_dir: str | None = None,
    fused: int = 0,
) -> Study:
    """The synthetic study; `fail_seed` / `diverge_seed` plant a failing / diverging trial in the effect arm.

    `tuned_trials > 0` tunes a nuisance `lr` per arm with that many Optuna trials before the confirmation runs;
    with `untuned_baseline` the effect = 0 arm has an empty space and is not tuned. `gpu` is each trial's
    (fractional) GPU request; `report_devices` adds the trial's device metrics (and so changes the config hashes).
    `fused > 0` lets the runner bundle up to that many trials of an arm (`train_fused`).
    """
    space = {"lr": tune.loguniform(1e-4, 1.0)}
    nuisance = (lambda c: space if c["effect"] else {}) if untuned_baseline else space

    def planted(e: float, s: int) -> dict:
        if not e:
            return {}
        return {**({"fail_at": 2} if s == fail_seed else {}), **({"diverge_at": 2} if s == diverge_seed else {})}

    cells = [{"effect": e, "seed": s, **planted(e, s)} for e in (0.0, effect) for s in range(seeds)]
    return Study(
        name="synthetic",
        budget=budget,
        article="none: a planted effect",
        trainable=train,
        param_space={
            "cell": tune.grid_search(cells),
            "steps": steps,
            "sleep": sleep,
            **({"report_devices": True} if report_devices else {}),
            **({"live_dir": live_dir} if live_dir else {}),
        },
        scientific=("effect",),
        claims=(Claim("S1", "The effect arm scores higher.", "one-sided paired t, alpha 0.05", "empirical", check_s1),),
        resources={"cpu": 1, **({"gpu": gpu} if gpu else {})},
        max_concurrent=max_concurrent,
        cost="seconds",
        tuning=Tuning(nuisance, "val/score", "max", tuned_trials) if tuned_trials else None,
        fusion=Fusion(train_fused, ("seed", "fail_at", "diverge_at"), lambda c: 1, max_members=fused) if fused else None,
    )
