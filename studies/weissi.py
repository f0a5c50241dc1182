"""L2 is not as good as you think: weight-scale shift and WEISSI (spec: shared/articles/06-weissi.md)

Article: Su Jianlin, L2正则没有想象那么好？可能是"权重尺度偏移"惹的祸 https://kexue.fm/archives/7681 (2020-08-14)
Paper:   Liu, Cui, Chan, "Improve Generalization and Robustness of Neural Networks via Weight Scale Shifting
         Invariant Regularizations", arXiv:2008.02965.
Claims:  W1 a prod-gamma = 1 shift keeps a ReLU net's function and WEISSI but not L2 (exact); W2 re-balancing
         alone lowers L2 to its AM-GM bound (exact); W3 gradient flow conserves the layer-norm gaps, also with
         WEISSI, while L2 decays them as exp(-4 lambda t) (exact); W4 SGD/Adam weight_decay = L2 in the loss,
         AdamW differs (exact); W5 tuned WEISSI beats tuned L2/WD on a homogeneous net; W6 and is more robust
         (PGD); W7 AdamW beats Adam + L2. Controls W-C1 (naive bias rule must break W1), W-P1 (switch-off
         identity); diagnostic W-D1 (BN ResNet-18, full only).
Run:     python -m studies run weissi --budget smoke|local|full
Cost:    smoke ~40 s on 2 CPU cores (22 digits runs, no tuning); local ~20 min on 2 CPU cores (80 Optuna tuning
         runs + 50 confirmation runs, MNIST-5k MLP); full ~300 GPU-hours (spec estimate).

Arms are (optimizer, reg) cells; lr and the regulariser's strengths are nuisance parameters tuned by Optuna TPE
with the same number of trials in every arm (the `none` arm tunes lr only), then confirmed on 5 seeds.
Small MLP runs (the smoke grid) are fused per optimiser (`FUSION`); on CPU the local MNIST-5k MLP is above
`core.train.fused.CPU_MAX_PARAMS` and runs alone, as do tuning trials (Optuna proposes them one by one);
`--no-fuse` runs everything alone.
No early stopping in confirmation runs: the WEISSI log term can collapse a layer late in training.
"""

import copy
import math

import numpy as np
import torch
from ray import tune

from analysis.claims.weissi import ARTICLE, CLAIMS, FIGURES
from core.data.classification import load
from core.models import kaiming_init_, mlp, resnet18_cifar, vgg11_cifar
from core.regularizers.weissi import balancing_gammas, l2, shift_scales_, weight_layers, weissi, weissi_naive
from core.testing import relu2_grads
from core.train.classifier import FitConfig
from core.train.classifier_runs import ClassifierRuns
from studies import Fusion, Study, Tuning, expand, trial_device

REGS = ("none", "l2_coupled", "wd_decoupled", "weissi1", "weissi12")
LR_RANGE = {"sgd": (1e-3, 0.3), "adam": (1e-4, 3e-3)}
# wd_decoupled tunes its per-step decay rho = lr * lambda_WD, not lambda_WD (spec 06, amendment A1): with Adam's lr
# near 1e-3 the first range, lambda_WD in [1e-6, 1e-2], decayed at most ~2% over a local run.
LAM_RANGE = {"lam": (1e-6, 1e-2), "rho": (1e-7, 1e-3), "lam1": (1e-4, 1e-1), "lam2": (1e-7, 1e-3)}
REG_KEYS = {"none": (), "l2_coupled": ("lam",), "wd_decoupled": ("rho",), "weissi1": ("lam1",), "weissi12": ("lam1", "lam2")}
SMOKE_ARMS = [  # the spec's six smoke arms x 2 strengths (none has none), fixed lr per optimiser
    {"optimizer": "adam", "reg": "none"},
    *({"optimizer": "sgd", "reg": "l2_coupled", "lam": v} for v in (1e-4, 1e-3)),
    *({"optimizer": "adam", "reg": "l2_coupled", "lam": v} for v in (1e-4, 1e-3)),
    *({"optimizer": "adam", "reg": "wd_decoupled", "rho": v} for v in (1e-6, 1e-5)),  # lambda_WD 1e-3, 1e-2 at lr 1e-3
    *({"optimizer": "adam", "reg": "weissi1", "lam1": v} for v in (1e-3, 1e-2)),
    *({"optimizer": "adam", "reg": "weissi12", "lam1": v, "lam2": v / 100} for v in (1e-3, 1e-2)),
]
SMOKE_LR = {"sgd": 0.05, "adam": 1e-3}
FIXED = {
    "smoke": {"dataset": "digits", "model": "mlp", "widths": [256, 256], "epochs": 60, "batch_size": 128},
    "local": {"dataset": "mnist_5k", "model": "mlp", "widths": [256, 256], "epochs": 80, "batch_size": 128},
    "full": {"epochs": 200, "batch_size": 128, "schedule": "cosine"},
}
METRICS = {  # what every run measures; eps in input units (pixels in [0, 1] for MNIST-5k, standardised otherwise)
    "smoke": {"attack_eps": (0.1,), "pgd_eps": (0.1,)},
    "local": {"attack_eps": (0.05, 0.1), "pgd_eps": (0.1,)},
    "full": {"attack_eps": (4 / 255 / 0.25,), "pgd_eps": (1 / 255 / 0.25, 2 / 255 / 0.25), "pgd_steps": 20},  # ~1, 2 /255 px
}
FULL_CELLS = [
    {"model": "vgg11", "dataset": "cifar10", "weissi_layers": "all"},
    {"model": "vgg11", "dataset": "cifar100", "weissi_layers": "all"},
    {"model": "resnet18", "dataset": "cifar10", "weissi_layers": "unnormalised"},  # W-D1 diagnostic
]
SEEDS = {"smoke": [0, 1], "local": [0, 1, 2, 3, 4], "full": [0, 1, 2, 3, 4]}
TRIALS_PER_ARM = {"local": 8, "full": 40}
RESOURCES = {"smoke": {"cpu": 1}, "local": {"cpu": 1}, "full": {"cpu": 4, "gpu": 0.25}}
COST = {
    "smoke": "~40 s on 2 CPU cores",
    "local": "~20 min on 2 CPU cores",
    "full": "~300 GPU-hours (spec estimate; 40 tuning trials per arm, 5 seeds x 200 epochs)",
}


def fit_config(config: dict) -> FitConfig:
    """The classifier settings of an arm: the optimiser, then the arm's regulariser with its tuned strengths."""
    reg = config["reg"]
    kw = {k: config[k] for k in ("epochs", "batch_size", "lr", "schedule", "seed", "weissi_layers") if k in config}
    kw |= {k: tuple(v) if isinstance(v, list) else v for k, v in METRICS[config["budget"]].items()}
    kw |= {"optimizer": config["optimizer"], "momentum": 0.9 if config["optimizer"] == "sgd" else 0.0}
    if reg == "l2_coupled":
        kw["weight_decay"] = config["lam"]
    elif reg == "wd_decoupled":  # PyTorch's p <- p (1 - lr lambda_WD) with lambda_WD = rho / lr: rho a step
        kw["decoupled_weight_decay"] = config["rho"] / config["lr"]
    elif reg in ("weissi1", "weissi12"):
        kw["weissi_lam1"] = config["lam1"]
        kw["weissi_lam2"] = config.get("lam2", 0.0) if reg == "weissi12" else 0.0
    elif reg != "none":
        raise ValueError(f"unknown reg {reg!r}; expected one of {REGS}")
    return FitConfig(**kw, curvature_examples=0, log_weight_norms=True)


def model_of(config: dict, data) -> torch.nn.Module:
    """The run's freshly initialised network, seeded by its seed."""
    torch.manual_seed(config["seed"])
    if config["model"] == "mlp":
        return kaiming_init_(mlp([data.x_train[0].size, *config["widths"], data.num_classes]))
    if config["model"] == "vgg11":
        return kaiming_init_(vgg11_cifar(data.num_classes, width=config.get("width", 64)))
    return resnet18_cifar(data.num_classes, width=config.get("width", 64))


def fusable(config: dict) -> bool:
    """MLP runs (on CPU only those small enough to gain)."""
    return config["model"] == "mlp"


RUNS = ClassifierRuns(model_of, fit_config, fusable)


def train(config: dict) -> None:
    """Ray Tune trainable: one classifier run, reporting every epoch with `ray.tune.report`."""
    RUNS.train(config, tune.report, trial_device())


def train_fused(configs: list[dict], report) -> None:
    """A bundle of MLP runs trained as one program (`core.train.fused`); each member reports what `train` would."""
    RUNS.train_fused(configs, report, trial_device())


FUSION = Fusion(
    train_fused,
    keys=("seed", "reg", "lam", "rho", "lam1", "lam2", "lr"),  # the optimiser, the shapes and the epochs stay shared
    member_bytes=RUNS.member_bytes,
    can_fuse=RUNS.can_fuse,
)


def nuisance(config: dict) -> dict:
    """The arm's Optuna space: lr in its optimiser's range, plus its own regulariser's strengths."""
    space = {"lr": tune.loguniform(*LR_RANGE[config["optimizer"]])}
    return space | {k: tune.loguniform(*LAM_RANGE[k]) for k in REG_KEYS[config["reg"]]}


def _biased_relu_mlp(sizes, seed) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    net = mlp(list(sizes)).double()
    with torch.no_grad():
        for m in weight_layers(net):
            m.bias.normal_(0, 0.5)
    return net


def _l2w(net) -> float:
    return float(sum(m.weight.detach().pow(2).sum() for m in weight_layers(net)))


@torch.no_grad()
def _shift_checks(out: dict, x: torch.Tensor, rng) -> None:
    """W1 and W-C1 (20 random shifts), W2 (balancing) and the W2 orbit."""
    # W1 and W-C1: 20 random shifts with prod gamma = 1, exact and naive bias rules.
    for _ in range(20):
        net = _biased_relu_mlp((64, 128, 128, 10), seed=int(rng.integers(1 << 30)))
        logs = rng.normal(0, 0.5, 3)
        gammas = np.exp(logs - logs.mean()).tolist()
        base = net(x).detach()
        for rule, cumulative in (("w1", True), ("wc1", False)):
            shifted = copy.deepcopy(net)
            shift_scales_(weight_layers(shifted), gammas, cumulative_bias=cumulative)
            out.setdefault(f"{rule}/out_rel_diff", []).append(float((shifted(x) - base).norm() / base.norm()))
            if rule == "w1":
                out.setdefault("w1/weissi_abs_diff", []).append(abs(float(weissi(shifted, 1.0, 0.1) - weissi(net, 1.0, 0.1))))
                out.setdefault("w1/l2_abs_diff", []).append(abs(float(l2(shifted, 1.0) - l2(net, 1.0))))
    # W2: balancing to the AM-GM bound; the orbit of a 2-layer net for the figure.
    net = _biased_relu_mlp((64, 128, 128, 10), seed=7)
    norms = [float(m.weight.norm()) for m in weight_layers(net)]
    base, before = net(x).detach(), _l2w(net)
    shift_scales_(weight_layers(net), balancing_gammas(weight_layers(net)))
    bound = 3 * math.prod(norms) ** (2 / 3)
    out["w2/l2_before"], out["w2/l2_after"], out["w2/bound"] = [before], [_l2w(net)], [bound]
    out["w2/out_rel_diff"] = [float((net(x) - base).norm() / base.norm())]
    small = _biased_relu_mlp((64, 32, 10), seed=8)
    out["w2/orbit_log_gamma"] = np.linspace(-2, 2, 41).tolist()
    for lg in out["w2/orbit_log_gamma"]:
        moved = copy.deepcopy(small)
        shift_scales_(weight_layers(moved), [math.exp(lg), math.exp(-lg)])
        out.setdefault("w2/orbit_l2", []).append(_l2w(moved))
        out.setdefault("w2/orbit_weissi", []).append(float(weissi(moved, 1.0)))


def exact_checks() -> dict[str, list[float]]:
    """W1-W4 and the controls W-C1, W-P1, in float64, without training."""
    out: dict[str, list[float]] = {}
    x = torch.randn(32, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    _shift_checks(out, x, np.random.default_rng(0))
    # W3: GD with hand-written gradients on a 2-layer ReLU net; D sampled every 500 steps.
    gen = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(20, 3, generator=gen, dtype=torch.float64), torch.randn(20, 1, generator=gen, dtype=torch.float64)
    lam, lr, steps = 0.05, 1e-3, 20_000
    out["w3/t"] = [lr * s for s in range(0, steps + 1, 500)]
    out["w3/lam"] = [lam]
    for reg in ("none", "weissi", "l2"):
        g2 = torch.Generator().manual_seed(1)
        params = [2.5 * torch.randn(s, generator=g2, dtype=torch.float64) for s in ((8, 3), (8,), (1, 8), (1,))]
        d = []
        for s in range(steps + 1):
            if s % 500 == 0:
                d.append(float(params[0].pow(2).sum() + params[1].pow(2).sum() - params[2].pow(2).sum()))
            if s == steps:
                break
            _, grads = relu2_grads(params, xs, ys)
            if reg == "l2":  # penalty lam * sum ||theta||^2 over every tensor: gradient 2 lam theta
                grads = [g + 2 * lam * p for g, p in zip(grads, params, strict=True)]
            elif reg == "weissi":  # lam * (log ||W1|| + log ||W2||): gradient lam W / ||W||^2, biases untouched
                grads = [
                    g + (lam * p / p.pow(2).sum() if i in (0, 2) else 0)
                    for i, (g, p) in enumerate(zip(grads, params, strict=True))
                ]
            params = [p - lr * g for p, g in zip(params, grads, strict=True)]
        out[f"w3/{reg}/D"] = d
    # W4: optimiser semantics, 50 steps on a fixed batch.
    xb = torch.randn(16, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    yb = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(2))

    def trajectory(make_opt, lam_in_loss=0.0, decoupled=None):
        net = _biased_relu_mlp((7, 11, 5, 3), seed=3)
        opt, path = make_opt(net.parameters()), []
        for _ in range(50):
            opt.zero_grad()
            (torch.nn.functional.cross_entropy(net(xb), yb) + l2(net, lam_in_loss)).backward()
            if decoupled:
                with torch.no_grad():
                    for p in net.parameters():
                        p.mul_(1 - decoupled[0] * decoupled[1])
            opt.step()
            path.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
        return path

    def gap(a, b):
        return [float((u - v).abs().max()) for u, v in zip(a, b, strict=True)]

    for mom in (0.0, 0.9):
        out[f"w4/sgd_m{mom:g}_wd_vs_l2"] = gap(
            trajectory(lambda p, m=mom: torch.optim.SGD(p, lr=0.05, momentum=m, weight_decay=0.01)),
            trajectory(lambda p, m=mom: torch.optim.SGD(p, lr=0.05, momentum=m), 0.01),
        )
    adam_l2 = trajectory(lambda p: torch.optim.Adam(p, lr=1e-2), 0.1)
    adamw = trajectory(lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1))
    out["w4/adam_wd_vs_l2"] = gap(trajectory(lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.1)), adam_l2)
    out["w4/adamw_vs_adam_l2"] = gap(adamw, adam_l2)
    out["w4/adamw_vs_by_hand"] = gap(adamw, trajectory(lambda p: torch.optim.Adam(p, lr=1e-2), 0.0, decoupled=(1e-2, 0.1)))
    # W-P1: switch-off identity and the Python-loop reference.
    net = _biased_relu_mlp((64, 128, 128, 10), seed=9)
    with torch.no_grad():
        out["wp1/zero_value"] = [abs(float(weissi(net, 0.0, 0.0)))]
        fast, slow = float(weissi(net, 0.37, 0.011)), weissi_naive(net, 0.37, 0.011)
    out["wp1/loop_rel_err"] = [abs(fast - slow) / abs(slow)]
    return out


def get_study(budget: str) -> Study:
    seeds = SEEDS[budget]
    if budget == "smoke":
        cells = [{"lam": 0.0, "lam1": 0.0, "lam2": 0.0, **arm, "lr": SMOKE_LR[arm["optimizer"]]} for arm in SMOKE_ARMS]
        space = {"arm": tune.grid_search(cells), "seed": tune.grid_search(seeds), **FIXED[budget], "budget": budget}
        scientific, tuning = ("optimizer", "reg", "lam", "lam1", "lam2"), None
    else:
        arms = [{"optimizer": o, "reg": r} for o in ("sgd", "adam") for r in REGS]
        space = {"arm": tune.grid_search(arms), "seed": tune.grid_search(seeds), **FIXED[budget], "budget": budget}
        scientific = ("optimizer", "reg")
        if budget == "full":
            space["cell"] = tune.grid_search(FULL_CELLS)
            scientific += ("model", "dataset")
        tuning = Tuning(nuisance, metric="val/acc", mode="max", trials_per_arm=TRIALS_PER_ARM[budget], seed=100)
    return Study(
        name="weissi",
        budget=budget,
        article=ARTICLE,
        trainable=train,
        param_space=space,
        scientific=scientific,
        claims=CLAIMS,
        resources=RESOURCES[budget],
        max_concurrent=None,
        checks=exact_checks,
        figures=FIGURES,
        cost=COST[budget],
        tuning=tuning,
        sources=lambda: [load(d).source for d in sorted({c["dataset"] for c in expand(space)})],
        fusion=FUSION,
    )
