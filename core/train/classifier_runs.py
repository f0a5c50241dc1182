"""From a classifier study's config to a trained run: one run alone (`fit_classifier`) or a bundle of runs trained
as one program (`core.train.fused`). Written once for the studies that train classifiers (flooding, weissi); a
study hands over how it builds its network and its `FitConfig`, and wraps the two trainables for Ray Tune."""

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from core.data.classification import Splits, load
from core.train import fused
from core.train.classifier import FitConfig, Report, fit_classifier


def fit_config_of(config: dict) -> FitConfig:
    """The `FitConfig` of a config whose keys are `FitConfig`'s own field names (the others are ignored)."""
    return FitConfig(**{k: config[k] for k in FitConfig.__dataclass_fields__ if k in config})


def any_config(config: dict) -> bool:
    return True


@dataclass(frozen=True)
class ClassifierRuns:
    """How a study's configs become classifier runs."""

    model_of: Callable[[dict, Splits], nn.Module]
    """`model_of(config, data)`: the run's freshly initialised network, seeded by its seed."""
    fit_config: Callable[[dict], FitConfig] = fit_config_of
    """The run's training settings."""
    fusable: Callable[[dict], bool] = any_config
    """Which configs may train in a bundle at all (e.g. MLPs without augmentation); on CPU the model must also be
    small enough to gain (`core.train.fused.worth_fusing`)."""

    def train(self, config: dict, report: Report, device: str = "cpu") -> None:
        """One run, reporting every epoch."""
        data = load(config["dataset"])
        fit_classifier(self.model_of(config, data), data, self.fit_config(config), report, device=device)

    def train_fused(
        self, configs: list[dict], report: Callable, device: str = "cpu", probe: fused.Probe | None = None
    ) -> None:
        """A bundle of runs on one data set as one program; each member reports what `train` would (`probe`: a
        study's own per-epoch measurements of each member, `core.train.fused.fit_fused`)."""
        data = load(configs[0]["dataset"])
        models = [self.model_of(c, data) for c in configs]
        fused.fit_fused(models, data, [self.fit_config(c) for c in configs], report, device=device, probe=probe)

    def member_bytes(self, config: dict) -> int:
        """Memory one member adds to a bundle (`core.train.fused.member_bytes`)."""
        data = load(config["dataset"])
        return fused.member_bytes(self.model_of(config, data), self.fit_config(config), len(data.y_train) + len(data.y_val))

    def can_fuse(self, config: dict, gpu: bool = False) -> bool:
        """Whether a config trains in a bundle: `fusable`, then stackable and (on CPU) small enough."""
        return self.fusable(config) and fused.worth_fusing(self.model_of(config, load(config["dataset"])), gpu=gpu)
