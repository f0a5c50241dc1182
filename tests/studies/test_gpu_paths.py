"""Trainables that hold a GPU put their work on it: with `trial_device()` saying `cuda` (as Ray's GPU share makes
it), each runs its tensors on CUDA and gives what it gives on the CPU. Collected everywhere, run only with CUDA."""

import math

import pytest
import torch

from studies import attention_scaling, embedding_dim, pg_vs_zo

pytestmark = pytest.mark.gpu


def _on(monkeypatch, module, device: str) -> None:
    monkeypatch.setattr(module, "trial_device", lambda: device)


def _spy(monkeypatch, module, name: str, seen: list) -> None:
    """Record the device of the first tensor argument of every call of `module.name`."""
    real = getattr(module, name)

    def wrapped(*args, **kwargs):
        seen.append(next(a.device.type for a in args if isinstance(a, torch.Tensor)))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)


def test_zo_estimator_statistics_run_on_the_gpu_and_equal_the_cpu(monkeypatch):
    config = {"dataset": "digits", "stat_dtype": "float64", "seed": 0, "model": "softmax", "q_grid": [1, 4],
              "points": 1, "reps": 2, "stat_sigma": 1e-3, "steps_per_point": 5}  # fmt: skip
    cpu, gpu, seen = [], [], []
    pg_vs_zo.estimator_stats(config, cpu.append)
    _on(monkeypatch, pg_vs_zo, "cuda")
    _spy(monkeypatch, pg_vs_zo, "zo_grad", seen)
    pg_vs_zo.estimator_stats(config, gpu.append)
    assert seen and set(seen) == {"cuda"}
    # float64 on both devices; only the order of reductions differs, far below these statistics' scale (~0.1-1)
    for key, want in cpu[0].items():
        assert gpu[0][key] == pytest.approx(want, rel=1e-9, abs=1e-12), key


def test_decode_latency_is_timed_on_the_gpu(monkeypatch):
    seen, rows = [], []
    _on(monkeypatch, attention_scaling, "cuda")
    _spy(monkeypatch, attention_scaling, "recurrent_linear_step", seen)
    attention_scaling.decode({"d_head": 16, "max_pos": 64, "every": 32}, rows.append)
    assert set(seen) == {"cuda"} and [r["step"] for r in rows] == [0, 32, 64]
    assert all(r[k] > 0 and math.isfinite(r[k]) for r in rows for k in r if k.startswith("decode/"))


def test_planted_tree_fits_run_on_the_gpu_and_equal_the_cpu(monkeypatch):
    from core.embeddings import skipgram

    config = {"b": 2, "depth": 4, "dims": [2, 4], "steps": 200, "lr": 0.05, "seed": 0}
    cpu, gpu, seen = [], [], []
    embedding_dim.tree_fit(config, cpu.append)
    _on(monkeypatch, embedding_dim, "cuda")
    _spy(monkeypatch, skipgram, "fit_fullsoftmax", seen)
    embedding_dim.tree_fit(config, gpu.append)
    assert set(seen) == {"cuda"}
    for a, b in zip(cpu, gpu, strict=True):
        assert a.keys() == b.keys()
        for key, want in a.items():
            # float32 Adam over 200 steps on a 16 x 16 table: reductions ordered differently on the two devices move
            # the KL (nats, ~0.01-1) by a few float32 ulps a step; 1e-4 of the entropy scale bounds that drift
            assert b[key] == pytest.approx(want, rel=1e-3, abs=1e-4), key
