"""Damaged or foreign tables, and an analysis that only reads the results.

A truncated `trials.parquet` or metrics file, or a Parquet file with other columns in its place, is refused by
`studies run`, `studies status` and `python -m analysis` in one line naming the file and what to do, exit 2, with
nothing written or removed. `python -m analysis` writes its verdicts under `--out`, never into `--results`.
"""

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

import analysis.report
from analysis.__main__ import main as analysis_main
from analysis.schema import VERDICT_COLUMNS, read_trials, read_verdicts, upsert_trials, write_metrics
from analysis.store import ResultsError
from studies import _synthetic
from studies.__main__ import main as studies_main
from studies._plan import plan
from studies._runner import run

pytestmark = pytest.mark.slow  # the command lines on damaged results: the second tier

ROOT = Path(__file__).resolve().parents[2]
TRIAL = "t0-s0"
"""The one trial of the planted flooding table whose metrics file the metrics cases damage."""
COMMANDS = {
    "run": ["studies", "run", "flooding", "--budget", "smoke", "--results", "{results}"],
    "status": ["studies", "status", "flooding", "--results", "{results}"],
    "analysis": ["analysis", "--results", "{results}", "--out", "{out}"],
}
CASES = [(cmd, "trials", damage) for cmd in COMMANDS for damage in ("truncated", "foreign")]
"""(command, file, damage), each through its command line: the read comes before Ray starts or anything is written."""
IN_PROCESS = [(cmd, "metrics", damage) for cmd in ("status", "analysis") for damage in ("truncated", "foreign")]
"""The same checks on a damaged metrics file, through the commands' `main` (the command line costs seconds of
imports). `run` never reads metrics files."""
AT_ONCE = 2
"""Command lines run side by side (the CI machine has 2 cores)."""


def _parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
    return buf.getvalue()


def _plant(results: Path, file: str, damage: str) -> Path:
    """A flooding results folder whose trial table (or one trial's metrics file) is damaged; returns that file."""
    study_dir = results / "flooding"
    row = {"study": "flooding", "budget": "smoke", "phase": "main", "arm": "a", "trial_id": TRIAL, "seed": 0, "status": "ok"}
    upsert_trials(study_dir, [row])
    write_metrics(study_dir, TRIAL, [(1, 0, "train/loss", 0.5)])
    target = study_dir / "trials.parquet" if file == "trials" else study_dir / "metrics" / f"{TRIAL}.parquet"
    whole = target.read_bytes()
    foreign = _parquet(pd.DataFrame({"name": ["x", "y"], "size": [1.0, 2.0]}))
    target.write_bytes(whole[: len(whole) // 2] if damage == "truncated" else foreign)
    return target


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under `root`: (size, mtime_ns) of a file, `dir` for a folder."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            found[os.path.relpath(os.path.join(folder, d), root)] = "dir"
        for f in files:
            st = os.stat(os.path.join(folder, f))
            found[os.path.relpath(os.path.join(folder, f), root)] = (st.st_size, st.st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Every case's command line, `AT_ONCE` at a time: case -> (exit status, stderr, damaged file, its bytes before,
    snapshot before, snapshot after)."""
    root = tmp_path_factory.mktemp("damaged")
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONPATH": str(ROOT)}
    done = {}
    for i in range(0, len(CASES), AT_ONCE):
        started = {}
        for case in CASES[i : i + AT_ONCE]:
            where = root / "-".join(case)
            target = _plant(where / "results", case[1], case[2])
            args = [a.format(results=where / "results", out=where / "reports") for a in COMMANDS[case[0]]]
            proc = subprocess.Popen(
                [sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            started[case] = (proc, where, target, target.read_bytes(), snapshot(where))
        for case, (proc, where, target, data, before) in started.items():
            try:
                _, err = proc.communicate(timeout=180)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            done[case] = (proc.returncode, err, target, data, before, snapshot(where))
    return done


def _check(case, returncode: int, err: str, target: Path, data: bytes, before: dict, after: dict) -> None:
    lines = err.strip().splitlines()
    prefix = "analysis: error: " if case[0] == "analysis" else "studies: error: "
    assert returncode == 2 and len(lines) == 1 and lines[0].startswith(prefix), err[-3000:]
    assert str(target) in lines[0]
    why = "is damaged (" if case[2] == "truncated" else "is not a claimbench "
    assert why in lines[0] and "--force" in lines[0], lines[0]
    assert target.read_bytes() == data  # the damaged file is kept as it was
    assert after == before  # nothing written, removed or touched: no lock, no metadata, no reports folder


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_a_damaged_or_foreign_trial_table_is_one_line_and_nothing_is_touched(outcomes, case):
    _check(case, *outcomes[case])


@pytest.mark.parametrize("case", IN_PROCESS, ids=["-".join(c) for c in IN_PROCESS])
def test_a_damaged_or_foreign_metrics_file_is_one_line_and_nothing_is_touched(tmp_path, capsys, case):
    target = _plant(tmp_path / "results", case[1], case[2])
    data, before = target.read_bytes(), snapshot(tmp_path)
    results, out = str(tmp_path / "results"), str(tmp_path / "reports")
    main = analysis_main if case[0] == "analysis" else studies_main
    args = ["--results", results, "--out", out] if case[0] == "analysis" else ["status", "flooding", "--results", results]
    returncode = main(args)
    _check(case, returncode, capsys.readouterr().err, target, data, before, snapshot(tmp_path))


def test_read_trials_refuses_a_foreign_table_rather_than_reading_it_as_empty(tmp_path):
    (tmp_path / "trials.parquet").write_bytes(_parquet(pd.DataFrame({"trial_id": ["a"], "other": [1]})))
    with pytest.raises(ResultsError, match=r"trials.parquet is not a claimbench trials table \(it lacks study, budget"):
        read_trials(tmp_path)


FORCED = (
    "import sys; from studies import _synthetic; from studies._runner import run; "
    "run(_synthetic.get_study(seeds=1, steps=1), sys.argv[1], force=True)"
)
"""`run --force` in its own process: its embedded Ray ends with it (a Ray left running would be joined by `--address
auto` in later tests)."""


def test_run_with_force_keeps_a_damaged_table_aside_and_starts_afresh(tmp_path):
    study_dir = tmp_path / "synthetic"
    study_dir.mkdir()
    (study_dir / "trials.parquet").write_bytes(b"PAR1 half a table")
    study = _synthetic.get_study(seeds=1, steps=1)
    ray_before = ray.is_initialized()  # another test's session Ray may already be up in this process
    with pytest.raises(ResultsError, match="synthetic/trials.parquet is damaged"):
        run(study, tmp_path)
    assert sorted(os.listdir(study_dir)) == ["trials.parquet"] and ray.is_initialized() == ray_before  # before Ray starts
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONPATH": str(ROOT)}
    forced = subprocess.run(
        [sys.executable, "-c", FORCED, str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert forced.returncode == 0, forced.stderr[-3000:]
    (aside,) = study_dir.glob("trials.parquet.damaged-*")
    assert aside.read_bytes() == b"PAR1 half a table" and f"kept it as {aside}" in forced.stderr
    assert set(read_trials(study_dir)["trial_id"]) == {p.trial_id for p in plan(study)}


def _synthetic_results(results: Path) -> None:
    """The synthetic study's tables as a run writes them, made directly (no Ray): the effect arm 0.5 higher."""
    study = _synthetic.get_study()
    rows = []
    for p in plan(study):
        effect, seed = p.config["effect"], p.seed
        score = effect + 0.01 * seed + (0.03 * (3 * seed % 4) if effect else 0.0)  # paired differences 0.5 to 0.58
        rows.append(
            {
                "study": "synthetic",
                "budget": "smoke",
                "phase": "main",
                "arm": p.arm,
                "trial_id": p.trial_id,
                "config_hash": p.config_hash,
                "seed": seed,
                "status": "ok",
                "config/effect": effect,
                "config/seed": seed,
                "test/score": score,
            }
        )
        write_metrics(results / "synthetic", p.trial_id, [(1, 0, "test/score", score)])
    upsert_trials(results / "synthetic", rows)


def test_the_analysis_writes_verdicts_under_out_and_nothing_into_the_results(tmp_path, monkeypatch, capsys):
    results, out = tmp_path / "results", tmp_path / "reports"
    _synthetic_results(results)
    monkeypatch.setattr(analysis.report, "discover", lambda: {"synthetic": _synthetic.get_study()})
    before = snapshot(results)
    modes = {p: p.stat().st_mode for p in [results, *results.rglob("*")]}
    for p in modes:  # read-only for a user without root; as root, the snapshot below is what tells
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        assert analysis_main(["--results", str(results), "--out", str(out)]) == 0, capsys.readouterr().err
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert snapshot(results) == before  # not a file written, touched or removed under --results
    verdicts = pq.read_table(out / "synthetic" / "verdicts.parquet")
    assert verdicts.column_names == VERDICT_COLUMNS
    assert read_verdicts(out / "synthetic").set_index("claim_id").loc["S1", "verdict"] == "SUPPORTED"
    assert (out / "report.html").is_file() and not list(results.rglob("verdicts*"))
