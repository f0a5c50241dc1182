"""Fused trials: K classifiers of one MLP shape trained as one program, each member as if it ran alone.

The K members' weights are stacked (`W_l: [K, in, out]`, `b_l: [K, out]`) and every step is one batched
matmul per layer, one backward and one optimiser update over the stack, instead of K of each: on small models
the per-op overhead of Python and the framework, not arithmetic, is what a trial costs. What may differ between
members is what `fit_classifier` takes per run as a plain value: learning rate, momentum, weight decay (coupled
and decoupled), flood level, WEISSI strengths, label-noise rate, and the seed (initialisation, data order and
the label-noise draw). Each member gets exactly the reports `fit_classifier` would give it.

Per-member hyperparameters are tensors of shape `[K]`; the optimisers are written here over stacked tensors
(torch's optimisers take one learning rate per parameter group, not per slice) and checked against
`torch.optim` by the equivalence tests (`tests/core/test_fused.py`). A member whose mini-batch loss becomes
NaN or inf reports `train/loss = nan` at that epoch, exactly as `fit_classifier` does, and is frozen: its
update is masked from then on, and the others go on unchanged (the batched ops keep members independent).
"""

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.data.classification import Splits
from core.data.label_noise import symmetric_label_noise
from core.train.classifier import FitConfig, robustness, weight_norms

FusedReport = Callable[[list[dict | None]], None]
"""Called once per epoch with one metrics dict per member (`None` for a member with nothing to report)."""

Probe = Callable[[int, dict, Callable[[], nn.Module]], None]
"""`probe(k, metrics, model)`: called once per epoch for each live member k before the report, with its metrics (to add
to) and a function that returns the member as an ordinary module (a copy, made only when called)."""

ELEMENTWISE = (nn.ReLU, nn.Softplus, nn.GELU, nn.Tanh, nn.Identity)
SHARED = ("epochs", "batch_size", "optimizer", "schedule", "weissi_layers", "log_weight_norms", "attack_eps",
          "pgd_eps", "pgd_steps", "curvature_examples", "eval_batch")  # fmt: skip
"""FitConfig fields that must be equal across a bundle (they shape the program, not just its numbers)."""
PER_MEMBER = ("lr", "momentum", "weight_decay", "decoupled_weight_decay", "flood_level", "label_noise", "seed",
              "weissi_lam1", "weissi_lam2")  # fmt: skip
"""FitConfig fields that may differ between members."""
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, which fit_classifier uses


def fusable(model: nn.Module) -> bool:
    """Whether `model` is an MLP this module can stack: `Flatten`, then `Linear` and element-wise activations."""
    mods = list(model.children()) if isinstance(model, nn.Sequential) else []
    return (
        bool(mods)
        and isinstance(mods[0], nn.Flatten)
        and any(isinstance(m, nn.Linear) for m in mods)
        and all(isinstance(m, (nn.Linear, *ELEMENTWISE)) for m in mods[1:])
    )


CPU_MAX_PARAMS = 100_000
"""Largest model fused in a CPU trial. Measured on the 2-core reference machine (bench/README.md): a 26k-parameter
digits MLP trains 3-5x faster fused, while a 269k-parameter MNIST-5k MLP gains ~1.2-2x in one process and was ~8%
slower fused in a 2-slot Ray run of the flooding local budget (arithmetic and memory traffic dominate both ways).
Larger models run alone on CPU; GPU trials have no cap."""


def worth_fusing(model: nn.Module, gpu: bool) -> bool:
    """Whether to fuse runs of `model`: it can be stacked, and on CPU it is small enough to gain (`CPU_MAX_PARAMS`)."""
    return fusable(model) and (gpu or sum(p.numel() for p in model.parameters()) <= CPU_MAX_PARAMS)


def member_bytes(model: nn.Module, cfg: FitConfig, n_labels: int) -> int:
    """Memory one member adds to a bundle: float32 weights, gradients and two optimiser moments, the activations of
    a training and an evaluation batch (kept for backward), and its `n_labels` noisy int64 labels. The inputs
    themselves are shared by the members."""
    params = sum(p.numel() for p in model.parameters())
    widths = sum(m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    activations = 3 * widths * (cfg.batch_size + cfg.eval_batch)
    return 4 * (4 * params + activations) + 8 * n_labels


def stack(models: list[nn.Module], device: str | torch.device = "cpu") -> list[torch.Tensor]:
    """The members' `Linear` weights and biases as stacked leaves: `[W_0, b_0, W_1, b_1, ...]`, `W_l: [K, in, out]`."""
    out = []
    layers = [[m for m in model.modules() if isinstance(m, nn.Linear)] for model in models]
    for per_member in zip(*layers, strict=True):
        w = torch.stack([lin.weight.detach().t() for lin in per_member]).to(device).contiguous()
        b = torch.stack([lin.bias.detach() for lin in per_member]).to(device)
        out += [w.requires_grad_(), b.requires_grad_()]
    return out


def forward(template: nn.Sequential, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits `[K, B, C]` of the stacked members on inputs `[K, B, ...]`, one batch per member.

    Args:
        template (nn.Sequential):
            One member, for its layer order and activations (its own weights are not used).
        params (list[torch.Tensor]):
            `stack(...)` of the members.
        x (torch.Tensor):
            Inputs; a batch shared by every member is passed as `x.expand(K, *x.shape)` (no copy).

    Returns:
        torch.Tensor: logits.
    """
    h, i = x.flatten(2), 0
    for mod in list(template.children())[1:]:
        if isinstance(mod, nn.Linear):
            h = torch.baddbmm(params[i + 1].unsqueeze(1), h, params[i])
            i += 2
        else:
            h = mod(h)
    return h


def member(template: nn.Sequential, params: list[torch.Tensor], k: int) -> nn.Sequential:
    """Member `k` as an ordinary module (a copy), for the end-of-run metrics that `fit_classifier` computes."""
    model = copy.deepcopy(template)
    with torch.no_grad():
        for i, lin in enumerate(m for m in model.modules() if isinstance(m, nn.Linear)):
            lin.weight.copy_(params[2 * i][k].t())
            lin.bias.copy_(params[2 * i + 1][k])
    return model.to(params[0].device)


def weissi_stacked(params: list[torch.Tensor], lam1: torch.Tensor, lam2: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-member WEISSI penalty `[K]` of every weight matrix (as `core.regularizers.weissi.weissi`, all layers)."""
    total = torch.zeros_like(lam1)
    for w in params[0::2]:
        flat = w.flatten(1)
        norm = flat.norm(dim=1).clamp_min(eps)
        total = total + lam1 * torch.log(norm) + lam2 * flat.abs().sum(1) / norm
    return total


def _col(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.view(-1, *([1] * (like.dim() - 1)))


@torch.no_grad()
def optimizer_step(
    kind: str,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    state: dict,
    hp: dict[str, list[float]],
    active: list[bool],
) -> None:
    """One step of `torch.optim.Adam`, `SGD` or `AdamW` (fused kernels, default betas and eps) for every active member.

    Preceded, as in `fit_classifier`, by the decoupled decay p <- p (1 - lr lambda). The step is torch's own fused
    kernel (what `torch.optim.Adam(fused=True)` calls): one call over the whole stack while every member is active
    and shares its hyperparameters (the common case: a sweep over seeds or flood levels), else one call per active
    member on its slices of the stack. Frozen members keep their parameters and optimiser state.

    Args:
        kind (str):
            `adam`, `sgd` or `adamw`.
        params (list[torch.Tensor]):
            Stacked parameters `[K, ...]`, updated in place.
        grads (list[torch.Tensor]):
            Their gradients.
        state (dict):
            Optimiser state, filled on the first call: `steps` per member, and stacked `m`, `v` or `buf`.
        hp (dict[str, list[float]]):
            Per member: `lr` (after the schedule), `weight_decay`, `momentum`, `decoupled_weight_decay`.
        active (list[bool]):
            Members to update.
    """
    if kind not in ("adam", "sgd", "adamw"):
        raise ValueError(f"unknown optimizer {kind!r}; expected 'adam', 'sgd' or 'adamw'")
    k = len(active)
    if not state:
        state["steps"] = [0] * k
        names = ("buf",) if kind == "sgd" else ("m", "v")
        state.update({name: [torch.zeros_like(p) for p in params] for name in names})
    lr, wd, momentum, decay = hp["lr"], hp["weight_decay"], hp["momentum"], hp["decoupled_weight_decay"]
    if any(decay):
        factor = [1 - r * d if on else 1.0 for r, d, on in zip(lr, decay, active, strict=True)]
        for p in params:
            p.mul_(_col(torch.tensor(factor, dtype=p.dtype, device=p.device), p))
    members = [j for j in range(k) if active[j]]
    shared = len(members) == k and len({(lr[j], wd[j], momentum[j], state["steps"][j]) for j in members}) == 1
    for j in [None] if shared else members:  # None: the whole stack in one call
        at = (lambda t: t) if j is None else (lambda t, j=j: t[j])  # noqa: E731
        i = 0 if j is None else j
        tensors = [at(p) for p in params], [at(g) for g in grads]
        if kind == "sgd":
            bufs = [] if momentum[i] == 0 else [at(b) for b in state["buf"]]
            torch._fused_sgd_(*tensors, bufs, weight_decay=wd[i], momentum=momentum[i], lr=lr[i], dampening=0.0,
                              nesterov=False, maximize=False, is_first_step=state["steps"][i] == 0)  # fmt: skip
        else:
            # the kernel takes this step's number (torch.optim counts it up before the call), on the params' device
            steps = [torch.tensor(float(state["steps"][i] + 1), dtype=torch.float32, device=p.device) for p in params]
            fused_op = torch._fused_adam_ if kind == "adam" else torch._fused_adamw_
            fused_op(*tensors, [at(m) for m in state["m"]], [at(v) for v in state["v"]], [], steps, lr=lr[i],
                     beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1], weight_decay=wd[i], eps=ADAM_EPS, amsgrad=False,
                     maximize=False)  # fmt: skip
    for j in members:
        state["steps"][j] += 1


def curvature_stacked(
    template: nn.Sequential, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, examples: int, batch: int,
    seeds: list[int],
) -> tuple[list[float], list[float]]:  # fmt: skip
    """`train/lambda_max` and `train/grad_norm_sq` of every member at once, as `core.train.classifier.curvature`.

    The summed loss of the members has a block-diagonal Hessian, so one Hessian-vector product of the stack is
    every member's own; power iteration normalises per member, from each member's own seeded start vector
    (drawn, as `core.curvature.top_hessian_eigenpair` draws it, in the member module's parameter order).

    Args:
        template (nn.Sequential):
            One member, for the layer order.
        params (list[torch.Tensor]):
            The stack.
        x (torch.Tensor):
            Training inputs (shared).
        y (torch.Tensor):
            Noisy training labels `[K, N]`.
        examples (int):
            Subset size for lambda_max.
        batch (int):
            Chunk size of the full-batch gradient.
        seeds (list[int]):
            Members' seeds (start vectors).

    Returns:
        tuple[list[float], list[float]]: lambda_max and the squared gradient norm per member.
    """
    k = len(seeds)
    shapes = [t.shape for lin in template if isinstance(lin, nn.Linear) for t in (lin.weight, lin.bias)]
    draws = []
    for s in seeds:  # one generator per member, drawn in its module's parameter order (weights [out, in])
        gen = torch.Generator(device="cpu").manual_seed(s)
        draws.append([torch.randn(shape, generator=gen, dtype=params[0].dtype) for shape in shapes])
    vec = [torch.stack([d[i].t() if i % 2 == 0 else d[i] for d in draws]).to(p.device) for i, p in enumerate(params)]
    xs, ys = x[:examples], y[:, :examples]
    logits = forward(template, params, xs.expand(k, *xs.shape))
    loss = F.cross_entropy(logits.flatten(0, 1), ys.flatten(), reduction="none").view(ys.shape).mean(1).sum()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    eig = torch.zeros(k, dtype=torch.float64, device=params[0].device)
    for _ in range(20):
        norm = torch.sqrt(sum((v * v).flatten(1).sum(1) for v in vec))
        vec = [v / _col(norm, v) for v in vec]
        hv = [h.detach() for h in torch.autograd.grad(grads, params, grad_outputs=vec, retain_graph=True)]
        eig = sum((h * v).flatten(1).sum(1) for h, v in zip(hv, vec, strict=True))
        vec = hv
    total = [torch.zeros_like(p) for p in params]
    n = y.shape[1]
    for i in range(0, n, batch):
        xb, yb = x[i : i + batch], y[:, i : i + batch]
        logits = forward(template, params, xb.expand(k, *xb.shape))
        loss = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="sum") / n
        for t, g in zip(total, torch.autograd.grad(loss, params), strict=True):
            t += g
    sq = sum((g * g).flatten(1).sum(1) for g in total)
    return [float(e) for e in eig], [float(v) for v in sq]


def fit_fused(
    models: list[nn.Module],
    data: Splits,
    cfgs: list[FitConfig],
    report: FusedReport,
    device: str | torch.device = "cpu",
    probe: Probe | None = None,
) -> None:
    """Train K same-shape MLPs at once; member k's reports equal `fit_classifier(models[k], data, cfgs[k], ...)`'s.

    Args:
        models (list[nn.Module]):
            Freshly initialised members (each built after seeding with its own seed), all of one shape.
        data (Splits):
            Shared splits with clean labels; each member draws its own label noise from its seed.
        cfgs (list[FitConfig]):
            One per member; the `SHARED` fields must agree, and `augment` must be off.
        report (FusedReport):
            Called once per epoch with every member's metrics.
        device (str | torch.device):
            Where to train.
        probe (Probe | None):
            Measurements of a study's own on each member's trained model after each epoch (a study's `report`
            wrapper does the same for `fit_classifier`, which trains its model in place).
    """
    if not models or len(models) != len(cfgs):
        raise ValueError(f"need one config per model, got {len(models)} models and {len(cfgs)} configs")
    for name in SHARED:
        values = {repr(getattr(c, name)) for c in cfgs}
        if len(values) > 1:
            raise ValueError(f"members of a bundle must share {name!r}, got {sorted(values)}")
    cfg0 = cfgs[0]
    if any(c.augment for c in cfgs) or not all(fusable(m) for m in models):
        raise ValueError("only MLPs without augmentation can be fused (Flatten, Linear and element-wise activations)")
    if cfg0.schedule not in ("constant", "cosine"):
        raise ValueError(f"unknown schedule {cfg0.schedule!r}; expected 'constant' or 'cosine'")
    k = len(models)
    template = copy.deepcopy(models[0]).to(device)
    params = stack(models, device)
    col = lambda name: torch.tensor([float(getattr(c, name)) for c in cfgs], device=device)  # noqa: E731
    hp = {name: [float(getattr(c, name)) for c in cfgs] for name in ("momentum", "weight_decay", "decoupled_weight_decay")}
    level, lam1, lam2 = col("flood_level"), col("weissi_lam1"), col("weissi_lam2")
    use_weissi = bool((lam1 != 0).any() or (lam2 != 0).any())
    noisy_train, noisy_val = [], []
    for c in cfgs:
        rng = np.random.default_rng([c.seed, 1])  # the same draws, in the same order, as fit_classifier
        noisy_train.append(symmetric_label_noise(data.y_train, c.label_noise, data.num_classes, rng))
        noisy_val.append(symmetric_label_noise(data.y_val, c.label_noise, data.num_classes, rng))
    t = lambda a: torch.as_tensor(np.asarray(a), device=device)  # noqa: E731
    x_train, y_noisy, y_clean = t(data.x_train), t(np.stack(noisy_train)), t(data.y_train)
    x_val, y_val, x_test, y_test = t(data.x_val), t(np.stack(noisy_val)), t(data.x_test), t(data.y_test)
    n = len(y_clean)
    steps_per_epoch = math.ceil(n / cfg0.batch_size)
    total_steps = cfg0.epochs * steps_per_epoch
    gens = [torch.Generator().manual_seed(c.seed) for c in cfgs]
    active = torch.ones(k, dtype=torch.bool, device=device)
    state: dict = {}
    rows = torch.arange(k, device=device)[:, None]
    step = 0
    for epoch in range(1, cfg0.epochs + 1):
        order = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)  # [K, n]
        loss_sum = torch.zeros(k, device=device)
        hits_noisy, hits_clean, flooded = (torch.zeros(k, device=device) for _ in range(3))
        out: list[dict | None] = [None] * k
        for i in range(0, n, cfg0.batch_size):
            idx = order[:, i : i + cfg0.batch_size]  # [K, b]
            logits = forward(template, params, x_train[idx])  # [K, b, C]
            yb = y_noisy[rows, idx]
            loss = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none").view(idx.shape).mean(1)
            finite = torch.isfinite(loss)
            if not bool(finite[active].all()):
                for j in (active & ~finite).nonzero().flatten().tolist():
                    out[j] = {"step": epoch, "train/loss": float("nan")}  # as fit_classifier: report and stop
                active = active & finite
                if not bool(active.any()):
                    break
            objective = (loss - level).abs() + level  # core.losses.flooding.flood, per member
            if use_weissi:
                objective = objective + weissi_stacked(params, lam1, lam2)
            grads = torch.autograd.grad(torch.where(active, objective, 0.0).sum(), params)
            scale = 0.5 * (1 + math.cos(math.pi * step / total_steps)) if cfg0.schedule == "cosine" else 1.0
            hp["lr"] = [c.lr * scale for c in cfgs]
            optimizer_step(cfg0.optimizer, params, grads, state, hp, active.tolist())
            step += 1
            with torch.no_grad():
                on = active.float()
                loss_sum += torch.where(active, loss, 0.0)
                pred = logits.argmax(2)
                hits_noisy += on * (pred == yb).sum(1)
                hits_clean += on * (pred == y_clean[idx]).sum(1)
                flooded += on * (loss < level)
        if not bool(active.any()):
            report(out)
            return
        live = [j for j in range(k) if bool(active[j])]
        evals = {split: _evaluate(template, params, x, y, cfg0.eval_batch) for split, x, y in
                 (("val", x_val, y_val), ("test", x_test, y_test))}  # fmt: skip
        if epoch == cfg0.epochs and cfg0.curvature_examples > 0:
            lam, gsq = curvature_stacked(template, params, x_train, y_noisy, cfg0.curvature_examples, cfg0.eval_batch,
                                         [c.seed for c in cfgs])  # fmt: skip
        for j in live:
            metrics = {
                "step": epoch,
                "train/loss": float(loss_sum[j]) / steps_per_epoch,
                "train/acc_noisy": float(hits_noisy[j]) / n,
                "train/acc_clean": float(hits_clean[j]) / n,
                "train/flood_prop": float(flooded[j]) / steps_per_epoch,
            }
            for split, (losses, accs) in evals.items():
                metrics[f"{split}/loss"], metrics[f"{split}/acc"] = float(losses[j]), float(accs[j])
            last = epoch == cfg0.epochs
            if last and cfg0.curvature_examples > 0:
                metrics["train/lambda_max"], metrics["train/grad_norm_sq"] = lam[j], gsq[j]
            if cfgs[j].log_weight_norms or (last and (cfgs[j].attack_eps or cfgs[j].pgd_eps)):
                model = member(template, params, j)
                if cfgs[j].log_weight_norms:
                    metrics.update(weight_norms(model))
                if last and (cfgs[j].attack_eps or cfgs[j].pgd_eps):
                    metrics.update(robustness(model, x_test, y_test, cfgs[j], float(x_train.min()), float(x_train.max())))
            if probe is not None:
                probe(j, metrics, lambda j=j: member(template, params, j))
            out[j] = metrics
        report(out)


@torch.no_grad()
def _evaluate(
    template: nn.Sequential, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-member mean cross-entropy and accuracy `[K]` on shared inputs `x` and per-member labels `y` (`[K, N]` or
    `[N]`), as `core.train.classifier.evaluate`."""
    k = params[0].shape[0]
    y = y.expand(k, -1) if y.dim() == 1 else y
    loss = torch.zeros(k, device=x.device, dtype=torch.float64)
    correct = torch.zeros(k, device=x.device, dtype=torch.float64)
    for i in range(0, y.shape[1], batch):
        xb = x[i : i + batch]
        logits = forward(template, params, xb.expand(k, *xb.shape))
        yb = y[:, i : i + batch]
        ce = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none").view(yb.shape)
        loss += ce.sum(1).double()
        correct += (logits.argmax(2) == yb).sum(1).double()
    n = y.shape[1]
    return loss / n, correct / n
