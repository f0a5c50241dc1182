import math

import numpy as np
import pytest
import torch
from tolerance import tol

from core.data.classification import Splits
from core.models import mlp, resnet18_cifar
from core.train.classifier import FitConfig, augment_images, fit_classifier

PER_EPOCH = {
    "step",
    "train/loss",
    "train/acc_noisy",
    "train/acc_clean",
    "train/flood_prop",
    "val/loss",
    "val/acc",
    "test/loss",
    "test/acc",
}


def tiny(n: int = 60, d: int = 6, k: int = 3, seed: int = 0) -> Splits:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 2

    def make(m):
        y = rng.integers(0, k, m)
        return (centres[y] + rng.normal(size=(m, d))).astype(np.float32), y.astype(np.int64)

    (xa, ya), (xb, yb), (xc, yc) = make(n), make(n // 2), make(n // 2)
    return Splits(xa, ya, xb, yb, xc, yc, k, "generated")


def run(cfg: FitConfig, data: Splits | None = None) -> list[dict]:
    data = data or tiny()
    torch.manual_seed(cfg.seed)
    out: list[dict] = []
    fit_classifier(mlp([data.x_train.shape[1], 16, data.num_classes]), data, cfg, out.append)
    return out


def test_reports_every_metric_every_epoch_and_curvature_at_the_end():
    out = run(FitConfig(epochs=3, batch_size=16, flood_level=0.2, label_noise=0.2, curvature_examples=20))
    assert [m["step"] for m in out] == [1, 2, 3]
    assert all(set(m) >= PER_EPOCH for m in out)
    assert {"train/lambda_max", "train/grad_norm_sq"} <= set(out[-1]) and "train/lambda_max" not in out[0]
    assert all(0 <= m["train/flood_prop"] <= 1 for m in out)


def test_same_seed_same_trajectory_and_seed_changes_it():
    cfg = FitConfig(epochs=2, batch_size=16, label_noise=0.3, seed=4, curvature_examples=0)
    assert run(cfg) == run(cfg)
    assert run(cfg) != run(FitConfig(epochs=2, batch_size=16, label_noise=0.3, seed=5, curvature_examples=0))


def test_flood_level_above_the_loss_climbs():
    # b far above the initial loss: every step is an ascent step, so the training loss rises and flood_prop = 1.
    out = run(FitConfig(epochs=4, batch_size=16, flood_level=50.0, lr=1e-2, curvature_examples=0))
    assert all(m["train/flood_prop"] == 1.0 for m in out)
    assert out[-1]["train/loss"] > out[0]["train/loss"]


def test_divergence_reports_nan_and_stops():
    out = run(FitConfig(epochs=50, batch_size=16, optimizer="sgd", lr=1e6, curvature_examples=0))
    assert math.isnan(out[-1]["train/loss"]) and len(out) < 50


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="unknown schedule"):
        run(FitConfig(epochs=1, schedule="step"))


def test_augment_matches_a_per_image_loop():
    x = torch.randn(5, 3, 8, 8)
    got = augment_images(x, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)  # replay the same draws: offsets, then flips
    dy, dx = torch.randint(0, 9, (5,), generator=gen), torch.randint(0, 9, (5,), generator=gen)
    flips = torch.rand(5, generator=gen) < 0.5
    for i in range(5):
        padded = torch.nn.functional.pad(x[i], (4, 4, 4, 4))
        want = padded[:, dy[i] : dy[i] + 8, dx[i] : dx[i] + 8]
        torch.testing.assert_close(got[i], want.flip(-1) if flips[i] else want)


def test_resnet18_cifar_shapes_and_trains_one_step():
    net = resnet18_cifar(10, width=8)
    x = torch.randn(4, 3, 32, 32)
    assert net(x).shape == (4, 10)
    rng = np.random.default_rng(0)
    img = lambda m: rng.normal(size=(m, 3, 32, 32)).astype(np.float32)  # noqa: E731
    lab = lambda m: rng.integers(0, 10, m)  # noqa: E731
    data = Splits(img(8), lab(8), img(4), lab(4), img(4), lab(4), 10, "generated")
    out: list[dict] = []
    cfg = FitConfig(
        epochs=1, batch_size=4, optimizer="sgd", momentum=0.9, lr=0.1, schedule="cosine", augment=True, curvature_examples=4
    )
    fit_classifier(resnet18_cifar(10, width=8), data, cfg, out.append)
    assert math.isfinite(out[-1]["train/lambda_max"])


@pytest.mark.gpu
def test_cuda_matches_cpu():
    data = tiny()
    cfg = FitConfig(epochs=2, batch_size=16, curvature_examples=0, seed=1)
    cpu = run(cfg, data)
    torch.manual_seed(cfg.seed)
    gpu: list[dict] = []
    fit_classifier(mlp([6, 16, 3]), data, cfg, gpu.append, device="cuda")
    assert gpu[-1]["test/acc"] == pytest.approx(cpu[-1]["test/acc"], abs=0.1)


def _trained(cfg: FitConfig) -> torch.Tensor:
    data = tiny()
    torch.manual_seed(cfg.seed)
    model = mlp([6, 16, 3])
    fit_classifier(model, data, cfg, lambda m: None)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_decoupled_decay_with_adam_is_torch_adamw(schedule):
    common = dict(epochs=3, batch_size=16, lr=1e-2, curvature_examples=0, schedule=schedule)
    ours = _trained(FitConfig(optimizer="adam", decoupled_weight_decay=0.1, **common))
    torch_adamw = _trained(FitConfig(optimizer="adamw", weight_decay=0.1, **common))
    coupled = _trained(FitConfig(optimizer="adam", weight_decay=0.1, **common))
    # the same update in another order (decay, then Adam's step): a float32 rounding of the weights per step at most
    steps = common["epochs"] * math.ceil(len(tiny().y_train) / common["batch_size"])
    torch.testing.assert_close(ours, torch_adamw, rtol=0, atol=tol(torch.float32, float(ours.abs().max()), ulps=steps))
    assert (ours - coupled).abs().max() > 1e-4


def test_weissi_in_the_loss_changes_training_and_zero_strength_does_not():
    common = dict(epochs=2, batch_size=16, optimizer="sgd", lr=0.1, curvature_examples=0)
    base = _trained(FitConfig(**common))
    assert torch.equal(_trained(FitConfig(weissi_lam1=0.0, weissi_lam2=0.0, **common)), base)
    assert (_trained(FitConfig(weissi_lam1=0.05, **common)) - base).abs().max() > 1e-4


def test_weight_norm_and_robustness_metrics_are_reported():
    out = run(
        FitConfig(epochs=2, batch_size=16, curvature_examples=0, log_weight_norms=True, attack_eps=(0.1,), pgd_eps=(0.1,))
    )
    first, last = out[0], out[-1]
    assert {"weights/norm_0", "weights/norm_1", "weights/spread", "weights/log10_prod_norm", "weights/D_0"} <= set(first)
    assert math.isclose(first["weights/log10_prod_norm"], math.log10(first["weights/norm_0"] * first["weights/norm_1"]))
    assert {"test/ece", "test/input_grad_norm", "test/fgsm_acc@0.1", "test/pgd_acc@0.1"} <= set(last)
    assert last["test/pgd_acc@0.1"] <= last["test/acc"] + 1e-9 and "test/ece" not in first


def test_unnormalised_layers_skip_convolutions_followed_by_batch_norm():
    from core.regularizers.weissi import unnormalised_layers, weight_layers

    net = resnet18_cifar(10, width=4)
    assert unnormalised_layers(net) == [net[-1]]  # only the classifier head
    m = mlp([5, 7, 3])
    assert unnormalised_layers(m) == weight_layers(m)
