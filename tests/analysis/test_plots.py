import pandas as pd

from analysis.plots import fig_nuisance_axes, fig_status
from analysis.verdict import Tables

EMPTY = pd.DataFrame(columns=["step", "metric", "value"])


def tuning_rows(best_lr: float) -> pd.DataFrame:
    lrs = [1e-4, 1e-3, 1e-2, best_lr]
    return pd.DataFrame({"arm": "a", "status": "ok", "config/lr": lrs, "val/acc": [0.1, 0.2, 0.3, 0.9]})


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_axis_plot_flags_a_best_trial_at_the_edge_of_the_space_only():
    # as `studies._plan.tuning_record` writes it into the metadata for `tune.loguniform(1e-4, 1.0)`
    tuning = {"metric": "val/acc", "mode": "max", "spaces": {"a": {"lr": {"lower": 1e-4, "upper": 1.0, "log": True}}}}
    edge = fig_nuisance_axes(Tables("smoke", pd.DataFrame(), EMPTY, EMPTY, tuning_rows(0.9)), tuning)
    inside = fig_nuisance_axes(Tables("smoke", pd.DataFrame(), EMPTY, EMPTY, tuning_rows(0.05)), tuning)
    assert edge[0] == "nuisance_axes" and "best near boundary" in _texts(edge[1])  # log(0.9) is within 5% of log(1)
    assert "best near boundary" not in _texts(inside[1])
    assert fig_nuisance_axes(Tables("smoke", pd.DataFrame(), EMPTY, EMPTY), tuning) is None


def test_status_plot_shows_each_arm_share():
    trials = pd.DataFrame({"arm": ["x", "x", "y", "y"], "status": ["ok", "diverged", "ok", "failed"]})
    name, fig = fig_status(Tables("smoke", trials, EMPTY, EMPTY))
    widths = sorted(round(p.get_width(), 2) for p in fig.axes[0].patches if p.get_width() > 0)
    assert name == "trial_status" and widths == [0.5, 0.5, 0.5, 0.5]
