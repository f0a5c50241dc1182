"""Flooding: do we really need zero training loss? (spec: shared/articles/05-flooding.md)

Article: Su Jianlin, 我们真的需要把训练集的损失降低到零吗？ https://kexue.fm/archives/7643 (July 2020, unconfirmed)
Paper:   Ishida et al., "Do We Need Zero Training Loss After Achieving Zero Training Error?", ICML 2020.
Claims:  F1 flooding (b tuned on validation) helps test accuracy; F2 test-loss double descent; F3 the training
         loss hovers at b with about half ascent steps; F4 Su's two-step identity (exact); F5 flooded models are
         flatter; F6 the best b grows with label noise. Controls F-P1, F-C1, F-P2. Diagnostic F-D1 (amendment A1):
         scale-aware flatness beside F5.
Run:     python -m studies run flooding --budget smoke|local|full
Cost:    smoke ~40 s on 2 CPU cores (12 digits runs); local ~25 min on 2 CPU cores (120 MNIST-5k runs); full 1,680
         ResNet-18 runs (the spec's 840 runs and 400-600 GPU-hours, doubled by augmentation on/off).

F-D1 measures the model after each reported epoch (`flatness`): lambda_max / L_train and the adaptive eps-sharpness
at the end of every run, and for b = 0 also at the first epoch whose training loss falls to each flood level of its
cell (b* is chosen later, by the analysis).

Small MLP runs are fused (`FUSION`): runs that differ only in label noise, flood level and seed train as bundles
of stacked models in one process (`core.train.fused`), F-D1 measured on each member's copy; `--no-fuse` runs each
alone. On CPU only models up to `CPU_MAX_PARAMS` fuse: the smoke digits MLP does, the local MNIST-5k MLP (269k
parameters, measured no faster fused) runs alone; ResNets never fuse.

Early stopping is a post-hoc factor read from the per-epoch logs; no ASHA or pruning (the second descent of
the test loss comes late and a scheduler would bias the study against b > 0).
"""

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from ray import tune

from analysis.claims.flooding import ARTICLE, CLAIMS, FIGURES
from analysis.flooding import EQ_LAMBDA_MAX, EQ_LEVEL, EQ_SHARPNESS, EQ_SUBSET_LOSS, SHARPNESS, SUBSET_LOSS
from core.curvature import top_hessian_eigenvalue
from core.data.classification import Splits, load
from core.data.label_noise import symmetric_label_noise
from core.losses.flooding import flood, two_flooded_steps, two_step_prediction
from core.models import mlp, resnet18_cifar
from core.sharpness import model_sharpness
from core.testing import product_loss, quadratic, random_spd, tanh_mlp_221, toy_regression
from core.train.classifier import fit_classifier
from core.train.classifier_runs import ClassifierRuns, fit_config_of
from studies import Fusion, Study, expand, trial_device

FLOOD_LEVELS = {  # label noise -> flood levels b (nats of mean cross-entropy)
    "smoke": {0.2: [0.0, 0.05, 0.15, 0.3, 0.6, 0.9]},
    "local": {
        0.0: [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.6],
        0.2: [0.0, 0.05, 0.1, 0.3, 0.6, 1.0, 1.5, 2.0],
        0.4: [0.0, 0.05, 0.1, 0.3, 0.6, 1.0, 1.5, 2.0],
    },
    "full": {eta: [0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8, 1.2, 1.6] for eta in (0.0, 0.2, 0.4)},
}
SEEDS = {"smoke": [0, 1], "local": [0, 1, 2, 3, 4], "full": [0, 1, 2, 3, 4]}
FIXED = {
    "smoke": {
        "dataset": "digits",
        "model": "mlp",
        "widths": [128, 128],
        "optimizer": "adam",
        "lr": 1e-3,
        "epochs": 120,
        "batch_size": 128,
        "weight_decay": 0.0,
        "augment": False,
    },
    "local": {
        "dataset": "mnist_5k",
        "model": "mlp",
        "widths": [256, 256],
        "optimizer": "adam",
        "lr": 1e-3,
        "epochs": 150,
        "batch_size": 128,
        "weight_decay": 0.0,
        "augment": False,
    },
    "full": {
        "model": "resnet18",
        "optimizer": "sgd",
        "momentum": 0.9,
        "lr": 0.1,
        "schedule": "cosine",
        "epochs": 200,
        "batch_size": 128,
    },
}
SHARPNESS_EPS, SHARPNESS_STEPS = 0.05, 10  # amendment A1: the box |delta_i| <= eps (|theta_i| + 1e-3), 10 ascent steps
FULL_CELLS = {"dataset": ["cifar10", "cifar100"], "weight_decay": [0.0, 5e-4], "augment": [False, True]}
RESOURCES = {"smoke": {"cpu": 1}, "local": {"cpu": 1}, "full": {"cpu": 4, "gpu": 0.25}}
COST = {
    "smoke": "~40 s on 2 CPU cores",
    "local": "~25 min on 2 CPU cores",
    "full": "1,680 ResNet-18 runs, ~800-1,200 GPU-hours (4 trials per GPU)",
}


def model_of(config: dict, data) -> torch.nn.Module:
    """The run's freshly initialised classifier, seeded by its seed."""
    torch.manual_seed(config["seed"])
    if config["model"] == "mlp":
        return mlp([data.x_train[0].size, *config["widths"], data.num_classes])
    return resnet18_cifar(data.num_classes, width=config.get("width", 64))


def fusable(config: dict) -> bool:
    """MLP runs without augmentation (on CPU only those small enough to gain)."""
    return config["model"] == "mlp" and not config.get("augment")


RUNS = ClassifierRuns(model_of, fusable=fusable)


def flatness(data: Splits, config: dict, device: str) -> Callable[[dict, Callable[[], torch.nn.Module]], None]:
    """F-D1's measurements of one run, as `add(metrics, model)`: called after each epoch with the epoch's metrics (to
    add to) and a function returning the run's model as trained so far (the live model of `fit_classifier`, or a
    fused member's copy).

    On the first `curvature_examples` training points and the noisy labels the run trains on (the same points and
    labels as `train/lambda_max`): at the last epoch the loss there (`SUBSET_LOSS`) and the adaptive eps-sharpness
    (`SHARPNESS`); at the first epoch whose `train/loss` is at most a level of `equal_loss_levels`, for every level
    first reached then (one series), the level, lambda_max (20 power iterations, as at the end), the loss and the
    sharpness (`EQ_*`).

    Args:
        data (Splits):
            The run's data.
        config (dict):
            The run's config: `sharpness_eps`, `equal_loss_levels` (empty but for b = 0) and the `FitConfig` keys.
        device (str):
            The run's device.
    """
    cfg = fit_config_of(config)
    rng = np.random.default_rng([cfg.seed, 1])  # fit_classifier's noise draw: its first draw is the training labels
    y_noisy = symmetric_label_noise(data.y_train, cfg.label_noise, data.num_classes, rng)
    n = cfg.curvature_examples
    x, y = torch.as_tensor(data.x_train[:n], device=device), torch.as_tensor(y_noisy[:n], device=device)
    pending = sorted(config.get("equal_loss_levels", ()))

    def add(metrics: dict, model_now: Callable[[], torch.nn.Module]) -> None:
        loss = metrics.get("train/loss", math.nan)
        reached = [b for b in pending if loss <= b]  # nan reaches nothing
        last = metrics.get("step") == cfg.epochs and math.isfinite(loss)
        if not (reached or last):
            return
        model = model_now()
        if reached:
            model.eval()
            params = [p for p in model.parameters() if p.requires_grad]
            lam = top_hessian_eigenvalue(lambda: F.cross_entropy(model(x), y), params, iters=20, seed=cfg.seed)
            model.train()
            at, rise = model_sharpness(model, x, y, eps=config["sharpness_eps"], steps=SHARPNESS_STEPS)
            k = len(reached)
            metrics |= {EQ_LEVEL: reached, EQ_LAMBDA_MAX: [lam] * k, EQ_SUBSET_LOSS: [at] * k, EQ_SHARPNESS: [rise] * k}
            pending[:] = [b for b in pending if b not in reached]
        if last:
            metrics[SUBSET_LOSS], metrics[SHARPNESS] = model_sharpness(
                model, x, y, eps=config["sharpness_eps"], steps=SHARPNESS_STEPS
            )

    return add


def train(config: dict) -> None:
    """Ray Tune trainable: one classifier run, reporting every epoch with `ray.tune.report` (with F-D1's measurements
    when `sharpness_eps` is set)."""
    if not config.get("sharpness_eps"):
        RUNS.train(config, tune.report, trial_device())
        return
    device = trial_device()
    data = load(config["dataset"])
    model = model_of(config, data)
    add = flatness(data, config, device)

    def report(metrics: dict) -> None:
        add(metrics, lambda: model)
        tune.report(metrics)

    fit_classifier(model, data, fit_config_of(config), report, device)


def train_fused(configs: list[dict], report) -> None:
    """A bundle of MLP runs trained as one program (`core.train.fused`); each member reports what `train` would,
    F-D1's measurements included (on the member's copy)."""
    device = trial_device()
    data = load(configs[0]["dataset"])
    adds = [flatness(data, c, device) if c.get("sharpness_eps") else None for c in configs]

    def probe(k: int, metrics: dict, model_now) -> None:
        if adds[k] is not None:
            adds[k](metrics, model_now)

    RUNS.train_fused(configs, report, device, probe=probe)


FUSION = Fusion(
    train_fused,
    keys=("label_noise", "flood_level", "equal_loss_levels", "seed"),
    member_bytes=RUNS.member_bytes,
    can_fuse=RUNS.can_fuse,
)


def exact_checks() -> dict[str, list[float]]:
    """F4 (E1, E2), F-C1, F-P1 and F-P2 in float64, without training."""
    out: dict[str, list[float]] = {"eps": [0.04, 0.02, 0.01, 0.005]}
    # E1: on a quadratic the two-step map is exactly (I + eps A)(I - eps A) theta = theta - eps^2 A^2 theta.
    e1 = []
    for seed in range(5):
        a = random_spd(6, seed)
        theta = torch.randn(6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        want = theta - 0.05**2 * a @ a @ theta
        e1.append(
            max(
                float((two_flooded_steps(theta, quadratic(a), 0.05) - want).abs().max()),
                float((two_step_prediction(theta, quadratic(a), 0.05) - want).abs().max()),
            )
        )
    out["e1/abs_err"] = e1
    # E2: elsewhere the error of the prediction is O(eps^3); F-C1 uses different batches and keeps an O(eps) term.
    x, y = toy_regression(16, seed=0)
    theta_ab = torch.tensor([0.5, 1.5], dtype=torch.float64)
    theta_mlp = 0.8 * torch.randn(9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    full, b1, b2 = tanh_mlp_221(x, y), tanh_mlp_221(x[:8], y[:8]), tanh_mlp_221(x[8:], y[8:])
    for name, theta, descent, ascent, predict in [
        ("e2_product", theta_ab, product_loss, None, product_loss),
        ("e2_mlp", theta_mlp, full, None, full),
        ("fc1_mlp", theta_mlp, b1, b2, full),
    ]:
        out[f"{name}/err"] = [
            float((two_flooded_steps(theta, descent, eps, ascent) - two_step_prediction(theta, predict, eps)).norm())
            for eps in out["eps"]
        ]
    # F-P1: b = 0 is the identity (value and gradient); the gradient sign is +1 above b and -1 below.
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 10, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 10, (32,), generator=gen)
    base = torch.nn.functional.cross_entropy(logits, labels)
    g = torch.autograd.grad(base, logits, retain_graph=True)[0]
    g0 = torch.autograd.grad(flood(base, 0.0), logits, retain_graph=True)[0]
    out["fp1/value_err"] = [float((flood(base, 0.0) - base).abs().detach())]
    out["fp1/grad_err"] = [float((g0 - g).abs().max())]
    for name, level in [("fp1/sign_above_b", 0.5 * base.item()), ("fp1/sign_below_b", 2.0 * base.item())]:
        gb = torch.autograd.grad(flood(base, level), logits, retain_graph=True)[0]
        out[name] = [float((gb * g).sum() / (g * g).sum())]  # +1 or -1 exactly
    # F-P2: the realised flip fraction equals eta within 1/n, and every flipped label changes class.
    clean = torch.randint(0, 10, (1000,), generator=gen).numpy()
    etas = [0.0, 0.1, 0.2, 0.4, 0.8]
    noisy = [symmetric_label_noise(clean, eta, 10, np.random.default_rng(i)) for i, eta in enumerate(etas)]
    out["fp2/eta"] = etas
    out["fp2/realised"] = [float((n != clean).mean()) for n in noisy]
    out["fp2/kept_class"] = [float(int(len(clean) * eta) - (n != clean).sum()) for eta, n in zip(etas, noisy, strict=True)]
    out["fp2/n"] = [float(len(clean))]
    return out


def get_study(budget: str) -> Study:
    cells = [
        {"label_noise": eta, "flood_level": b, "equal_loss_levels": [x for x in levels if x > 0] if b == 0 else []}
        for eta, levels in FLOOD_LEVELS[budget].items()
        for b in levels
    ]  # b = 0 measures F-D1 at the first epoch reaching each level of its cell
    space = {"cell": tune.grid_search(cells), "seed": tune.grid_search(SEEDS[budget]), **FIXED[budget]}
    space["sharpness_eps"] = SHARPNESS_EPS
    if budget == "full":
        space |= {k: tune.grid_search(v) for k, v in FULL_CELLS.items()}
    return Study(
        name="flooding",
        budget=budget,
        article=ARTICLE,
        trainable=train,
        param_space=space,
        scientific=("label_noise", "flood_level", *(FULL_CELLS if budget == "full" else ())),
        claims=CLAIMS,
        resources=RESOURCES[budget],
        max_concurrent=None,
        checks=exact_checks,
        figures=FIGURES,
        cost=COST[budget],
        sources=lambda: [load(d).source for d in sorted({c["dataset"] for c in expand(space)})],
        fusion=FUSION,
    )
