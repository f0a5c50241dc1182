import math

import numpy as np
import pytest
import torch

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
