"""Offline checks of a Ray cluster-launcher file: Ray's own schema, then what claimbench's full budgets need.

`python -m studies check-cluster [cluster.yaml] [--results URI]` runs Ray's `prepare_config` and
`validate_config` (private API of `ray.autoscaler._private.util`, pinned with Ray and covered by a test), then:
every full-budget study's per-trial GPU request fits on some worker type, the dashboard is not opened to the
network, a Docker image pins the installed Ray version, and no credential is written in the file, comments included
(recognised by its value or by its assignment to a credential-like name; see `find_credentials`). Results are
written by the driver on the head (workers never write them): a path on the head, or a bucket URI (`s3://…`,
`gs://…`) that outlives the cluster. Each problem is one line naming the file (and the line, for a credential).
"""

import copy
import re
from importlib import metadata
from itertools import pairwise
from pathlib import Path

from analysis.store import is_uri
from studies import StudyError, discover

# Credentials are recognised by their value (`VALUE_SHAPES`, anywhere on a line, comments included) and by an
# assignment of a literal to a credential-like name (`NAME=v`, `NAME: v`, `export NAME=v`, `--password v`,
# `aws configure set aws_secret_access_key v`). In a comment a bare word never counts ("the token comes from the
# instance profile"); only a value shape, or an assignment whose value is one word that looks like a secret.
VALUE_SHAPES = [
    ("AWS access key id", re.compile(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z2-7]{16}\b")),
    ("private key block", re.compile(r"-----BEGIN[A-Z ]*PRIVATE KEY(?: BLOCK)?-----")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b")),
    ("Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])")),
    ("JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
]
_URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@]+:(?P<value>[^\s/@]+)@")
_BEARER = re.compile(r"\bbearer\s+(?P<value>[A-Za-z0-9._~+/-]{16,}=*)", re.IGNORECASE)
_AWS_SECRET = re.compile(r"[A-Za-z0-9/+]{40}")
_PATH = re.compile(r"(?:~|\.{1,2})?/[\w.@/-]*")  # `ssh_private_key: ~/.ssh/ray.pem` names a file
_CREDENTIAL_WORDS = {"secret", "secrets", "password", "passwd", "passphrase", "token", "credential", "credentials",
                     "apikey", "accesskey", "privatekey", "secretkey"}  # fmt: skip
_CREDENTIAL_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key")}
# A name ending in one of these describes a credential (where it is, how long it lasts), it does not hold one.
_DESCRIPTORS = {"file", "path", "dir", "name", "arn", "env", "var", "ttl", "timeout", "expiry", "expires", "expiration",
                "lifetime", "seconds", "length", "len", "type", "url", "uri", "endpoint", "header", "prefix", "ref",
                "source", "count", "limit", "size", "budget"}  # fmt: skip
# Values that are not a credential: references ($VAR, ${VAR}, $(cmd), {{ tmpl }}), placeholders (<...>, xxx, ***, ...,
# changeme), booleans and null, YAML structure (|, >, {, [, &anchor, *alias).
_PLACEHOLDER = re.compile(
    r"\$.*|.*\{\{.*|<.*|[{\[|>&*].*|x{3,}|\.{2,}|…+|-+|_+|change[-_]?me|replace[-_]?me|redacted|"
    r"placeholder|dummy|your[-_].*|null|none|nil|true|false|yes|no|on|off|~",
    re.IGNORECASE,
)
_VALUE = r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s'\"`;&|,)}\]]+)"
_NAME = r"[\"']?(?P<name>[A-Za-z_][\w.-]*)[\"']?"
_ASSIGNED = re.compile(rf"(?<![\w.$-]){_NAME}\s*(?::(?=\s)|=(?!=))\s*{_VALUE}")  # NAME: v, NAME=v, export NAME=v
_COMMENTED_KEY = re.compile(rf"^\s*(?:-\s+)?{_NAME}\s*:\s+{_VALUE}\s*(?:#.*)?$")  # `# name: v`, a commented-out key
_COMMENTED_SET = re.compile(rf"(?<![\w.$-]){_NAME}=(?!=){_VALUE}")
_FLAG = re.compile(rf"(?<![\w-])--(?P<name>[A-Za-z][\w-]*)(?:=|\s+)(?!-){_VALUE}")
_AWS_CONFIGURE = re.compile(rf"\baws\s+configure\s+set\s+(?:--profile[= ]\S+\s+)?(?P<name>[\w.-]+)\s+{_VALUE}")
_CODE_FORMS = (_ASSIGNED, _FLAG, _AWS_CONFIGURE)
_COMMENT_FORMS = (_COMMENTED_KEY, _COMMENTED_SET, _FLAG, _AWS_CONFIGURE)


def _credential_name(name: str) -> bool:
    parts = [p for p in re.split(r"[_.\-]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()) if p]
    if not parts or parts[-1] in _DESCRIPTORS:
        return False
    return any(p in _CREDENTIAL_WORDS for p in parts) or any(pair in _CREDENTIAL_PAIRS for pair in pairwise(parts))


def _literal(value: str) -> str | None:
    """The value without its quotes, or None for a reference, a placeholder or YAML structure."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1].strip()
    if not value or _PLACEHOLDER.fullmatch(value) or value.upper().endswith("EXAMPLE"):  # AWS documentation's keys
        return None
    if _PATH.fullmatch(value) and not _AWS_SECRET.fullmatch(value):
        return None
    return value


def _masked(value: str) -> str:
    return repr(value[: min(4, len(value) // 3)] + "…")


def _split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of a YAML line: `#` at the start or after a space, outside quotes that open a scalar."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'" and (i == 0 or line[i - 1] in " \t=:([{,"):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i], line[i + 1 :]
    return line, ""


def _assignment(name: str, raw: str, comment: bool) -> str | None:
    if not _credential_name(name) or (value := _literal(raw)) is None:
        return None
    if comment and not (len(value) >= 20 or (len(value) >= 6 and any(c.isdigit() for c in value))):
        return None  # `# token: see below` is prose; a secret in a comment is one word, long or with digits
    if _AWS_SECRET.fullmatch(value):
        return f"AWS secret access key assigned to {name} {_masked(value)}"
    return f"literal assigned to {name} {_masked(value)}"


def _line_credential(line: str) -> str | None:
    """What credential `line` holds, its value masked, or None."""
    for kind, rx in VALUE_SHAPES:
        for m in rx.finditer(line):
            if not m.group(0).upper().endswith("EXAMPLE"):  # AWS documentation's AKIAIOSFODNN7EXAMPLE
                return kind if kind == "private key block" else f"{kind} {_masked(m.group(0))}"
    for kind, rx in (("password in a URL", _URL_PASSWORD), ("bearer token", _BEARER)):
        for m in rx.finditer(line):
            if (value := _literal(m.group("value"))) is not None:
                return f"{kind} {_masked(value)}"
    code, comment = _split_comment(line)
    for part, in_comment, regexes in ((code, False, _CODE_FORMS), (comment, True, _COMMENT_FORMS)):
        for rx in regexes:
            for m in rx.finditer(part):
                if what := _assignment(m.group("name"), m.group("value"), in_comment):
                    return what
    return None


def find_credentials(text: str) -> list[tuple[int, str]]:
    """(line number, what was found with its value masked) for each line of `text` that holds a credential."""
    return [(number, what) for number, line in enumerate(text.splitlines(), 1) if (what := _line_credential(line))]


def _ray_checks(path: Path, cfg: dict) -> dict:
    import logging

    from ray.autoscaler._private.util import prepare_config, validate_config

    logging.getLogger("ray.autoscaler._private.util").setLevel(logging.WARNING)  # its INFO notes are not ours to print
    try:
        prepared = prepare_config(copy.deepcopy(cfg))
        validate_config(prepared)
    except KeyError as exc:
        raise StudyError(f"{path}: missing required field {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - jsonschema, ValueError and RuntimeError all mean the file is refused
        first = str(getattr(exc, "message", exc)).strip().splitlines()[0]
        raise StudyError(f"{path}: refused by Ray's cluster schema: {first}") from exc
    return prepared


def full_budget_gpus() -> dict[str, float]:
    """Study -> GPUs one trial asks for at the full budget (studies asking for none are left out)."""
    out = {}
    for name, module in discover().items():
        gpu = float(module.get_study("full").resources.get("gpu", 0))
        if gpu > 0:
            out[name] = gpu
    return out


def results_line(results: str | None) -> str:
    """Where the driver on the head writes, and how the rows get off the cluster."""
    if results is None:
        return ("results: the driver on the head writes every row to the --results path there; copy them off before "
                "`ray down` (`ray rsync-down cluster.yaml <path> results`) or give --results s3://bucket/prefix")  # fmt: skip
    if is_uri(results):
        scheme = results.split("://", 1)[0]
        if scheme not in ("s3", "gs", "gcs", "file"):
            raise StudyError(f"--results {results!r}: unknown scheme {scheme!r} (expected s3://, gs:// or a path)")
        return (f"results: the driver on the head writes every row to {results}, which outlives the cluster (the head "
                f"needs write access: instance profile); read it with `python -m analysis --results {results}`")  # fmt: skip
    return (f"results: the driver on the head writes every row to {results}; copy them off before `ray down` "
            f"(`ray rsync-down cluster.yaml {results} results`)")  # fmt: skip


def check_cluster(path: Path, results: str | None = None) -> list[str]:
    """Validate a cluster file; return the report lines, or raise `StudyError` on the first problem.

    Args:
        path (Path):
            The cluster-launcher YAML.
        results (str | None):
            The `--results` location studies will write to on the head, if known.

    Returns:
        list[str]: what was checked, one line each.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise StudyError(f"{path}: no such cluster file")
    text = path.read_text()
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StudyError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(cfg, dict):
        raise StudyError(f"{path}: expected a mapping at the top level")
    prepared = _ray_checks(path, cfg)
    lines = [f"{path}: accepted by Ray {metadata.version('ray')}'s cluster schema"]
    types = prepared.get("available_node_types", {})
    head = prepared["head_node_type"]
    workers = {k: v for k, v in types.items() if k != head}
    gpus = {k: float(v.get("resources", {}).get("GPU", 0)) for k, v in workers.items()}
    need = full_budget_gpus()
    if need:
        most = max(need.values())
        if not any(g >= most for g in gpus.values()):
            worst = max(need, key=need.get)
            raise StudyError(
                f"{path}: study {worst!r} asks for {most:g} GPU a trial at the full budget, but no worker type states "
                f'that many (`resources: {{"GPU": n}}`; worker types: {gpus or "none"})'
            )
        lines.append(
            f"GPU requests fit: largest per-trial request {most:g} ({', '.join(sorted(need))}); GPU worker types {gpus}"
        )
    head_cpu = types[head].get("resources", {}).get("CPU")
    lines.append(f"head {head!r} takes {'no trials' if head_cpu == 0 else f'trials (CPU: {head_cpu})'}")
    starts = " ".join(prepared.get("head_start_ray_commands", []))
    if "0.0.0.0" in starts or re.search(r"--dashboard-host[= ](?!127\.0\.0\.1|localhost)", starts):
        raise StudyError(
            f"{path}: the dashboard must stay on the head's loopback (--dashboard-host=127.0.0.1), not the network"
        )
    lines.append("dashboard bound to the head's loopback")
    image = cfg.get("docker", {}).get("image")
    ray_version = metadata.version("ray")
    if image and ray_version not in image:
        raise StudyError(f"{path}: docker image {image!r} does not pin the installed Ray {ray_version}")
    lines.append(f"docker image {image!r} pins Ray {ray_version}" if image else "no docker image (nodes use their own Ray)")
    if found := find_credentials(text):
        number, what = found[0]
        raise StudyError(f"{path}:{number}: looks like a credential ({what}); use an instance profile or the environment")
    lines.append("no credentials in the file")
    if workers and prepared.get("max_workers", 0) > 0:
        lines.append(results_line(results))
    return lines
