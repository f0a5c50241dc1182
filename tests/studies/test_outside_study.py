"""A study in a file outside the package: `python -m studies run|list|status PATH` and `python -m analysis` on its results.

Bad files are one line and exit 2 before anything is written; the tutorial's study (docs/examples/label_smoothing.py,
docs/writing-a-study.md) lists from anywhere, and at smoke runs through the real CLI into verdicts of the report.
"""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import studies.__main__ as cli
from analysis.claims import StudyFileError, file_sha256, import_study_file
from analysis.load import outside_studies

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "examples" / "label_smoothing.py"
CLAIM_IDS = ["LS1", "LS2", "LS-C1"]

# A study of no dependencies beyond the package: planted numbers, one claim, nothing trained.
TINY = """
from analysis.verdict import INCONCLUSIVE, Verdict
from studies import Claim, Study


def train(config):
    from ray import tune

    tune.report({"step": 1, "test/score": config["effect"] + 0.01 * config["seed"]})


def get_study(budget):
    return Study(
        name="whatever",
        budget=budget,
        article="a planted effect",
        trainable=train,
        param_space={"effect": {"grid_search": [0.0, 1.0]}, "seed": {"grid_search": [0, 1]}},
        scientific=("effect",),
        claims=(Claim("T1", "s", "r", "empirical", lambda t: Verdict(INCONCLUSIVE, "planted")),),
    )
"""


def _one_line(capsys, code: int) -> str:
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("studies: error:"), err
    return err[0]


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("cmd", ["run", "status"])
def test_a_missing_file_is_one_line(cmd, capsys, tmp_path):
    line = _one_line(capsys, cli.main([cmd, str(tmp_path / "absent.py"), "--results", str(tmp_path / "r")]))
    assert f"no study file at {tmp_path / 'absent.py'}" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = 1\n", "is not a study: it defines no get_study(budget)"),
        ("def get_study(budget):\n    return 42\n", "is not a study: get_study('smoke') returned int, not a Study"),
        ("import no_such_module_here\n", "is not a study: importing it raised ModuleNotFoundError"),
        ("def get_study(budget):\n    raise KeyError(budget)\n", "is not a study: get_study('smoke') raised KeyError"),
    ],
    ids=["no-get_study", "not-a-Study", "import-fails", "get_study-raises"],
)
def test_a_module_that_is_not_a_study_is_one_line(text, message, capsys, tmp_path):
    path = _write(tmp_path, "mine.py", text)
    for argv in (["run", str(path), "--results", str(tmp_path / "r")], ["list", str(path)]):
        line = _one_line(capsys, cli.main(argv))
        assert f"{path} {message}" in line, line
    assert not (tmp_path / "r").exists()


def test_a_file_named_like_a_built_in_study_is_refused(capsys, tmp_path):
    path = _write(tmp_path, "flooding.py", TINY)
    line = _one_line(capsys, cli.main(["run", str(path), "--results", str(tmp_path / "r")]))
    assert "its name 'flooding' is a built-in study's; rename the file" in line
    with pytest.raises(StudyFileError, match="built-in"):
        import_study_file(path)


def test_list_and_status_take_a_path(capsys, tmp_path):
    path = _write(tmp_path, "tiny_study.py", TINY)
    assert cli.main(["list", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"tiny_study ({path}): a planted effect")  # named after the file, not its Study's name
    assert "claims: T1" in out and "smoke     4 trials" in out
    assert cli.main(["status", str(path), "--results", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().out.strip() == f"tiny_study: no results in {tmp_path / 'r' / 'tiny_study'}"


def test_the_tutorial_lists_from_a_folder_outside_the_repository(tmp_path):
    copy = tmp_path / "label_smoothing.py"
    shutil.copy(TUTORIAL, copy)
    res = subprocess.run([sys.executable, "-m", "studies", "list", "label_smoothing.py"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"label_smoothing ({copy}):")
    assert lines[1] == f"  claims: {' '.join(CLAIM_IDS)}"
    assert [ln.split()[0] for ln in lines[2:]] == ["smoke", "local", "full"]


def test_a_study_files_functions_reach_workers_by_value(tmp_path):
    """A worker cannot import a study file's private module: its trainable must travel by value."""
    from ray import cloudpickle

    from studies import load
    from studies._ray import pickle_study_files_by_value

    study = load(str(_write(tmp_path, "tiny_study.py", TINY)), "smoke")
    pickle_study_files_by_value()
    blob = tmp_path / "trainable.pkl"
    blob.write_bytes(cloudpickle.dumps(study.trainable))
    code = (
        "import sys, ray.cloudpickle as cp; "
        f"f = cp.loads(open({str(blob)!r}, 'rb').read()); "
        "print(f.__module__ in sys.modules, f.__name__)"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["False", "train"]


def _recorded(results: Path, name: str, file: str, sha: str) -> None:
    meta = results / name / "metadata"
    meta.mkdir(parents=True)
    record = {"study": name, "budget": "smoke", "started_at": "2026-12-05T00:00:00+00:00"}
    (meta / "smoke.json").write_text(json.dumps(record | {"study_file": file, "study_sha256": sha}))


def test_the_analysis_finds_recorded_files_and_names_gone_or_changed_ones(tmp_path):
    results = tmp_path / "results"
    here = _write(tmp_path, "kept.py", TINY)
    changed = _write(tmp_path, "changed.py", TINY)
    _recorded(results, "kept", str(here), file_sha256(here))
    _recorded(results, "changed", str(changed), "0" * 64)
    _recorded(results, "gone", str(tmp_path / "gone.py"), "0" * 64)
    (results / "other").mkdir()  # a folder without a recorded study file is not the analysis's business
    files, notes = outside_studies(results)
    assert files == {"changed": changed, "kept": here}
    assert len(notes) == 2
    assert notes[0].startswith("changed: ") and "changed since its run (sha256 000000000000 then" in notes[0]
    gone = tmp_path / "gone.py"
    assert notes[1] == f"gone: its study file {gone} is gone; not reported (name it with --study PATH if it moved)"
    (tmp_path / "elsewhere").mkdir()
    moved = _write(tmp_path / "elsewhere", "gone.py", TINY)  # the gone file, moved: named with --study
    files, notes = outside_studies(results, [moved])
    assert files["gone"] == moved and len(notes) == 2 and "gone: " in notes[1] and "changed since its run" in notes[1]


def test_the_analysis_refuses_a_bad_study_argument_in_one_line(tmp_path):
    (tmp_path / "results").mkdir()
    for arg, message in [(tmp_path / "absent.py", "no study file at"), (ROOT / "studies" / "weissi.py", "built-in study's")]:
        res = subprocess.run([sys.executable, "-m", "analysis", "--results", str(tmp_path / "results"), "--out",
                              str(tmp_path / "out"), "--study", str(arg)], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)  # fmt: skip
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("analysis: error:"), res.stderr
        assert message in lines[0]
        assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_tutorial_runs_at_smoke_from_its_path_and_its_verdicts_reach_the_report(tmp_path):
    results, out = tmp_path / "results", tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "studies", "run", "docs/examples/label_smoothing.py", "--budget", "smoke",
                          "--results", str(results)], cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ran 6 ok, 0 diverged, 0 failed" in run.stdout, run.stdout
    meta = json.loads((results / "label_smoothing" / "metadata" / "smoke.json").read_text())
    assert meta["study_file"] == str(TUTORIAL) and len(meta["study_sha256"]) == 64
    done = subprocess.run([sys.executable, "-m", "analysis", "--results", str(results), "--out", str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    verdicts = pd.read_parquet(out / "label_smoothing" / "verdicts.parquet")
    assert verdicts["claim_id"].tolist() == CLAIM_IDS
    assert set(verdicts["study"]) == {"label_smoothing"} and set(verdicts["budget"]) == {"smoke"}
    kinds = dict(zip(verdicts["claim_id"], verdicts["kind"], strict=True))
    assert kinds == {"LS1": "empirical", "LS2": "empirical", "LS-C1": "negative_control"}
    assert "label_smoothing/smoke LS-C1:" in done.stdout
