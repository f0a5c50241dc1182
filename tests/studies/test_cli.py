"""Bad input: one line on stderr, exit 2, nothing written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import studies
import studies.__main__ as cli
from studies import Claim, Study

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studies", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope"], "unknown study 'nope'"),
        (["run", "flooding", "--budget", "huge"], "unknown budget 'huge'"),
        (["status", "nope"], "unknown study 'nope'"),
        (["frobnicate"], "invalid choice"),
        (["run", "flooding", "--gpus-per-trial", "1.5"], "give a share of one GPU in (0, 1]"),
        (["run", "flooding", "--gpus-per-trial", "0"], "give a share of one GPU in (0, 1]"),
        (["run", "flooding", "--budget", "full", "--gpus-per-trial", "0.5"], "the full budget keeps each study's own"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(args, message, tmp_path):
    res = run_cli(*args, *(["--results", str(tmp_path)] if args[0] in ("run", "status") else []))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("studies: error:") and message in lines[0], res.stderr
    assert not any(tmp_path.iterdir())


def _malformed(**changes):
    base = dict(
        name="broken",
        budget="smoke",
        article="-",
        trainable=print,
        param_space={"seed": {"grid_search": [0]}},
        scientific=(),
        claims=(Claim("B1", "s", "r", "empirical", lambda t: None),),
    )
    return Study(**{**base, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"param_space": {"seed": {"grid_search": []}}}, "empty search space"),
        ({"claims": ()}, "declares no claims"),
        ({"claims": (Claim("B1", "s", "r", "guess", print),)}, "kind outside"),
        ({"scientific": ("lr",)}, "configs lack keys ['lr']"),
        ({"resources": {"tpu": 1}}, "resources may name cpu and gpu only"),
    ],
)
def test_malformed_study_is_refused_in_one_line(monkeypatch, capsys, tmp_path, changes, message):
    module = type(sys)("broken")
    module.get_study = lambda budget: _malformed(budget=budget, **changes)
    monkeypatch.setattr(studies, "discover", lambda: {"broken": module})
    monkeypatch.setattr(cli, "discover", lambda: {"broken": module})
    assert cli.main(["run", "broken", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_list_names_studies_claims_and_costs():
    res = run_cli("list")
    assert res.returncode == 0, res.stderr
    assert "flooding:" in res.stdout and "F1 F2 F3 F4 F5 F-D1 F6 F-P1 F-C1 F-P2" in res.stdout and "120 trials" in res.stdout


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1:9", "cannot reach Ray at 127.0.0.1:9"),
        ("nowhere", "is not 'auto', 'host:port'"),
        ("auto", "cannot join Ray at auto"),
    ],
)
def test_an_unreachable_cluster_fails_fast_naming_the_address(address, message, tmp_path):
    import time

    t0 = time.monotonic()
    res = run_cli("run", "flooding", "--budget", "smoke", "--address", address, "--results", str(tmp_path))
    assert res.returncode == 2 and time.monotonic() - t0 < 60
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("studies: error:") and message in lines[0], res.stderr
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU: the full budget would run")
def test_a_gpu_request_no_node_can_meet_is_refused_before_anything_is_written(tmp_path):
    kept = tmp_path / "flooding" / "trials.parquet"
    kept.parent.mkdir()
    kept.write_bytes(b"an earlier run's table")
    res = run_cli("run", "flooding", "--budget", "full", "--results", str(tmp_path))
    lines = res.stderr.strip().splitlines()  # Ray's own start-up notice may come first; ours is one line, the last
    assert res.returncode == 2 and [ln for ln in lines if ln.startswith("studies: error:")] == lines[-1:], res.stderr
    assert "asks for 0.25 GPU a trial, but no node of the embedded Ray (this machine) has more than 0" in lines[-1]
    assert kept.read_bytes() == b"an earlier run's table" and sorted(os.listdir(kept.parent)) == ["trials.parquet"]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_share_is_refused_in_one_line_on_a_machine_without_a_gpu(tmp_path):
    res = run_cli("run", "all", "--gpus-per-trial", "0.125", "--results", str(tmp_path))
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith("studies: error: --gpus-per-trial 0.125: this machine has no CUDA GPU")
    assert not any(tmp_path.iterdir())
