"""Offline checks of a Ray cluster-launcher file: Ray's own schema, then what claimbench's full budgets need.

`python -m studies check-cluster [cluster.yaml] [--results URI]` runs Ray's `prepare_config` and
`validate_config` (private API of `ray.autoscaler._private.util`, pinned with Ray and covered by a test), then:
every full-budget study's per-trial GPU request fits on some worker type, the dashboard is not opened to the
network, a Docker image pins the installed Ray version, and no credentials are written in the file. Results are
written by the driver on the head (workers never write them): a path on the head, or a bucket URI (`s3://…`,
`gs://…`) that outlives the cluster. Each problem is one line naming the file.
"""

import copy
import re
from importlib import metadata
from pathlib import Path

from analysis.store import is_uri
from studies import StudyError, discover

SECRET_KEYS = re.compile(r"aws_secret_access_key|aws_access_key_id|secret_key|password|token", re.IGNORECASE)


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
    secret = SECRET_KEYS.search(text)
    if secret:
        raise StudyError(f"{path}: looks like a credential ({secret.group(0)!r}); use an instance profile or the environment")
    lines.append("no credentials in the file")
    if workers and prepared.get("max_workers", 0) > 0:
        lines.append(results_line(results))
    return lines
