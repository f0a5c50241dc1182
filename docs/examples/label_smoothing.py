"""Label smoothing and calibration: a complete claimbench study in one file (walked through in docs/writing-a-study.md).

Claim:   label smoothing (epsilon 0.1) lowers the expected calibration error (ECE) of an MLP on scikit-learn's digits
         (LS1) without costing test accuracy (LS2). Control LS-C1: before its first step the network cannot be
         better calibrated in one arm, so that comparison must FAIL.
Paper:   Mueller, Kornblith, Hinton, "When does label smoothing help?", NeurIPS 2019 (arXiv:1906.02629).
Run:     python -m studies run docs/examples/label_smoothing.py --budget smoke --results /tmp/r
Cost:    smoke ~45 s on 2 CPU cores (6 tuning + 6 confirmation runs); local ~3 min (24 + 20).
"""

import torch
import torch.nn.functional as F
from ray import tune

from analysis.rules import Cell, Control, NonInferiority, Superiority
from analysis.verdict import FAIL
from core.data.classification import load
from core.models import mlp
from core.robustness import expected_calibration_error
from studies import Claim, Study, Tuning, trial_device

SMOOTHING = 0.1  # the treated arm's epsilon; the baseline arm has 0
SEEDS = {"smoke": 3, "local": 10, "full": 20}  # confirmation seeds per arm, shared by both arms
TUNING_TRIALS = {"smoke": 3, "local": 12, "full": 24}  # Optuna trials per arm, on seed 1000


def train(config: dict) -> None:
    """One run: an MLP trained with smoothed cross-entropy, reporting accuracy and ECE before and after every epoch."""
    data, device = load("digits"), trial_device()
    x, y = torch.as_tensor(data.x_train, device=device), torch.as_tensor(data.y_train, device=device)
    evals = {split: (torch.as_tensor(getattr(data, f"x_{split}"), device=device),
                     torch.as_tensor(getattr(data, f"y_{split}"), device=device)) for split in ("val", "test")}  # fmt: skip
    torch.manual_seed(config["seed"])  # same seed, same initial network and batch order in both arms: paired runs
    model = mlp([64, 128, 10]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
    for epoch in range(config["epochs"] + 1):  # epoch 0 only measures the untrained network (for LS-C1)
        for idx in torch.randperm(len(y)).split(config["batch_size"]) if epoch else []:
            loss = F.cross_entropy(model(x[idx]), y[idx], label_smoothing=config["smoothing"])
            opt.zero_grad()
            loss.backward()
            opt.step()
        report = {"step": epoch}
        with torch.no_grad():
            for split, (xs, ys) in evals.items():
                probs = model(xs).softmax(1)
                report[f"{split}/acc"] = float((probs.argmax(1) == ys).float().mean())
                report[f"{split}/ece"] = expected_calibration_error(probs.cpu(), ys.cpu())
        tune.report(report)


def paired(metric: str, step: str = "last"):
    """A measurement for a paired rule: per seed, `metric` of the smoothed run minus the plain run's, at the last
    epoch (or, with `step="first"`, before training)."""

    def measure(t) -> list[Cell]:
        runs = t.curves(metric)  # one row per (run, epoch): value, seed, config/*
        runs = runs[runs["status"] == "ok"]
        runs = runs.groupby("trial_id").tail(1) if step == "last" else runs[runs["step"] == 0]
        arms = runs.pivot_table(index="seed", columns="config/smoothing", values="value")
        diffs = (arms[SMOOTHING] - arms[0.0]).dropna() if len(arms.columns) == 2 else []
        return [Cell(f"epsilon {SMOOTHING:g} vs 0", list(diffs))]

    return measure


CLAIMS = (
    Claim(id="LS1", statement=f"Label smoothing (epsilon {SMOOTHING:g}) lowers the test ECE of the tuned MLP.",
          rule=Superiority("test ECE, smoothed minus plain", delta=0.01, alternative="less"),
          kind="empirical", check=paired("test/ece"), decides_from="local"),
    Claim(id="LS2", statement="Label smoothing costs at most one point of test accuracy.",
          rule=NonInferiority("test accuracy, smoothed minus plain", margin=0.01),
          kind="empirical", check=paired("test/acc"), decides_from="local"),
    Claim(id="LS-C1", statement="Before its first step, the smoothed arm's network already has a lower test ECE.",
          rule=Control(Superiority("test ECE at initialisation, smoothed minus plain", delta=0.01, alternative="less"),
                       must=FAIL),
          kind="negative_control", check=paired("test/ece", step="first")),
)  # fmt: skip


def get_study(budget: str) -> Study:
    return Study(
        name="label_smoothing",
        budget=budget,
        article='Mueller, Kornblith, Hinton, "When does label smoothing help?" https://arxiv.org/abs/1906.02629',
        trainable=train,
        param_space={
            "smoothing": tune.grid_search([0.0, SMOOTHING]),  # the scientific factor: its values are the arms
            "seed": tune.grid_search(list(range(SEEDS[budget]))),
            "epochs": 30,
            "batch_size": 64,
        },
        scientific=("smoothing",),
        claims=CLAIMS,
        tuning=Tuning({"lr": tune.loguniform(3e-4, 1e-2)}, metric="val/acc", mode="max", trials_per_arm=TUNING_TRIALS[budget]),
        cost={"smoke": "~45 s on 2 CPU cores", "local": "~3 min on 2 CPU cores"}.get(budget, "~6 min on 2 CPU cores"),
    )
