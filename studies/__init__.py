"""Studies: one module per article, found by discovery of `studies/*.py`.

A study module defines `get_study(budget) -> Study` and nothing runs on import. `discover()` imports every
module here whose name does not start with `_`; a test checks each of them (importable, claims with ids,
every budget builds), so there is no hand-kept list to drift. A study may also live in a file anywhere else
(`load("path/to/my_study.py", budget)`, docs/writing-a-study.md): its file name names it.
"""

import dataclasses
import hashlib
import importlib
import itertools
import json
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Literal

from analysis.claims import StudyFileError, file_sha256, is_study_file, study_of_file
from analysis.schema import BUDGETS
from analysis.verdict import CLAIM_KINDS, Claim

__all__ = ["BUDGETS", "CLAIM_KINDS", "Claim", "Fusion", "Study", "StudyError", "Tuning", "discover", "load", "load_file"]

Budget = Literal["smoke", "local", "full"]


class StudyError(ValueError):
    """A malformed study or a bad request; its message is the one line the CLI prints."""


@dataclass(frozen=True)
class Tuning:
    """Optuna TPE over nuisance parameters with the same number of trials in every arm, then confirmation.

    Each arm (a combination of the scientific values of the grid) is tuned on `seed`, which lies outside the
    confirmation seeds so that selection and confirmation use different randomness. The arm's best config on
    `metric` is then re-run on every seed of the grid; claims read those confirmation runs.
    """

    nuisance: dict | Callable[[dict], dict]
    """Ray Tune domains (`tune.loguniform(...)`): one space for every arm, or a function of an arm's config that
    returns that arm's space (ranges that depend on the arm, e.g. an optimiser's lr range or only the strength of
    the arm's own regulariser). Every arm gets `trials_per_arm` trials either way; an arm whose space is empty
    (`{}`) has nothing to tune and runs its grid points as they are."""
    metric: str
    """Validation metric to optimise, `split/name`; its last reported value counts."""
    mode: str
    """`max` or `min`."""
    trials_per_arm: int
    """Optuna trials per arm (equal budgets)."""
    seed: int = 1000
    """Seed of the tuning runs and of the TPE sampler."""

    def space(self, config: dict) -> dict:
        """The nuisance domains of the arm that `config` belongs to."""
        return self.nuisance(config) if callable(self.nuisance) else self.nuisance


@dataclass(frozen=True)
class Fusion:
    """How a study's grid points train together: bundles of same-shape models in one process (`core.train.fused`).

    The runner groups pending main trials whose configs agree on every key outside `keys` (and pass `can_fuse`),
    splits each group into bundles sized to memory and to the trial slots, and runs each bundle as one Ray trial
    with the study's resources. Every member is recorded as an ordinary trial (its own id, seed and status).
    """

    trainable: Callable[[list[dict], Callable[[list[dict | None]], None]], None]
    """`trainable(configs, report)`: trains the members together and calls `report` once per step with one metrics
    dict per member (`None`: nothing from that member this time), each as the plain trainable would report it."""
    keys: tuple[str, ...]
    """Config keys whose values may differ inside a bundle (seed, learning rate, flood level, ...)."""
    member_bytes: Callable[[dict], int]
    """Memory one member adds to a bundle, for sizing bundles (host memory on CPU, GPU memory on a GPU)."""
    can_fuse: Callable[[dict, bool], bool] = lambda config, gpu: True
    """`can_fuse(config, gpu)`: whether a config can be fused at all (e.g. MLPs only, and on CPU only models small
    enough to gain); `gpu` says whether the trial holds a GPU. The others run one per Ray trial."""
    max_members: int = 32
    """Largest bundle on CPU. On a GPU a bundle holds as many members as fit in the trial's share of GPU memory."""


@dataclass(frozen=True)
class Study:
    """Everything the runner and the analysis need to know about one study at one budget."""

    name: str
    """Module name, e.g. `flooding`."""
    budget: str
    """`smoke`, `local` or `full`."""
    article: str
    """Article title and URL."""
    trainable: Callable[[dict], None]
    """Plain function of a config that reports metrics with `ray.tune.report`: `{"step": s, "split/name": value}`;
    a list value is a series, its element i recorded at step s + i (each report costs ~8 ms on 2 cores, so
    per-item values such as per-chunk test losses go in one report)."""
    param_space: dict
    """Ray Tune space: `tune.grid_search` over scientific factors and seeds, constants for fixed values. A grid
    whose values are dicts varies several keys together (a conditional grid): each dict's keys join the config."""
    scientific: tuple[str, ...]
    """Config keys compared by the claims; together they name a trial's arm."""
    claims: tuple[Claim, ...]
    """Claims and controls."""
    resources: dict = field(default_factory=lambda: {"cpu": 1})
    """Per-trial resources: `cpu` (threads given to torch) and fractional `gpu`."""
    max_concurrent: int | None = None
    """Trials in flight at once; `None` lets the cluster's resources decide."""
    checks: Callable[[], dict[str, list[float]]] | None = None
    """Exact checks run once in the driver (float64, no training): metric name -> values by step."""
    figures: tuple[Callable, ...] = ()
    """`fig(tables) -> (name, matplotlib Figure)` functions drawn by `python -m analysis`."""
    cost: str = ""
    """Expected cost at this budget, e.g. `~40 s on 2 CPU cores`."""
    sources: Callable[[], list[str]] | None = None
    """Names and sha256 of the data files the study reads, for the run's metadata."""
    tuning: Tuning | None = None
    """Nuisance parameters to tune per arm before the grid runs; `None` runs the grid as it is."""
    seed_key: str = "seed"
    """Config key of the replicate seed."""
    fusion: Fusion | None = None
    """Train fusable main trials as bundles (`Fusion`); `None`, or `run(..., fuse=False)`, runs one per Ray trial."""
    file: str = ""
    """For a study loaded from a file outside the package (`load`): the file's absolute path, recorded in the run's
    metadata so that `python -m analysis` finds the claims again; empty for a built-in study."""
    file_sha256: str = ""
    """sha256 of that file as it was loaded."""


def trial_device() -> str:
    """The torch device a trial puts its model and data on: `cuda` only when Ray assigned the trial a GPU.

    Ray sets `CUDA_VISIBLE_DEVICES` to the trial's assigned GPUs, so `cuda` (device 0) is the trial's own GPU and
    fractional trials sharing a GPU see the same one. A trial given no GPU (every CPU-only run, and any call
    outside a Ray trial) gets `cpu` without asking torch about CUDA at all.
    """
    import ray

    if not ray.is_initialized() or not ray.get_gpu_ids():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"  # logical GPUs on a machine without CUDA: still the CPU


def discover() -> dict[str, ModuleType]:
    """Import every study module in this package.

    Returns:
        dict[str, ModuleType]: module name -> module, sorted by name.
    """
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            found[info.name] = importlib.import_module(f"{__name__}.{info.name}")
    return found


def load(name: str, budget: str) -> Study:
    """Build a study at a budget, with one-line errors for unknown names, bad files and unknown budgets.

    Args:
        name (str):
            A built-in study's name, or the path of a study file (ending in `.py` or holding a path separator).
        budget (str):
            `smoke`, `local` or `full`.

    Returns:
        Study: the validated study.
    """
    if is_study_file(name):
        return load_file(name, budget)
    modules = discover()
    if name not in modules:
        raise StudyError(f"unknown study {name!r} (known: {', '.join(modules) or 'none'})")
    if budget not in BUDGETS:
        raise StudyError(f"unknown budget {budget!r} (expected one of {', '.join(BUDGETS)})")
    study = modules[name].get_study(budget)
    validate(study)
    return study


def load_file(path: str, budget: str) -> Study:
    """Build the study of a file outside the package at a budget: its `get_study(budget)`, named after the file.

    The file is imported under a private module name (`analysis.claims.import_study_file`); the study's name
    becomes the file's stem (it names the results folder) and the file's path and sha256 go with it into the run's
    metadata. A missing file, a module without `get_study`, a `get_study` that does not return a `Study`, a
    built-in study's name and an invalid study are each one line (`StudyError`).

    Args:
        path (str):
            The study file.
        budget (str):
            `smoke`, `local` or `full`.

    Returns:
        Study: the validated study.
    """
    if budget not in BUDGETS:
        raise StudyError(f"unknown budget {budget!r} (expected one of {', '.join(BUDGETS)})")
    try:
        study = study_of_file(path, budget)
    except StudyFileError as exc:
        raise StudyError(str(exc)) from None
    if not isinstance(study, Study):
        raise StudyError(f"{path} is not a study: get_study({budget!r}) returned {type(study).__name__}, not a studies.Study")
    file = Path(path).expanduser().resolve()
    study = dataclasses.replace(study, name=file.stem, file=str(file), file_sha256=file_sha256(file))
    validate(study)
    return study


def expand(param_space: dict) -> list[dict]:
    """All configs of a grid space, in Ray's grid order (cartesian product of the `grid_search` keys).

    Args:
        param_space (dict):
            Constants and `{"grid_search": [...]}` entries; dict-valued grid entries merge into the config.

    Returns:
        list[dict]: one config per grid point.
    """
    grids, fixed = [], {}
    for key, value in param_space.items():
        if isinstance(value, dict) and set(value) == {"grid_search"}:
            grids.append((key, list(value["grid_search"])))
        elif type(value).__module__.startswith("ray.tune.search"):
            raise StudyError(f"key {key!r} is a sampled domain; this runner expands grid spaces only")
        else:
            fixed[key] = value
    configs = []
    for combo in itertools.product(*(values for _, values in grids)):
        cfg = dict(fixed)
        for (key, _), value in zip(grids, combo, strict=True):
            if isinstance(value, dict):
                cfg.update(value)
            else:
                cfg[key] = value
        configs.append(cfg)
    return configs


def config_hash(study: str, budget: str, config: dict, seed_key: str = "seed") -> str:
    """Stable hash of a config without its seed: trials are identified by (config hash, seed).

    Args:
        study (str):
            Study name.
        budget (str):
            Budget.
        config (dict):
            The trial config.
        seed_key (str):
            Key left out of the hash.

    Returns:
        str: 12 hex digits.
    """
    body = {k: v for k, v in config.items() if k != seed_key}
    text = json.dumps({"study": study, "budget": budget, "config": body}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def validate(study: Study) -> list[dict]:
    """Check a study is well formed; return its expanded configs.

    Args:
        study (Study):
            The study.

    Returns:
        list[dict]: the grid's configs.
    """
    where = f"study {study.name!r} at budget {study.budget!r}"
    if not study.claims:
        raise StudyError(f"{where} declares no claims")
    ids = [c.id for c in study.claims]
    if len(set(ids)) != len(ids) or not all(ids):
        raise StudyError(f"{where} has empty or duplicate claim ids: {ids}")
    bad = [c.id for c in study.claims if c.kind not in CLAIM_KINDS]
    if bad:
        raise StudyError(f"{where}: claims {bad} have a kind outside {CLAIM_KINDS}")
    if not callable(study.trainable):
        raise StudyError(f"{where}: trainable is not callable")
    if set(study.resources) - {"cpu", "gpu"}:
        raise StudyError(f"{where}: resources may name cpu and gpu only, got {sorted(study.resources)}")
    configs = expand(study.param_space)
    if not configs:
        raise StudyError(f"{where} has an empty search space")
    missing = {k for cfg in configs for k in (study.seed_key, *study.scientific) if k not in cfg}
    if missing:
        raise StudyError(f"{where}: configs lack keys {sorted(missing)}")
    if study.fusion is not None and (study.seed_key not in study.fusion.keys or study.fusion.max_members < 1):
        raise StudyError(f"{where}: fusion needs the seed key {study.seed_key!r} among its keys and max_members >= 1")
    if study.tuning is not None:
        t = study.tuning
        for cfg in configs:
            space = t.space(cfg)
            if not all(hasattr(v, "sample") for v in space.values()):
                raise StudyError(f"{where}: tuning needs Ray Tune domains for its nuisance parameters")
            clash = sorted(set(space) & set(cfg))
            if clash:
                raise StudyError(f"{where}: nuisance keys {clash} are also set by the grid")
        if t.mode not in ("min", "max") or "/" not in t.metric or t.trials_per_arm < 1:
            raise StudyError(f"{where}: tuning needs a split/name metric, mode min or max and trials_per_arm >= 1")
    return configs
