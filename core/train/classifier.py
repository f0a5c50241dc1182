"""Train a classifier on noisy labels and log, every epoch, what the classification studies compare.

One loop serves flooding, WEISSI, zeroth-order and learning-rate studies: techniques come in as arguments
(a flood level, an optimiser name), not as subclasses. The seed fixes the initialisation, the data order and
the label-noise draw, so arms that differ only in a scientific factor are paired.

Per epoch it reports `train/loss` (mean un-flooded loss of the epoch's mini-batches against the noisy
labels), `train/acc_noisy`, `train/acc_clean`, `train/flood_prop` (share of mini-batches with loss < b),
`val/loss`, `val/acc` (noisy validation labels), `test/loss`, `test/acc` (clean). After the last epoch it adds
`train/lambda_max` (top Hessian eigenvalue on up to 1,000 training examples, 20 power iterations) and
`train/grad_norm_sq` (full-batch squared gradient norm), both against the noisy labels.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.curvature import top_hessian_eigenvalue
from core.data.classification import Splits
from core.data.label_noise import symmetric_label_noise
from core.losses.flooding import flood
from core.regularizers.weissi import unnormalised_layers, weight_layers, weissi
from core.robustness import expected_calibration_error, fgsm, input_grad_norm, pgd

Report = Callable[[dict], None]


@dataclass(frozen=True)
class FitConfig:
    """How to train. Every field is a plain value so it can come straight from a Ray Tune config."""

    epochs: int
    """Passes over the training set."""
    batch_size: int = 128
    """Mini-batch size."""
    optimizer: str = "adam"
    """`"adam"`, `"sgd"` (with `momentum`) or `"adamw"` (its `weight_decay` is decoupled)."""
    lr: float = 1e-3
    """Learning rate."""
    momentum: float = 0.0
    """SGD momentum."""
    weight_decay: float = 0.0
    """Coupled L2 weight decay of the torch optimiser."""
    schedule: str = "constant"
    """`"constant"` or `"cosine"` (per step, to zero)."""
    flood_level: float = 0.0
    """Flood level b of the mini-batch mean loss; 0 is plain training."""
    label_noise: float = 0.0
    """Symmetric noise rate on the training and validation labels; the test labels stay clean."""
    augment: bool = False
    """Random crop (pad 4) and horizontal flip, for `[B, 3, H, W]` images."""
    seed: int = 0
    """Initialisation, data order and label noise."""
    decoupled_weight_decay: float = 0.0
    """Decoupled decay lambda: p <- p (1 - lr lambda) before each optimiser step (SGDW; with Adam it is AdamW)."""
    weissi_lam1: float = 0.0
    """WEISSI strength on sum_l log ||W_l||, added to the loss."""
    weissi_lam2: float = 0.0
    """WEISSI strength on sum_l ||W_l / ||W_l|| ||_1, added to the loss."""
    weissi_layers: str = "all"
    """`"all"` weight layers, or `"unnormalised"`: only those not followed by a normalisation layer."""
    log_weight_norms: bool = False
    """Report per-epoch layer norms, their spread, log10 of their product and the balance gaps D_l."""
    attack_eps: tuple[float, ...] = ()
    """After the last epoch: FGSM accuracy at each eps, ECE and the input-gradient norm on the test set."""
    pgd_eps: tuple[float, ...] = ()
    """After the last epoch: PGD accuracy at each eps (`pgd_steps` steps of eps / 4, random start)."""
    pgd_steps: int = 10
    """PGD steps."""
    curvature_examples: int = 1000
    """Training examples for `train/lambda_max`; 0 skips both end-of-run curvature metrics."""
    eval_batch: int = 1000
    """Batch size of evaluation passes."""


OPTIMIZERS = {
    "adam": lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay),
    "sgd": lambda params, c: torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay),
    "adamw": lambda params, c: torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay),  # decoupled decay
}


def augment_images(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 4-pixel-padded crop and horizontal flip per image.

    Args:
        x (torch.Tensor):
            Images `[B, C, H, W]`.
        gen (torch.Generator):
            CPU generator for the crop offsets and flips.

    Returns:
        torch.Tensor: augmented images, same shape.
    """
    b, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy, dx = (torch.randint(0, 9, (b,), generator=gen) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h)).to(x.device)  # [B, H]
    cols = (dx[:, None] + torch.arange(w)).to(x.device)  # [B, W]
    out = padded[
        torch.arange(b, device=x.device)[:, None, None, None],
        torch.arange(x.shape[1], device=x.device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]
    flip = (torch.rand(b, generator=gen) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on `(x, y)` in eval mode.

    Args:
        model (nn.Module):
            The classifier.
        x (torch.Tensor):
            Inputs.
        y (torch.Tensor):
            Labels.
        batch (int):
            Evaluation batch size.

    Returns:
        tuple[float, float]: loss and accuracy.
    """
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(y), batch):
        logits = model(x[i : i + batch])
        loss += float(F.cross_entropy(logits, y[i : i + batch], reduction="sum"))
        correct += int((logits.argmax(1) == y[i : i + batch]).sum())
    model.train()
    return loss / len(y), correct / len(y)


def fit_classifier(model: nn.Module, data: Splits, cfg: FitConfig, report: Report, device: str | torch.device = "cpu") -> None:
    """Train `model` on `data` with noisy labels, reporting metrics every epoch.

    Stops at the first non-finite mini-batch loss after reporting `train/loss = nan`, so the run is recorded
    as diverged.

    Args:
        model (nn.Module):
            Freshly initialised classifier (seed it before building it).
        data (Splits):
            Fixed splits with clean labels; noise is drawn here from `cfg.seed`.
        cfg (FitConfig):
            Training settings.
        report (Report):
            Called with one dict of metrics per epoch, e.g. `ray.tune.report`.
        device (str | torch.device):
            Where to train.
    """
    rng = np.random.default_rng([cfg.seed, 1])  # the noise draw: independent of init and order, fixed by seed
    y_train_noisy = symmetric_label_noise(data.y_train, cfg.label_noise, data.num_classes, rng)
    y_val_noisy = symmetric_label_noise(data.y_val, cfg.label_noise, data.num_classes, rng)
    t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    x_train, y_noisy, y_clean = t(data.x_train), t(y_train_noisy), t(data.y_train)
    x_val, y_val, x_test, y_test = t(data.x_val), t(y_val_noisy), t(data.x_test), t(data.y_test)
    model = model.to(device)
    opt = OPTIMIZERS[cfg.optimizer](model.parameters(), cfg)
    n = len(y_noisy)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    sched = None
    if cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    elif cfg.schedule != "constant":
        raise ValueError(f"unknown schedule {cfg.schedule!r}; expected 'constant' or 'cosine'")
    gen = torch.Generator().manual_seed(cfg.seed)
    if cfg.weissi_layers not in ("all", "unnormalised"):
        raise ValueError(f"unknown weissi_layers {cfg.weissi_layers!r}; expected 'all' or 'unnormalised'")
    penalised = weight_layers(model) if cfg.weissi_layers == "all" else unnormalised_layers(model)
    model.train()
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(n, generator=gen).to(device)
        loss_sum = torch.zeros((), device=device)
        hits_noisy = hits_clean = flooded = torch.zeros((), device=device)
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            xb = augment_images(x_train[idx], gen) if cfg.augment else x_train[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, y_noisy[idx])
            if not torch.isfinite(loss):
                report({"step": epoch, "train/loss": float("nan")})
                return
            opt.zero_grad(set_to_none=True)
            objective = flood(loss, cfg.flood_level)
            if cfg.weissi_lam1 or cfg.weissi_lam2:
                objective = objective + weissi(model, cfg.weissi_lam1, cfg.weissi_lam2, layers=penalised)
            objective.backward()
            if cfg.decoupled_weight_decay:
                with torch.no_grad():
                    for group in opt.param_groups:
                        for p in group["params"]:
                            p.mul_(1 - group["lr"] * cfg.decoupled_weight_decay)
            opt.step()
            if sched is not None:
                sched.step()
            with torch.no_grad():
                loss_sum += loss.detach()
                pred = logits.argmax(1)
                hits_noisy = hits_noisy + (pred == y_noisy[idx]).sum()
                hits_clean = hits_clean + (pred == y_clean[idx]).sum()
                flooded = flooded + (loss < cfg.flood_level)
        metrics = {
            "step": epoch,
            "train/loss": float(loss_sum) / steps_per_epoch,
            "train/acc_noisy": float(hits_noisy) / n,
            "train/acc_clean": float(hits_clean) / n,
            "train/flood_prop": float(flooded) / steps_per_epoch,
        }
        for split, (x, y) in {"val": (x_val, y_val), "test": (x_test, y_test)}.items():
            metrics[f"{split}/loss"], metrics[f"{split}/acc"] = evaluate(model, x, y, cfg.eval_batch)
        if cfg.log_weight_norms:
            metrics.update(weight_norms(model))
        if epoch == cfg.epochs and cfg.curvature_examples > 0:
            metrics.update(curvature(model, x_train, y_noisy, cfg.curvature_examples, cfg.eval_batch, cfg.seed))
        if epoch == cfg.epochs and (cfg.attack_eps or cfg.pgd_eps):
            lo, hi = float(x_train.min()), float(x_train.max())
            metrics.update(robustness(model, x_test, y_test, cfg, lo, hi))
        report(metrics)


def curvature(model: nn.Module, x: torch.Tensor, y: torch.Tensor, examples: int, batch: int, seed: int) -> dict[str, float]:
    """`train/lambda_max` on the first `examples` training points and full-batch `train/grad_norm_sq`.

    Both run in eval mode (batch norm uses running statistics) so they measure a fixed function.

    Args:
        model (nn.Module):
            The trained classifier.
        x (torch.Tensor):
            Training inputs.
        y (torch.Tensor):
            Training labels (noisy: the objective that was trained).
        examples (int):
            Subset size for lambda_max.
        batch (int):
            Chunk size for the full-batch gradient.
        seed (int):
            Seed of the power iteration's start vector.

    Returns:
        dict[str, float]: the two metrics.
    """
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    xs, ys = x[:examples], y[:examples]
    lam = top_hessian_eigenvalue(lambda: F.cross_entropy(model(xs), ys), params, iters=20, seed=seed)
    grads = [torch.zeros_like(p) for p in params]
    for i in range(0, len(y), batch):
        loss = F.cross_entropy(model(x[i : i + batch]), y[i : i + batch], reduction="sum") / len(y)
        for g, gi in zip(grads, torch.autograd.grad(loss, params), strict=True):
            g += gi
    model.train()
    return {"train/lambda_max": lam, "train/grad_norm_sq": float(sum((g * g).sum() for g in grads))}


def weight_norms(model: nn.Module) -> dict[str, float]:
    """Per-layer weight norms, their spread (max / min), log10 of their product and balance gaps D_l.

    D_l = ||W_l||^2 + ||b_l||^2 - ||W_{l+1}||^2 is conserved by gradient flow on a homogeneous chain (Du, Hu and
    Lee 2018) and by WEISSI; L2 drives it to 0.

    Args:
        model (nn.Module):
            The network.

    Returns:
        dict[str, float]: `weights/norm_<l>`, `weights/spread`, `weights/log10_prod_norm`, `weights/D_<l>`.
    """
    layers = weight_layers(model)
    with torch.no_grad():
        w = [float(m.weight.norm()) for m in layers]
        b = [float(m.bias.norm()) if m.bias is not None else 0.0 for m in layers]
    out = {f"weights/norm_{i}": v for i, v in enumerate(w)}
    out["weights/spread"] = max(w) / max(min(w), 1e-300)
    out["weights/log10_prod_norm"] = float(sum(math.log10(max(v, 1e-300)) for v in w))
    for i in range(len(w) - 1):
        out[f"weights/D_{i}"] = w[i] ** 2 + b[i] ** 2 - w[i + 1] ** 2
    return out


def robustness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: FitConfig, lo: float, hi: float) -> dict[str, float]:
    """ECE, input-gradient norm, FGSM and PGD accuracy on clean labels, inputs clipped to [lo, hi].

    Args:
        model (nn.Module):
            The trained classifier.
        x (torch.Tensor):
            Test inputs.
        y (torch.Tensor):
            Clean test labels.
        cfg (FitConfig):
            For `attack_eps`, `pgd_eps`, `pgd_steps` and `seed`.
        lo (float):
            Smallest valid input.
        hi (float):
            Largest valid input.

    Returns:
        dict[str, float]: `test/ece`, `test/input_grad_norm`, `test/fgsm_acc@<eps>`, `test/pgd_acc@<eps>`.
    """

    def acc(z: torch.Tensor) -> float:
        model.eval()
        with torch.no_grad():
            out = float((model(z).argmax(1) == y).float().mean())
        model.train()
        return out

    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(x), 1)
    model.train()
    out = {"test/ece": expected_calibration_error(probs.cpu(), y.cpu()), "test/input_grad_norm": input_grad_norm(model, x, y)}
    for eps in cfg.attack_eps:
        out[f"test/fgsm_acc@{eps:g}"] = acc(fgsm(model, x, y, eps, lo, hi))
    gen = torch.Generator().manual_seed(cfg.seed)
    for eps in cfg.pgd_eps:
        out[f"test/pgd_acc@{eps:g}"] = acc(pgd(model, x, y, eps, cfg.pgd_steps, eps / 4, lo, hi, gen))
    return out
