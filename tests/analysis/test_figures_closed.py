"""Figures are closed once saved, also when one fails: a report's memory does not grow with its figures."""

import dataclasses
import shutil
import warnings

import pytest
from conftest import planted, write_planted

import analysis.report
from analysis import style
from analysis.claims import discover
from analysis.claims.flooding import CLAIMED
from analysis.report import report_all

BROKEN = 8
"""Planted studies whose own figure opens a figure, then fails."""


def fig_broken(t):
    """A figure function with a bug: it opens its figure, then raises before returning it."""
    style.plt.subplots()
    raise ValueError("planted figure bug")


def _broken_study(name: str):
    """Flooding's claims under another name, its only figure `fig_broken` (plus the generic ones)."""
    return dataclasses.replace(CLAIMED, name=name, figures=(fig_broken,))


def test_a_report_of_many_studies_leaves_no_figure_open(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    write_planted(results, planted(0.05, seeds=2, etas=(0.2,)))  # flooding draws its own figures and the generic ones
    names = [f"broken{i}" for i in range(BROKEN)]
    for name in names:
        shutil.copytree(results / "flooding", results / name)
    monkeypatch.setattr(analysis.report, "discover", lambda: {**discover(), **{n: _broken_study(n) for n in names}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report_all(results, tmp_path / "out")
    drawn = sorted((tmp_path / "out").rglob("*.png"))
    assert len(drawn) + BROKEN > 20  # without closing, pyplot would warn at the 21st open figure
    assert style.plt.get_fignums() == []
    assert not [w for w in caught if "More than 20 figures" in str(w.message)]
    failed = [line for line in capsys.readouterr().err.splitlines() if "figure" in line and "failed" in line]
    assert len(failed) == BROKEN and all("fig_broken failed: planted figure bug" in line for line in failed)


def test_a_figure_is_closed_even_when_saving_it_fails(tmp_path):
    fig, _ = style.plt.subplots()
    with pytest.raises(FileNotFoundError):
        style.save(fig, tmp_path / "missing" / "x.png")
    assert fig.number not in style.plt.get_fignums()


def test_figures_open_before_the_block_stay_open():
    kept, _ = style.plt.subplots()
    with pytest.raises(ValueError), style.closing_figures():
        fig_broken(None)
    assert style.plt.get_fignums() == [kept.number]
