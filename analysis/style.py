"""Every plot style of claimbench lives here: theme, arm colours, palettes, saving."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; no display is needed or wanted

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

BASELINE = "#222222"
"""The b = 0 / off arm: black."""
FLOODED = "#1f77b4"
"""The technique arm."""
CONTROL = "#d62728"
"""Negative controls, in a contrasting red."""
HIGHLIGHT = "#ff7f0e"
"""Selected values (b*, best trials)."""
BAND = "#9ecae1"
"""Reference bands (target intervals)."""
STATUS = {"ok": "#2ca02c", "diverged": "#ff7f0e", "failed": "#d62728"}
VERDICT = {
    "SUPPORTED": "#2ca02c",
    "REFUTED": "#d62728",
    "INCONCLUSIVE": "#bcbd22",
    "INVALID": "#7f7f7f",
    "PASS": "#98df8a",
    "FAIL": "#ff9896",
    "not run": "#e7e7e7",
}
"""Badge colours of verdicts in the HTML report; controls (PASS/FAIL) in lighter shades."""

sns.set_theme(context="paper", style="whitegrid", font_scale=1.0)


def level_palette(levels: list[float]) -> list:
    """Sequential palette over a scientific level, with the off value (0) in black.

    Args:
        levels (list[float]):
            Sorted levels.

    Returns:
        list: one colour per level.
    """
    ramp = sns.color_palette("viridis", n_colors=max(1, sum(v != 0 for v in levels)))
    it = iter(ramp)
    return [BASELINE if v == 0 else next(it) for v in levels]


def seed_palette(n: int) -> list:
    """Muted qualitative colours for replicate seeds."""
    return sns.color_palette("muted", n_colors=n)


def titled(name: str, fig: Figure, title: str, y: float = 1.02) -> tuple[str, Figure]:
    """What a figure function returns, `(name, fig)`, with the figure's title set above its panels."""
    fig.suptitle(title, y=y)
    return name, fig


def save(fig: Figure, path: Path) -> None:
    """Save a figure as PNG at 120 dpi and close it, also when saving fails: every figure file is written here.

    pyplot keeps each figure it made until it is closed, so a report that left them open would hold every figure
    it drew in memory until the process ends.

    Args:
        fig (Figure):
            The figure, as a figure function returns it.
        path (Path):
            The PNG file.
    """
    try:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)


@contextmanager
def closing_figures() -> Iterator[None]:
    """Close every pyplot figure opened inside the block when it ends, also when it raises.

    A figure function that fails after opening its figure returns nothing to `save`; this closes what it left.

    Yields:
        None: nothing; figures open before the block stay open.
    """
    before = set(plt.get_fignums())
    try:
        yield
    finally:
        for num in set(plt.get_fignums()) - before:
            plt.close(num)
