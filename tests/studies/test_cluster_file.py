"""`python -m studies check-cluster`: the shipped cluster.yaml passes; broken copies are refused in one line."""

from pathlib import Path

import pytest
import yaml

import studies.__main__ as cli

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((ROOT / "cluster.yaml").read_text())


def _check(tmp_path, capsys, cfg=None, text=None, results=None):
    path = tmp_path / "cluster.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(cfg))
    code = cli.main(["check-cluster", str(path), *(["--results", results] if results else [])])
    out = capsys.readouterr()
    return code, out.out, out.err.strip().splitlines()


def test_the_shipped_file_passes(capsys):
    assert cli.main(["check-cluster", str(ROOT / "cluster.yaml"), "--results", "/home/ubuntu/results"]) == 0
    out = capsys.readouterr()
    assert "accepted by Ray" in out.out and "GPU requests fit" in out.out and "head 'head' takes no trials" in out.out
    assert "writes every row to /home/ubuntu/results" in out.out and out.err == ""


def _edit(change):
    cfg = yaml.safe_load(yaml.safe_dump(SHIPPED))
    change(cfg)
    return cfg


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(frobnicate=1), "'frobnicate' was unexpected"),
        (lambda c: c.pop("provider"), "missing required field 'provider'"),
        (lambda c: c.update(head_node_type="nope"), "head_node_type"),
        (
            lambda c: [t["resources"].pop("GPU", None) for t in c["available_node_types"].values()],
            "asks for 1 GPU a trial at the full budget",
        ),  # attention_scaling: the largest ask
        (lambda c: c["head_start_ray_commands"].append("ray start --head --dashboard-host=0.0.0.0"), "loopback"),
        (lambda c: c["docker"].update(image="rayproject/ray:2.9.0-gpu"), "does not pin the installed Ray"),
        (lambda c: c["provider"].update(aws_secret_access_key="x"), "credential"),
    ],
)
def test_broken_copies_are_refused_with_one_line(tmp_path, capsys, change, message):
    code, _, err = _check(tmp_path, capsys, _edit(change))
    assert code == 2 and len(err) == 1 and err[0].startswith("studies: error:") and message in err[0], err


def test_result_uris_are_accepted_and_bad_ones_and_bad_files_are_named(tmp_path, capsys):
    code, out, err = _check(tmp_path, capsys, SHIPPED, results="s3://bucket/x")
    assert code == 0 and "writes every row to s3://bucket/x, which outlives the cluster" in out and not err
    code, _, err = _check(tmp_path, capsys, SHIPPED, results="ftp://host/x")
    assert code == 2 and "unknown scheme 'ftp'" in err[0]
    code, _, err = _check(tmp_path, capsys, text="cluster_name: [unclosed")
    assert code == 2 and "not valid YAML" in err[0]
    assert cli.main(["check-cluster", str(tmp_path / "missing.yaml")]) == 2
    assert "no such cluster file" in capsys.readouterr().err
