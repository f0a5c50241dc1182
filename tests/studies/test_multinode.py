"""A Ray cluster of a head and two GPU workers on this machine (`ray.cluster_utils.Cluster`), joined with an address.

The head takes no trials (as in cluster.yaml); each worker advertises 2 CPUs and 2 logical GPUs. Every process
binds 127.0.0.1 (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, set in tests/conftest.py before Ray starts). The driver is
a subprocess running the runner with `address=`, exactly what `python -m studies run … --address` does.
"""

import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from analysis.schema import read_metrics, read_trials
from studies import _synthetic
from studies._plan import plan
from studies._runner import run

pytestmark = pytest.mark.slow  # a Ray cluster of three nodes on one machine: the second tier

ROOT = Path(__file__).resolve().parents[2]
SCIENCE = ["trial_id", "config_hash", "seed", "status", "train/loss", "val/score", "test/score"]


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [c.add_node(num_cpus=2, num_gpus=2) for _ in range(2)]
    c.wait_for_nodes()
    assert c.address.startswith("127.0.0.1:") and all(w.node_ip_address == "127.0.0.1" for w in workers)
    yield c, workers
    c.shutdown()


def _driver(results: Path, address: str, study_args: dict, **popen) -> subprocess.Popen:
    code = (
        "import sys; from studies import _synthetic; from studies._runner import run; "
        f"print(run(_synthetic.get_study(**{study_args!r}), sys.argv[1], address=sys.argv[2]))"
    )
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, str(results), address], cwd=ROOT, env=env, text=True, **popen)


def _node(node_id: str) -> float:
    return float(int(node_id[:12], 16))


def test_a_cluster_run_gives_each_trial_its_gpu_and_equals_the_embedded_run(tmp_path, cluster, ray_session):
    c, workers = cluster
    args = dict(seeds=3, steps=2, sleep=1.5, gpu=0.5, report_devices=True, max_concurrent=None)  # ~3 s a trial
    proc = _driver(tmp_path / "cluster", c.address, args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    trials = read_trials(tmp_path / "cluster" / "synthetic")
    assert len(trials) == 6 and (trials["status"] == "ok").all()
    # Each trial got one GPU id from Ray (half a GPU), and CUDA_VISIBLE_DEVICES showed exactly that one.
    assert (trials["device/gpus"] == 1).all() and (trials["device/visible_is_assigned"] == 1).all()
    assert set(trials["device/gpu_id"]) <= {0.0, 1.0}
    if not torch.cuda.is_available():
        assert (trials["device/on_cuda"] == 0).all()  # logical GPUs on a machine without CUDA: tensors stay on the CPU
    # Trials ran on the workers only, never on the head (no CPUs there); a worker fits 2 trials, so whenever more than 2
    # ran at once both workers were used. (Whether Ray starts a third trial before the first ends depends on the
    # machine's load: in one CI run all six ran on one worker, two at a time.)
    nodes = set(trials["device/node"])
    assert nodes <= {_node(w.node_id) for w in workers}
    start, end = (pd.to_datetime(trials[c]) for c in ("started_at", "finished_at"))
    overlap = max(int(((start <= t) & (end > t)).sum()) for t in start)
    if overlap > 2:
        assert len(nodes) == 2
    print(f"multi-node: {len(trials)} trials on {len(nodes)} worker node(s), at most {overlap} at once, GPU ids "
          f"{sorted(int(i) for i in trials['device/gpu_id'].unique())}")  # fmt: skip
    # The same study embedded (no GPUs asked: the resource request is not part of a config): same hashes, same metrics.
    local = run(_synthetic.get_study(**{**args, "gpu": 0.0}), tmp_path / "embedded")
    assert local["ok"] == 6
    embedded = read_trials(tmp_path / "embedded" / "synthetic")
    assert (embedded["device/gpus"] == 0).all() and (embedded["device/on_cuda"] == 0).all()
    assert (embedded["device/cuda_initialized"] == 0).all()  # a CPU trial never touches CUDA
    a, b = (t[SCIENCE].sort_values("trial_id").reset_index(drop=True) for t in (trials, embedded))
    assert a.equals(b)
    ma, mb = (
        read_metrics(d).query("not metric.str.startswith('device/')").sort_values(["trial_id", "metric", "step"])
        for d in (tmp_path / "cluster" / "synthetic", tmp_path / "embedded" / "synthetic")
    )
    assert ma.reset_index(drop=True).equals(mb.reset_index(drop=True))


def test_a_trial_larger_than_any_node_is_refused_naming_the_cluster(tmp_path, cluster):
    c, _ = cluster
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONPATH": str(ROOT)}
    kept = tmp_path / "flooding" / "trials.parquet"
    kept.parent.mkdir()
    kept.write_bytes(b"an earlier run's table")
    cmd = ["run", "flooding", "--budget", "full", "--address", c.address, "--results", str(tmp_path)]  # 4 CPUs a trial
    res = subprocess.run(
        [sys.executable, "-m", "studies", *cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    lines = res.stderr.strip().splitlines()  # Ray's own start-up notice may come first; ours is one line, the last
    assert res.returncode == 2 and [ln for ln in lines if ln.startswith("studies: error:")] == lines[-1:], res.stderr
    assert f"asks for 4 CPU a trial, but no node of Ray at {c.address} has more than 2" in lines[-1]
    assert kept.read_bytes() == b"an earlier run's table" and os.listdir(kept.parent) == ["trials.parquet"]


def test_losing_a_worker_node_mid_study_retries_its_trials_and_records_each_once(tmp_path, cluster):
    """Run last in this module: it removes a worker for good."""
    c, workers = cluster
    live = tmp_path / "live"  # a file per training trial, named after its node
    live.mkdir()
    args = dict(seeds=4, steps=6, sleep=0.5, gpu=0.5, report_devices=True, max_concurrent=None, fail_seed=0, diverge_seed=1,
                live_dir=str(live))  # fmt: skip
    planned = {p.trial_id for p in plan(_synthetic.get_study(**args))}
    proc = _driver(tmp_path, c.address, args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    study_dir = tmp_path / "synthetic"
    # Wait until the raising and the diverging trial (second wave, ~1 s each) are recorded, so the node loss hits
    # only trials that are still training: those must be retried, the recorded ones must not run again.
    deadline = time.monotonic() + 240
    while (
        time.monotonic() < deadline
        and proc.poll() is None
        and not {"failed", "diverged"} <= set(read_trials(study_dir)["status"])
    ):
        time.sleep(0.05)
    # Fail a worker that has a trial training right now (the remaining trials may all sit on one node).
    hosting = []
    while time.monotonic() < deadline and proc.poll() is None and not hosting:
        running = {f.name.split("-")[0] for f in live.iterdir()}
        hosting = [w for w in workers if w.node_id in running]
        time.sleep(0.02)
    before = read_trials(study_dir)
    assert len(before) < len(planned) and hosting, "the node loss must land mid-study, on a node that has a trial"
    lost = hosting[0]
    c.remove_node(lost)  # kills the raylet and every trial worker on that node
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    summary = ast.literal_eval(out.strip().splitlines()[-1])  # the dict the driver printed
    retried = re.findall(r"trial (\S+): worker lost", err)
    after = read_trials(study_dir).set_index("trial_id")
    by_seed = after[after["config/effect"] > 0].reset_index().set_index("seed")
    print(
        f"node loss: planned {len(planned)}, recorded before the loss {len(before)}, recorded {len(after)}, "
        f"retried {summary['retried']} ({len(set(retried))} distinct trials), "
        f"duplicated {len(after) - after.index.nunique()}, lost {len(planned - set(after.index))}; "
        f"statuses {after['status'].value_counts().to_dict()}"
    )
    assert summary["retried"] >= 1 and len(retried) == summary["retried"]
    assert sorted(after.index) == sorted(planned)  # every planned trial, exactly once
    assert by_seed.loc[0, "status"] == "failed" and "planted failure at step 2" in by_seed.loc[0, "error"]
    assert by_seed.loc[1, "status"] == "diverged"
    assert not set(by_seed.loc[[0, 1], "trial_id"]) & set(retried)  # a raising or diverging trial is never retried
    kept = after.loc[before["trial_id"], "finished_at"]
    assert list(kept) == list(before["finished_at"])  # trials recorded before the loss were not run again
    ok = after[after["status"] == "ok"]
    assert len(ok) == len(planned) - 2 and set(ok["device/node"]) <= {_node(w.node_id) for w in workers}
    # A retried trial's metrics are those of its last attempt only: each step once.
    metrics = read_metrics(study_dir, list(ok.index))
    assert not metrics.duplicated(["trial_id", "step", "series", "metric"]).any()
    assert (metrics[metrics["metric"] == "test/score"].groupby("trial_id")["step"].nunique() == 6).all()


@pytest.mark.gpu
def test_on_a_real_gpu_trials_run_on_their_assigned_device_and_cpu_trials_never_touch_cuda(tmp_path, ray_session):
    """Needs CUDA (skipped elsewhere): the embedded Ray sees the machine's GPUs and hands each trial its share."""
    gpu = run(_synthetic.get_study(seeds=2, steps=2, gpu=0.5, report_devices=True), tmp_path / "gpu")
    cpu = run(_synthetic.get_study(seeds=2, steps=2, report_devices=True), tmp_path / "cpu")
    assert gpu["ok"] == cpu["ok"] == 4
    on_gpu, on_cpu = (read_trials(tmp_path / d / "synthetic") for d in ("gpu", "cpu"))
    assert (on_gpu["device/gpus"] == 1).all() and (on_gpu["device/visible_is_assigned"] == 1).all()
    assert (on_gpu["device/on_cuda"] == 1).all()
    assert (on_cpu["device/on_cuda"] == 0).all() and (on_cpu["device/cuda_initialized"] == 0).all()
