"""`python -m studies check-cluster`: the shipped cluster.yaml passes; broken copies are refused in one line."""

from pathlib import Path

import pytest
import yaml

import studies.__main__ as cli
from studies._cluster import find_credentials

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


# Made-up credentials, assembled so that the file itself holds none whole.
AKID = "AKIA" + "Q3EGRKVXN7JT5W2H"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPx" + "RfiCYzq8Rw3Lk9T"  # 40 characters, the shape of an AWS secret access key
GHP = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
JWT = "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiJjbGFpbWJlbmNoIn0.c2lnbmF0dXJl"
BEGIN = "-----BEGIN"


@pytest.mark.parametrize(
    ("line", "found"),
    [
        (f"# {AKID}", "AWS access key id 'AKIA…'"),  # a value in a comment leaks the same
        (f"  - export AWS_ACCESS_KEY_ID={AKID}", "AWS access key id 'AKIA…'"),
        (f"{BEGIN} RSA PRIVATE KEY-----", "private key block"),
        (f"    {BEGIN} OPENSSH PRIVATE KEY-----", "private key block"),
        (f"  - git config --global credential.helper store && echo {GHP}", "GitHub token 'ghp_…'"),
        ("  - export GH=github_pat_" + "11ABCDEFG0123456789_abcdefghij", "GitHub token 'gith…'"),
        ("  - notify xoxb-" + "1234567890-abcdefghij", "Slack token 'xoxb…'"),
        ("# AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "Google API key 'AIza…'"),
        (f"  - curl -d {JWT} https://example.org", "JSON web token 'eyJh…'"),
        ("  - huggingface-cli login --token hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345", "Hugging Face token 'hf_A…'"),
        ("  - git clone https://claim:s3cr3t-pass@github.com/x/y", "password in a URL 's3c…'"),
        ('  - curl -H "Authorization: Bearer 0123456789abcdefABCD" https://x', "bearer token '0123…'"),
        (f"  - export AWS_SECRET={SECRET}", "AWS secret access key assigned to AWS_SECRET 'wJal…'"),
        (f"AWS_SECRET={SECRET}", "AWS secret access key assigned to AWS_SECRET 'wJal…'"),
        (f"  aws_secret_access_key: {SECRET}", "AWS secret access key assigned to aws_secret_access_key 'wJal…'"),
        (f"  - aws configure set aws_secret_access_key {SECRET}", "AWS secret access key assigned to aws_secret_access_key"),
        (
            "  - aws configure set --profile ci aws_session_token FQoGZXIvYXdzE3h0b2tlbg",
            "literal assigned to aws_session_token 'FQoG…'",
        ),
        (f"  - echo 'aws_secret_access_key = {SECRET}' >> ~/.aws/credentials", "AWS secret access key assigned to"),
        ("  - my-tool --password hunter2", "literal assigned to password 'hu…'"),
        ("  - my-tool --api-key=k3y", "literal assigned to api-key 'k…'"),
        ("    db_password: 'p@ss w0rd'", "literal assigned to db_password"),
        ('  "client_secret": "abc"', "literal assigned to client_secret"),
        ("  - export GITHUB_TOKEN=abc123", "literal assigned to GITHUB_TOKEN"),
        ("  secretKey: s", "literal assigned to secretKey '…'"),
        (f"# aws_secret_access_key: {SECRET}", "AWS secret access key assigned to aws_secret_access_key"),  # commented out
        ("#   password: hunter2", "literal assigned to password 'hu…'"),
        ("#   - export HF_TOKEN=abc12345", "literal assigned to HF_TOKEN"),
        ("# run it with --token 9f8e7d6c5b4a", "literal assigned to token"),
        (
            "  - echo ok  # aws configure set aws_secret_access_key Zm9vYmFyYmF6cXV4MTIz",
            "literal assigned to aws_secret_access_key",
        ),
    ],
)
def test_credentials_are_found_by_value_and_by_assignment_with_the_value_masked(line, found):
    [(number, what)] = find_credentials(f"cluster_name: x\n{line}\n")
    assert number == 2 and what.startswith(found), what
    assert "\n" not in what and SECRET not in what and AKID not in what and GHP not in what and "hunter2" not in what


@pytest.mark.parametrize(
    "line",
    [
        "# the token comes from the instance profile",
        "# Token: comes from the instance profile, never from this file",
        "# secret: none here; password: neither",
        "# a key pair, an API key, a secret or a password never belongs in this file",
        "# pass --token on the command line, not here; token = the one from STS",
        "# set AWS_SECRET=... in your shell, or TOKEN=<yours>",
        "# password: hunter",  # one plain word after a name in a comment is prose
        "  - export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY}",
        "  - export AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY AWS_SECRET=${AWS_SECRET:-}",
        '  aws_secret_access_key: "${AWS_SECRET_ACCESS_KEY}"',
        "  - aws configure set aws_secret_access_key $AWS_SECRET_ACCESS_KEY",
        "  - export GITHUB_TOKEN=$(gh auth token)",
        "  - my-tool --password $DB_PASSWORD --token=${TOKEN}",
        "  password: <your password>",
        "  token: '{{ vault_token }}'",
        "  password: changeme",
        "  token: xxxx",
        "  api_key: ...",
        "  secret: '***'",
        "  password:",
        "  credentials:  # a mapping follows",
        "  ssh_private_key: ~/.ssh/ray.pem",  # Ray's own field names a file
        "  use_token: true",
        "  max_tokens: 2048",
        "  token_ttl: 3600",
        "  secret_name: claimbench/hf",
        "  - python train.py --max-tokens 512 --tokenizer gpt2",
        "  - export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",  # AWS's documentation key
        "  - ray start --address=$RAY_HEAD_IP:6379",
        "  - git clone https://${GH_USER}:${GH_TOKEN}@github.com/x/y",
    ],
)
def test_prose_references_and_placeholders_are_not_credentials(line):
    assert find_credentials(f"cluster_name: x\n{line}\n") == []


def test_the_shipped_file_holds_no_credentials():
    assert find_credentials((ROOT / "cluster.yaml").read_text()) == []


SHIPPED_TEXT = (ROOT / "cluster.yaml").read_text()


@pytest.mark.parametrize(
    ("line", "found"),
    [
        (f"# {AKID}", "AWS access key id 'AKIA…'"),
        (f"  - export AWS_SECRET={SECRET}", "AWS secret access key assigned to AWS_SECRET 'wJal…'"),
        (f"  - aws configure set aws_secret_access_key {SECRET}", "AWS secret access key assigned to aws_secret_access_key"),
        (f"# aws_secret_access_key: {SECRET}", "AWS secret access key assigned to aws_secret_access_key"),
        ("  - my-tool --password hunter2", "literal assigned to password 'hu…'"),
    ],
)
def test_the_cli_refuses_a_credential_in_one_line_naming_the_line(tmp_path, capsys, line, found):
    text = SHIPPED_TEXT.rstrip("\n") + f"\n{line}\n"  # appended to worker_start_ray_commands, or a comment
    code, out, err = _check(tmp_path, capsys, text=text)
    number = len(text.splitlines())
    assert code == 2 and len(err) == 1 and err[0].startswith("studies: error:"), err
    assert f"cluster.yaml:{number}: looks like a credential ({found}" in err[0], err
    assert SECRET not in err[0] and AKID not in err[0] and "hunter2" not in err[0] and "no credentials" not in out


def test_the_cli_accepts_prose_about_credentials_and_references_to_them(tmp_path, capsys):
    text = SHIPPED_TEXT.rstrip("\n") + (
        "\n# the token comes from the instance profile; no secret, password or key is written here"
        "\n  - export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY}  # a reference, not a value\n"
    )
    code, out, err = _check(tmp_path, capsys, text=text)
    assert code == 0 and "no credentials in the file" in out and not err, err
