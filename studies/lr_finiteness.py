"""Why the learning rate should not be too small: implicit gradient regularisation (spec: 08-finite-learning-rate.md)

Article: Su Jianlin, 从动力学角度看优化算法（五）：为什么学习率不宜过小？ https://kexue.fm/archives/7787 (2020-10-10)
Paper:   Barrett & Dherin, "Implicit Gradient Regularization", ICLR 2021 (arXiv:2009.11162).
Claims:  I1 on a quadratic one GD step matches the modified flow to O(h^3), the plain flow to O(h^2) (exact);
         I2 the same orders on (1 - ab)^2 / 2 (exact); I3 on the two-parameter model a GD step shrinks
         D = a^2 - b^2 by exactly (1 - h^2 r^2), so larger h ends more balanced (exact); I4 larger h gives a
         smaller R_IG = ||grad L||^2 at matched loss and higher test accuracy; I5 explicit regularisation with
         mu = (h_big - h)/4 at small h reproduces the large-h run; I6 the best stable h beats the smallest.
         Controls I-P1 (EGR with mu = 0 is plain GD), I-P2 (penalty gradient = 2 mu H g), I-P3 (R_IG by
         accumulated batches = one full batch).
Run:     python -m studies run lr_finiteness --budget smoke|local|full
Cost:    smoke ~50 s on 2 CPU cores (28 digits runs); local ~25 min on 2 CPU cores (80 MNIST-5k runs, full-batch
         GD on 2,000 examples); full ~1,000 GPU-hours (the spec's planning estimate).

Plain GD/SGD without momentum (momentum changes the implicit coefficient). Runs stop at a matched training
loss; that stopping rule is part of the protocol. No ASHA, median pruning or early stopping: h changes the
speed of convergence, so pruning would favour large h.
"""

import numpy as np
import torch
from ray import tune
from torch.func import functional_call

from analysis.claims.lr_finiteness import ARTICLE, CLAIMS, FIGURES
from core.data.classification import load, with_train_size
from core.flows import flow, gd_step, gradient, one_step_errors
from core.models import mlp, resnet18_cifar, vgg11_cifar
from core.regularizers import egr_grads, full_batch_grad, matching_mu, penalty_grad_fd
from core.testing import product_loss
from core.train.gradient_descent import GDConfig, fit_gd
from studies import Study, expand, trial_device

STEP_SIZES = {
    "smoke": [0.05, 0.1, 0.2, 0.4, 0.8],
    "local": [0.05, 0.1, 0.2, 0.4, 0.8, 1.6],
    "full": [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8],
}
EGR = {  # small h -> mu values on ||grad L||^2 (sum over parameters); mu = (h_big - h) / 4
    "smoke": {0.05: [0.0875, 0.35]},  # h_big = 0.4, 1.45
    "local": {0.1: [0.075, 0.175]},  # h_big = 0.4, 0.8
    "full": {0.01: [matching_mu(0.01, hb) for hb in (0.02, 0.05, 0.1, 0.2, 0.4)]},  # h + 4 mu lands on the h grid
}
ACTIVATIONS = {"smoke": ["softplus", "relu"], "local": ["softplus", "relu"], "full": ["relu", "gelu"]}
SEEDS = {"smoke": [0, 1], "local": [0, 1, 2, 3, 4], "full": [0, 1, 2, 3, 4]}
FIXED = {
    "smoke": {"dataset": "digits", "n_train": 0, "model": "mlp", "widths": [128], "batch_size": 0, "max_steps": 3000},
    "local": {"dataset": "mnist_5k", "n_train": 2000, "model": "mlp", "widths": [128], "batch_size": 0, "max_steps": 8000},
    "full": {"n_train": 0, "eval_every": 390, "chunk": 1000, "curvature_examples": 5000},
}
# Full budget: SGD (batch 128) on CIFAR with both protocols, plus full-batch GD on a 10k subset (no SGD noise).
FULL_MODELS = ["resnet18", "vgg11"]
FULL_RUNS = [
    {"dataset": "cifar10", "protocol": "P1", "batch_size": 128, "target_loss": 0.0, "max_steps": 200 * 352},
    {"dataset": "cifar100", "protocol": "P1", "batch_size": 128, "target_loss": 0.0, "max_steps": 200 * 352},
    {"dataset": "cifar10", "protocol": "P2", "batch_size": 128, "target_loss": 1e-3, "max_steps": 400 * 352},
    {"dataset": "cifar10", "protocol": "P2", "batch_size": 0, "n_train": 10_000, "target_loss": 1e-3, "max_steps": 20_000},
]
RESOURCES = {"smoke": {"cpu": 1}, "local": {"cpu": 1}, "full": {"cpu": 4, "gpu": 0.5}}
COST = {
    "smoke": "~50 s on 2 CPU cores",
    "local": "~25 min on 2 CPU cores",
    "full": "~1,000 GPU-hours (spec estimate; P2 at small h dominates)",
}


def build_model(config: dict, in_features: int, num_classes: int) -> torch.nn.Module:
    """The classifier named by a config (seed torch before calling)."""
    if config["model"] == "mlp":
        return mlp([in_features, *config["widths"], num_classes], config["activation"])
    if config["model"] == "resnet18":
        return resnet18_cifar(num_classes, width=config.get("width", 64), activation=config["activation"])
    if config["model"] == "vgg11":
        return vgg11_cifar(num_classes, width=config.get("width", 64), activation=config["activation"])
    raise ValueError(f"unknown model {config['model']!r}; expected mlp, resnet18 or vgg11")


def train(config: dict) -> None:
    """Ray Tune trainable: one GD/SGD run to the matched loss, reporting with `ray.tune.report`."""
    data = load(config["dataset"])
    if config.get("n_train"):
        data = with_train_size(data, config["n_train"])
    torch.manual_seed(config["seed"])
    model = build_model(config, data.x_train[0].size, data.num_classes)
    cfg = GDConfig(**{k: config[k] for k in GDConfig.__dataclass_fields__ if k in config})
    fit_gd(model, data, cfg, tune.report, device=trial_device())


def _tiny_classifier(seed: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = mlp([5, 7, 3], "softplus").double()
    x = torch.randn(23, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (23,), generator=gen)
    return net, x, y


def exact_checks() -> dict[str, list[float]]:
    """I1, I2, I3 and the controls I-P1..3, in float64, without training."""
    out: dict[str, list[float]] = {}
    # I1: quadratic, closed forms by matrix exponentials; solve_ivp cross-checks the integrator on the way.
    a = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    theta0 = torch.ones(3, dtype=torch.float64)
    hs = [0.1, 0.05, 0.025, 0.0125]
    out["i1/h"] = hs
    for h in hs:
        step = theta0 - h * a @ theta0
        plain = torch.linalg.matrix_exp(-h * a) @ theta0 - step
        modified = torch.linalg.matrix_exp(-h * (a + 0.5 * h * a @ a)) @ theta0 - step
        out.setdefault("i1/flow_err", []).append(float(plain.norm()))
        out.setdefault("i1/mod_err", []).append(float(modified.norm()))
        out.setdefault("i1/flow_ratio", []).append(float(plain.norm() / (h**2 / 2 * (a @ a @ theta0).norm())))
        out.setdefault("i1/mod_ratio", []).append(float(modified.norm() / (h**3 / 3 * (a @ a @ a @ theta0).norm())))
        loss = lambda th: 0.5 * th @ a @ th  # noqa: E731
        ivp = flow(loss, theta0, h, h=h)
        out.setdefault("i1/ivp_vs_expm", []).append(float((ivp - (modified + step)).norm()))
    # I2: the product model, flows integrated numerically.
    out["i2/h"] = [0.0025, 0.005, 0.01, 0.02]
    out["i2/flow_err"], out["i2/mod_err"] = one_step_errors(
        product_loss, torch.tensor([1.4, 1.75], dtype=torch.float64), out["i2/h"]
    )
    # I3 (a): the D-ratio identity, GD step by autograd against the closed form (1 - h^2 r^2).
    gen = np.random.default_rng(0)
    worst = 0.0
    for _ in range(200):
        ab = torch.tensor(gen.uniform(-4, 4, 2), dtype=torch.float64)
        h = float(gen.uniform(0.001, 0.2))
        nxt = gd_step(product_loss, ab, h)
        r = 1 - ab[0] * ab[1]
        d0, d1 = ab[0] ** 2 - ab[1] ** 2, nxt[0] ** 2 - nxt[1] ** 2
        worst = max(worst, float(abs(d1 - (1 - h**2 * r**2) * d0) / max(abs(d0), 1e-300)))
    out["i3/identity_rel_err"] = [worst]
    start = torch.tensor([2.8, 3.5], dtype=torch.float64)
    nxt = gd_step(product_loss, start, 0.01)
    out["i3/example_ratio"] = [float((nxt[0] ** 2 - nxt[1] ** 2) / (start[0] ** 2 - start[1] ** 2))]
    # I3 (b): 2000 GD steps from (2.8, 3.5); h = 0.2 is kept for the figure only (it leaves the stable regime).
    out["i3/h"] = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2]
    for h in out["i3/h"]:
        th, path = start.clone(), [start.clone()]
        for _ in range(2000):
            th = th - h * gradient(product_loss, th)
            path.append(th)
        out.setdefault("i3/final_gap", []).append(float(abs(th[0] - th[1])))
        out.setdefault("i3/final_residual", []).append(float(abs(1 - th[0] * th[1])))
        keep = torch.stack(path[:300] + path[300::100])
        out[f"i3/path/{h:g}/a"], out[f"i3/path/{h:g}/b"] = keep[:, 0].tolist(), keep[:, 1].tolist()
    # I-P1: 25 steps of EGR with mu = 0 (penalty graph built) against plain GD, same start.
    net, x, y = _tiny_classifier(0)
    twin = mlp([5, 7, 3], "softplus").double()
    twin.load_state_dict(net.state_dict())
    diff = 0.0
    for _ in range(25):
        total, _ = egr_grads(torch.nn.functional.cross_entropy(net(x), y), list(net.parameters()), 0.0)
        plain = torch.autograd.grad(torch.nn.functional.cross_entropy(twin(x), y), list(twin.parameters()))
        with torch.no_grad():
            for p, q, u, v in zip(net.parameters(), twin.parameters(), total, plain, strict=True):
                p -= 0.5 * u
                q -= 0.5 * v
                diff = max(diff, float((p - q).abs().max()))
    out["ip1/max_abs_diff"] = [diff]
    # I-P2: penalty gradient by double backprop vs 2 mu hvp (torch.autograd.functional) vs central difference.
    net, x, y = _tiny_classifier(1)
    params = list(net.parameters())
    names, shapes = [n for n, _ in net.named_parameters()], [p.shape for p in params]
    mu = 0.3

    def flat_loss(theta: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(theta, [s.numel() for s in shapes])
        weights = {n: c.view(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        return torch.nn.functional.cross_entropy(functional_call(net, weights, (x,)), y)

    flat = torch.cat([p.detach().flatten() for p in params])
    total, g = egr_grads(torch.nn.functional.cross_entropy(net(x), y), params, mu)
    penalty = torch.cat([(t - gi).flatten() for t, gi in zip(total, g, strict=True)])
    _, hg = torch.autograd.functional.hvp(flat_loss, flat, torch.cat([gi.flatten() for gi in g]))
    fd, _ = penalty_grad_fd(lambda: torch.nn.functional.cross_entropy(net(x), y), params, mu, radius=1e-4, central=True)
    out["ip2/hvp_rel_err"] = [float((penalty - 2 * mu * hg).norm() / (2 * mu * hg).norm())]
    out["ip2/fd_rel_err"] = [float((torch.cat([f.flatten() for f in fd]) - penalty).norm() / penalty.norm())]
    # I-P3: R_IG from gradients accumulated over chunks of 7 examples vs one full batch.
    full = torch.autograd.grad(torch.nn.functional.cross_entropy(net(x), y), params)
    acc = full_batch_grad(
        lambda i, j: torch.nn.functional.cross_entropy(net(x[i:j]), y[i:j], reduction="sum"), len(y), 7, params
    )
    out["ip3/abs_err"] = [abs(float(sum((a_ * a_).sum() for a_ in acc)) - float(sum((f * f).sum() for f in full)))]
    return out


def get_study(budget: str) -> Study:
    cells = [{"activation": a, "lr": h, "egr_mu": 0.0} for a in ACTIVATIONS[budget] for h in STEP_SIZES[budget]]
    cells += [
        {"activation": a, "lr": h, "egr_mu": mu} for a in ACTIVATIONS[budget] for h, mus in EGR[budget].items() for mu in mus
    ]
    scientific = ("activation", "lr", "egr_mu")
    space = {"cell": tune.grid_search(cells), "seed": tune.grid_search(SEEDS[budget]), **FIXED[budget]}
    if budget == "full":
        cells += [{**c, "egr_mu": c["egr_mu"], "egr_impl": "fgr"} for c in cells if c["egr_mu"] > 0]
        space["cell"] = tune.grid_search([{"egr_impl": "double_backprop", **c} for c in cells])
        space |= {"model": tune.grid_search(FULL_MODELS), "run": tune.grid_search(FULL_RUNS)}
        scientific += ("egr_impl", "model", "dataset", "protocol", "batch_size")
    return Study(
        name="lr_finiteness",
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
        sources=lambda: [load(d).source for d in sorted({c["dataset"] for c in expand(space)})],
    )
