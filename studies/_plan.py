"""The plan of a run: the grid's trials with their ids, each arm's tuned nuisance values merged in.

A trial's id is `<config hash>-s<seed>` (`tune-` first in the tuning phase); the hash covers the study, budget and
config without the seed (`studies.config_hash`), so the same grid point has the same id on every machine and run.
"""

from dataclasses import dataclass

from studies import Study, StudyError, config_hash, validate


@dataclass(frozen=True)
class Planned:
    """One grid point to run."""

    trial_id: str
    config_hash: str
    seed: int
    arm: str
    config: dict
    phase: str = "main"


def arm_of(study: Study, config: dict) -> str:
    """The arm label: the scientific values, e.g. `label_noise=0.2,flood_level=0.3`."""
    return ",".join(f"{k}={config[k]}" for k in study.scientific)


def planned(study: Study, config: dict, phase: str = "main") -> Planned:
    """A trial of `config` with its id `<config hash>-s<seed>` (prefixed `tune-` in the tuning phase)."""
    h = config_hash(study.name, study.budget, config, study.seed_key)
    seed = int(config[study.seed_key])
    prefix = "tune-" if phase == "tune" else ""
    return Planned(f"{prefix}{h}-s{seed}", h, seed, arm_of(study, config), config, phase)


def plan(study: Study, best: dict[str, dict] | None = None, grid: list[dict] | None = None) -> list[Planned]:
    """Every main trial of the study: the grid, with each arm's tuned nuisance values merged in.

    Args:
        study (Study):
            The study.
        best (dict[str, dict] | None):
            Arm label -> best nuisance values, for a study with tuning; arms missing here are left out.
        grid (list[dict] | None):
            `validate(study)`, when the caller has it already (a run validates once).

    Returns:
        list[Planned]: in grid order.
    """
    configs = validate(study) if grid is None else grid
    if study.tuning is not None:
        best = best or {}
        untuned = [not study.tuning.space(cfg) for cfg in configs]
        configs = [
            {**cfg, **best.get(arm_of(study, cfg), {})}
            for cfg, plain in zip(configs, untuned, strict=True)
            if plain or arm_of(study, cfg) in best
        ]
    out = [planned(study, cfg) for cfg in configs]
    ids = [p.trial_id for p in out]
    if len(set(ids)) != len(ids):
        raise StudyError(f"study {study.name!r} at budget {study.budget!r} repeats grid points")
    return out


def trial_count(study: Study) -> int:
    """Trials a full run of the study takes: grid (or confirmation) points plus tuning trials."""
    grid = validate(study)
    tuned = {arm_of(study, c) for c in grid if study.tuning is not None and study.tuning.space(c)}
    tuning = 0 if study.tuning is None else study.tuning.trials_per_arm * len(tuned)
    return len(grid) + tuning


def _range(domain) -> dict:
    """A Ray Tune domain as plain JSON: `{"lower", "upper", "log"}`, or `{"values"}` for a categorical one."""
    if hasattr(domain, "categories"):
        return {"values": list(domain.categories)}
    return {"lower": domain.lower, "upper": domain.upper, "log": "LogUniform" in type(domain.get_sampler()).__name__}


def tuning_record(study: Study, grid: list[dict]) -> dict | None:
    """The study's tuning as the metadata records it, for the analysis's axis plots: metric, mode, budget per arm,
    seed, and each arm's ranges (`spaces`: arm -> key -> `_range`). `None` without tuning."""
    t = study.tuning
    if t is None:
        return None
    spaces = {arm_of(study, c): {k: _range(d) for k, d in t.space(c).items()} for c in grid}
    return {"metric": t.metric, "mode": t.mode, "trials_per_arm": t.trials_per_arm, "seed": t.seed, "spaces": spaces}
