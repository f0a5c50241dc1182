"""Policy gradient and zeroth-order optimisation: different roads, same place (spec: 07-policy-gradient-vs-zeroth-order.md)

Article: Su Jianlin, 殊途同归的策略梯度与零阶优化 https://kexue.fm/archives/7737 (2020-09-15)
Related: Qiu et al., "Zeroth-Order Optimization is Secretly Single-Step Policy Optimization", arXiv:2506.14460;
         MeZO (Malladi et al., NeurIPS 2023, arXiv:2305.17333).
Claims:  Z1 a Gaussian policy's REINFORCE term is the forward-difference ZO term sample by sample (exact);
         Z2 ZO is unbiased on quadratics with variance (d + 1) ||grad f||^2, and E cos^2 ~ q / d at scale;
         Z3 Gumbel logit noise induces exactly the softmax policy and its score gives the policy gradient;
         Z4 baselines cut the variance and b* minimises it; Z5 PG and ZO both optimise 0/1 accuracy;
         Z6 PG is more query-efficient than ZO, increasingly with d. Controls Z-C1 (sub-flip sigma gives a zero
         estimate), Z-C2 (self-inclusive batch-mean baseline is biased), Z-P1 (exact PG reference), Z-P2 (seeds).
Run:     python -m studies run pg_vs_zo --budget smoke|local|full
Cost:    smoke ~45 s on 2 CPU cores (1 statistics + 4 optimisation runs on digits); local ~25 min on 2 CPU cores
         (18 estimator-statistics runs, 96 Optuna tuning + 60 confirmation runs on MNIST-5k at 3e6
         example-forwards each); full ~100-200 GPU-hours (spec estimate).

Budgets are matched in example-forward equivalents, not steps: a backprop or PG step costs 3 x batch, an
antithetic ZO step 2 q x batch. No pruning: ASHA in steps would give ZO q times more compute per rung.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from ray import tune
from torch import nn

from analysis.claims.pg_vs_zo import ARTICLE, CLAIMS, FIGURES
from core.data.classification import load
from core.estimators.policy_gradient import gaussian_policy_term, gumbel_noise_score, optimal_baseline, reinforce_surrogate
from core.estimators.zeroth_order import batched, directions, flat_params, perturb_, zo_grad, zo_terms
from core.models import mlp
from studies import Study, Tuning, expand, trial_device

METHODS = ("ce_backprop", "pg_reinforce", "zo_acc", "zo_ce")
MODELS = {"smoke": ["softmax"], "local": ["softmax_pool14", "softmax", "mlp32"], "full": ["softmax", "mlp256", "resnet18"]}
DATASET = {"smoke": "digits", "local": "mnist_5k", "full": "cifar10"}
STATS = {  # estimator statistics: sigma x dtype cells, q grid, parameter points, repetitions
    "smoke": {"sigma": [1e-3], "dtype": ["float64"], "q": [1, 4, 16, 64], "points": 3, "reps": 10},
    "local": {"sigma": [1e-4, 1e-3, 1e-2], "dtype": ["float32", "float64"], "q": [1, 4, 16, 64, 256], "points": 4, "reps": 10},
    "full": {"sigma": [1e-4, 1e-3, 1e-2], "dtype": ["float32", "float64"], "q": [1, 4, 16, 64, 256], "points": 20, "reps": 50},
}
SMOKE_SETTINGS = {  # the spec's smoke arms A-D, fixed
    "pg_reinforce": {"lr": 0.05, "tau": 1.0, "lam_entropy": 0.0},
    "zo_acc": {"lr": 0.5, "sigma": 0.05, "q": 16},
    "zo_ce": {"lr": 0.5, "sigma": 0.05, "q": 16},
    "ce_backprop": {"lr": 0.05},
}
BUDGET = {"smoke": {"max_steps": 300}, "local": {"budget_forwards": 3_000_000}, "full": {"budget_forwards": 300_000_000}}
SEEDS = {"smoke": [0], "local": [0, 1, 2, 3, 4], "full": [0, 1, 2, 3, 4]}
TRIALS_PER_ARM = {"local": 8, "full": 25}
RESOURCES = {"smoke": {"cpu": 1}, "local": {"cpu": 1}, "full": {"cpu": 4, "gpu": 0.5}}
COST = {
    "smoke": "~45 s on 2 CPU cores",
    "local": "~25 min on 2 CPU cores",
    "full": "~100-200 GPU-hours (spec estimate; full-network ZO dominates)",
}


def build_model(name: str, in_features: int, num_classes: int) -> nn.Module:
    """Softmax regressions, MLPs and (full) a CIFAR ResNet-18 of width 16, by name."""
    if name == "softmax":
        return nn.Sequential(nn.Flatten(), nn.Linear(in_features, num_classes))
    if name == "softmax_pool14":  # 28x28 images average-pooled to 14x14
        return nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(196, num_classes))
    if name == "mlp32":
        return mlp([in_features, 32, num_classes])
    if name == "mlp256":
        return mlp([in_features, 256, num_classes])
    if name == "resnet18":
        from core.models import resnet18_cifar

        return resnet18_cifar(num_classes, width=16)
    raise ValueError(f"unknown model {name!r}")


def _accuracy(fwd, x, y):
    return (fwd(x).argmax(1) == y).to(x.dtype).mean()


def _eval(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
    model.train()
    return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def macro_f1(pred: torch.Tensor, y: torch.Tensor, k: int) -> float:
    """Unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN) (a class absent from both counts as 0)."""
    f1 = []
    for c in range(k):
        tp = int(((pred == c) & (y == c)).sum())
        fp, fn = int(((pred == c) & (y != c)).sum()), int(((pred != c) & (y == c)).sum())
        f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(f1))


def optimise(config: dict, report) -> None:
    """One optimisation run at a matched budget of example-forwards; validation accuracy at 20 budget points."""
    data = load(config["dataset"])
    device = trial_device()
    t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    x, y, xv, yv, xt, yt = (t(a) for a in (data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test))
    torch.manual_seed(config["seed"])
    model = build_model(config["model"], data.x_train[0].size, data.num_classes).to(device)
    method, bsz = config["method"], config.get("batch_size", 256)
    q = int(config.get("q", 0))
    per_step = 2 * q * bsz if method.startswith("zo") else 3 * bsz
    budget = config.get("budget_forwards") or config["max_steps"] * per_step
    marks = [budget * k / 20 for k in range(1, 21)]
    gen = torch.Generator().manual_seed(config["seed"])
    sampler = torch.Generator(device=device).manual_seed(config["seed"] + 1)
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"]) if method in ("ce_backprop", "pg_reinforce") else None
    _, acc0 = _eval(model, xt, yt)
    curve = [(0, _eval(model, xv, yv)[1])]
    report({"step": 0, "val/acc": curve[0][1]})
    used, step, order, cursor = 0, 0, torch.randperm(len(y), generator=gen), 0
    while used < budget:
        if cursor + bsz > len(y):
            order, cursor = torch.randperm(len(y), generator=gen), 0
        idx = order[cursor : cursor + bsz].to(device)
        cursor += bsz
        xb, yb = x[idx], y[idx]
        if opt is not None:
            opt.zero_grad()
            if method == "ce_backprop":
                F.cross_entropy(model(xb), yb).backward()
            else:
                surrogate, _ = reinforce_surrogate(model(xb), yb, sampler, "loo", config["tau"], config["lam_entropy"])
                (-surrogate).backward()
            opt.step()
        else:
            if method == "zo_acc":
                objective = lambda fwd, xb=xb, yb=yb: _accuracy(fwd, xb, yb)  # noqa: E731
            else:
                objective = lambda fwd, xb=xb, yb=yb: -F.cross_entropy(fwd(xb), yb)  # noqa: E731
            theta = flat_params(model)
            model.eval()  # MeZO's forward passes: dropout off, batch norm on running statistics (vmap cannot update them)
            g = zo_grad(batched(model, objective), theta, config["sigma"], q, seed=config["seed"] * 1_000_003 + step)
            model.train()
            torch.nn.utils.vector_to_parameters(theta + config["lr"] * g, model.parameters())  # ascent on the objective
        used += per_step
        step += 1
        while marks and used >= marks[0]:
            marks.pop(0)
            loss, acc = _eval(model, xv, yv)
            curve.append((used, acc))
            report({"step": used, "val/acc": acc, "val/loss": loss})
            if not math.isfinite(loss):
                return
    _, acc = _eval(model, xt, yt)
    with torch.no_grad():
        model.eval()
        pred = model(xt).argmax(1)
    frac = np.array([u for u, _ in curve]) / used
    accs = np.array([a for _, a in curve])
    auc = float(np.sum((frac[1:] - frac[:-1]) * (accs[1:] + accs[:-1]) / 2))
    final = {"step": used, "val/acc": curve[-1][1], "test/acc": acc, "test/acc_init": acc0, "val/auc_acc": auc}
    final |= {"test/macro_f1": macro_f1(pred, yt, data.num_classes), "train/n_forward": used, "train/steps": step}
    report(final)


def estimator_stats(config: dict, report) -> None:
    """Cosine between the ZO estimate on CE and the backprop gradient, at points along a CE-backprop trajectory.

    At each of `points` parameter points (every `steps_per_point` = 100 Adam steps) on a fixed batch of 256
    training examples, for each q of the grid, `reps` estimates (directions seeded by point, q and repetition);
    reports mean cos and cos^2 per q, and the Z1 identity at scale (10 draws of the Gaussian-policy term vs the
    ZO term on accuracy).
    """
    data = load(config["dataset"])
    dtype, device = getattr(torch, config["stat_dtype"]), trial_device()
    x = torch.as_tensor(data.x_train[:256]).to(device, dtype)
    y = torch.as_tensor(data.y_train[:256]).to(device)
    torch.manual_seed(config["seed"])
    model = build_model(config["model"], data.x_train[0].size, data.num_classes).to(device, dtype)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    F_ce = batched(model, lambda fwd: F.cross_entropy(fwd(x), y))
    F_acc = batched(model, lambda fwd: _accuracy(fwd, x, y))
    cos: dict[int, list[float]] = {q: [] for q in config["q_grid"]}
    z1 = 0.0
    for point in range(config["points"]):
        for _ in range(config.get("steps_per_point", 100)):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        theta = flat_params(model)
        model.eval()  # the gradient and its estimates measure the same function (batch norm on running statistics)
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        g = torch.cat([p.grad.flatten() for p in model.parameters()])
        for q in config["q_grid"]:
            for rep in range(config["reps"]):
                est = zo_grad(F_ce, theta, config["stat_sigma"], q, seed=(point * 1000 + q) * 1000 + rep)
                cos[q].append(float(est @ g / (est.norm() * g.norm())))
        if point == 0:  # Z1 at scale, in the trial's dtype
            for rep in range(10):
                u = directions(rep, 1, theta.numel(), dtype, theta.device)[0]
                pg = gaussian_policy_term(lambda th: F_acc(th[None])[0], theta, u, 0.05, float(F_acc(theta[None])[0]))
                zo = zo_terms(F_acc, theta, 0.05, u[None], antithetic=False)[0]
                z1 = max(z1, float((pg - zo).abs().max()))
        model.train()
    out = {"step": 0, "stats/d": float(theta.numel()), "stats/z1_max_diff": z1}
    for q, c in cos.items():
        out[f"stats/cos@{q}"] = float(np.mean(c))
        out[f"stats/cos2@{q}"] = float(np.mean(np.square(c)))
    report(out)


def train(config: dict) -> None:
    """Ray Tune trainable: an estimator-statistics run or an optimisation run, reporting with `ray.tune.report`."""
    (estimator_stats if config["task"] == "stats" else optimise)(config, tune.report)


def nuisance(config: dict) -> dict:
    """Each optimisation arm's Optuna space (spec 5.2); statistics cells are not tuned."""
    if config["task"] == "stats":
        return {}
    method = config["method"]
    if method.startswith("zo"):
        return {"lr": tune.loguniform(1e-2, 3.0), "sigma": tune.loguniform(1e-3, 1e-1), "q": tune.choice([4, 16, 64])}
    space = {"lr": tune.loguniform(1e-4, 1e-1)}
    if method == "pg_reinforce":
        space |= {"tau": tune.uniform(0.5, 2.0), "lam_entropy": tune.loguniform(1e-4, 1e-1)}
    return space


def _linear_accuracy(x: torch.Tensor, y: torch.Tensor, k: int):
    def f(theta: torch.Tensor) -> torch.Tensor:
        return ((x @ theta.view(k, -1).T).argmax(1) == y).to(x.dtype).mean()

    return f


def exact_checks() -> dict[str, list[float]]:
    """Z1-Z4 and the controls, in float64 (Monte Carlo with fixed seeds where the claim is statistical)."""
    out: dict[str, list[float]] = {}
    digits = load("digits")
    x, y = torch.as_tensor(digits.x_train[:256], dtype=torch.float64), torch.as_tensor(digits.y_train[:256])
    acc = _linear_accuracy(x, y, 10)
    F_acc = lambda ths: torch.stack([acc(t) for t in ths])  # noqa: E731
    gen = torch.Generator().manual_seed(0)
    # Z1: 1000 (theta, u) pairs; the first 200 (pg, zo) coordinates are kept for the figure.
    worst, shown = 0.0, []
    for i in range(1000):
        theta, u = torch.randn(640, generator=gen, dtype=torch.float64), torch.randn(640, generator=gen, dtype=torch.float64)
        pg = gaussian_policy_term(acc, theta, u, 0.1, float(acc(theta)))
        zo = zo_terms(F_acc, theta, 0.1, u[None], antithetic=False)[0]
        worst = max(worst, float((pg - zo).abs().max()))
        if i < 20:
            shown += list(zip(pg[:10].tolist(), zo[:10].tolist(), strict=True))
    out["z1/max_abs_diff"] = [worst]
    out["z1/pg"], out["z1/zo"] = [a for a, _ in shown], [b for _, b in shown]
    # Z2: quadratics, single-direction central differences.
    n = 20_000
    out["z2/d"] = [4.0, 16.0, 64.0]
    for d in (4, 16, 64):
        g2 = torch.Generator().manual_seed(d)
        qm, _ = torch.linalg.qr(torch.randn(d, d, generator=g2, dtype=torch.float64))
        a = (qm * torch.linspace(0.5, 3, d, dtype=torch.float64)) @ qm.T
        theta = torch.randn(d, generator=g2, dtype=torch.float64)
        quad = lambda th, a=a: 0.5 * ((th @ a) * th).sum(-1)  # noqa: E731
        g = a @ theta
        terms = zo_terms(quad, theta, 0.1, directions(d + 100, n, d))
        out.setdefault("z2/rel_bias", []).append(float((terms.mean(0) - g).norm() / g.norm()))
        out.setdefault("z2/var_ratio", []).append(float(((terms - g) ** 2).sum(1).mean() / g.pow(2).sum()))
    out["z2/n"] = [float(n)]
    # Z3: Gumbel-max, K = 5.
    z = torch.tensor([0.3, -1.0, 1.2, 0.0, 0.5], dtype=torch.float64, requires_grad=True)
    freq, est, se = gumbel_noise_score(z.detach(), 2, 200_000, torch.Generator().manual_seed(3))
    p = torch.softmax(z, 0)
    exact = torch.autograd.grad(p[2], z)[0]
    out["z3/freq_err"] = [float((freq - p.detach()).abs().max())]
    out["z3/grad_err"] = [float((est - exact).abs().max())]
    out["z3/estimate"], out["z3/exact"], out["z3/se"] = est.tolist(), exact.tolist(), se.tolist()
    # Z4: baselines on d = 16, forward differences of f + 10 at sigma = 0.5.
    g4 = torch.Generator().manual_seed(4)
    qm, _ = torch.linalg.qr(torch.randn(16, 16, generator=g4, dtype=torch.float64))
    a = (qm * torch.linspace(0.5, 3, 16, dtype=torch.float64)) @ qm.T
    theta = torch.randn(16, generator=g4, dtype=torch.float64)
    quad = lambda th: 0.5 * ((th @ a) * th).sum(-1) + 10.0  # noqa: E731
    u, sigma = directions(44, n, 16), 0.5
    vals = quad(theta + sigma * u)
    b_star = optimal_baseline(vals, u.pow(2).sum(1))

    def trace(b: float) -> tuple[float, float]:
        terms = ((vals - b) / sigma)[:, None] * u
        per = ((terms - terms.mean(0)) ** 2).sum(1)
        return float(per.mean()), float(per.std() / math.sqrt(n))

    named = {"zero": 0.0, "f_theta": float(quad(theta[None])[0]), "mean_f": float(vals.mean()), "b_star": b_star}
    for k, b in named.items():
        var, se = trace(b)
        out[f"z4/var_{k}"], out[f"z4/se_{k}"], out[f"z4/b_{k}"] = [var], [se], [b]
    grid = np.linspace(b_star - 5, b_star + 5, 21)
    out["z4/grid"], out["z4/grid_var"] = grid.tolist(), [trace(float(b))[0] for b in grid]
    # Z-C1: sigma = 1e-8 on 0/1 accuracy: no prediction flips, so the estimate is exactly zero.
    theta = torch.randn(640, generator=gen, dtype=torch.float64)
    zeros = [bool((zo_terms(F_acc, theta, 1e-8, directions(1000 + i, 1, 640)) == 0).all()) for i in range(200)]
    out["zc1/zero_fraction"] = [float(np.mean(zeros))]
    # Z-C2 and Z-P1: a linear softmax policy on one input, closed-form per-sample score terms.
    w = torch.randn(3, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    x0, target = torch.tensor([0.5, -1.0], dtype=torch.float64), 2
    exact = torch.autograd.grad(torch.softmax(w @ x0, 0)[target], w)[0]
    probs = torch.softmax(w.detach() @ x0, 0)
    for name, bsz, n_batches in [("zp1", 1, 100_000), ("zc2_mean", 4, 25_000), ("zc2_loo", 4, 25_000)]:
        a_ = torch.multinomial(probs.expand(bsz * n_batches, 3), 1, generator=torch.Generator().manual_seed(7)).squeeze(1)
        r = (a_ == target).double().view(n_batches, bsz)
        b = {
            "zp1": torch.zeros_like(r),
            "zc2_mean": r.mean(1, keepdim=True).expand_as(r),
            "zc2_loo": (r.sum(1, keepdim=True) - r) / (bsz - 1 if bsz > 1 else 1),
        }[name]
        score = (torch.nn.functional.one_hot(a_, 3).double() - probs)[:, :, None] * x0[None, None, :]
        terms = (r - b).reshape(-1)[:, None, None] * score
        mean, se = terms.mean(0), terms.std(0) / math.sqrt(len(terms))
        out[f"{name}/max_z"] = [float(((mean - exact) / se).abs().max())]
    # Z-P2: regeneration and in-place restore.
    out["zp2/regen_equal"] = [float(torch.equal(directions(5, 3, 1000), directions(5, 3, 1000)))]
    for dtype in (torch.float64, torch.float32):
        params = [
            torch.randn(40, 25, generator=gen, dtype=torch.float64).to(dtype),
            torch.randn(25, generator=gen, dtype=torch.float64).to(dtype),
        ]
        before = [p.clone() for p in params]
        for scale in (1e-3, -2e-3, 1e-3):
            perturb_(params, seed=9, scale=scale)
        out[f"zp2/drift_{str(dtype).removeprefix('torch.')}"] = [
            max(float((p - q).abs().max()) for p, q in zip(params, before, strict=True))
        ]
    return out


def get_study(budget: str) -> Study:
    st, dataset = STATS[budget], DATASET[budget]
    stats = [
        {"task": "stats", "method": "zo_stats", "model": m, "stat_sigma": s, "stat_dtype": dt, "seed": 0, "q_grid": st["q"],
         "points": st["points"], "reps": st["reps"]}
        for m in MODELS[budget] for s in st["sigma"] for dt in st["dtype"]
    ]  # fmt: skip
    runs = [
        {"task": "optimise", "method": meth, "model": m, "stat_sigma": 0.0, "stat_dtype": "none", "seed": s, **BUDGET[budget]}
        | (SMOKE_SETTINGS[meth] if budget == "smoke" else {})
        for meth in METHODS for m in MODELS[budget] for s in SEEDS[budget]
    ]  # fmt: skip
    space = {"cell": tune.grid_search(stats + runs), "dataset": dataset, "batch_size": 256}
    tuning = None if budget == "smoke" else Tuning(nuisance, "val/acc", "max", TRIALS_PER_ARM[budget], seed=100)
    return Study(
        name="pg_vs_zo",
        budget=budget,
        article=ARTICLE,
        trainable=train,
        param_space=space,
        scientific=("task", "method", "model", "stat_sigma", "stat_dtype"),
        claims=CLAIMS,
        resources=RESOURCES[budget],
        max_concurrent=None,
        checks=exact_checks,
        figures=FIGURES,
        cost=COST[budget],
        tuning=tuning,
        sources=lambda: [load(d).source for d in sorted({c["dataset"] for c in expand(space)} | {"digits"})],
    )
