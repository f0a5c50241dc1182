"""The HTML report: built from Parquet alone, self-contained, and rendered by a real headless browser."""

import os
import re

import pytest
from conftest import planted, write_planted

import analysis.report
from analysis.claims import discover
from analysis.html import browse, chromium, screenshot
from analysis.report import report_all
from analysis.verdict import StudyClaims
from studies import _synthetic

NEED_BROWSER = os.environ.get("CLAIMBENCH_REQUIRE_BROWSER") == "1"  # .ci/run installs chromium and sets this


@pytest.fixture
def results(tmp_path, monkeypatch):
    """Flooding at local with one diverged and one failed trial; a second study that never ran."""
    tables = planted(0.05)
    ids = tables.trials["trial_id"].tolist()
    write_planted(tmp_path / "results", tables, {ids[0]: "diverged", ids[1]: "failed"})
    synthetic = _synthetic.get_study()
    never_ran = StudyClaims("synthetic", synthetic.article, synthetic.claims)
    monkeypatch.setattr(analysis.report, "discover", lambda: {**discover(), "synthetic": never_ran})
    return tmp_path / "results"


def test_report_covers_diverged_failed_and_not_run(results, tmp_path):
    report_all(results, tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text()
    overview = re.search(r'<table id="overview">.*?</table>', page, re.S).group(0)
    claims = sum(len(c.claims) for c in discover().values())
    assert overview.count("<tr>") == 1 + claims + 1  # header, every study's claims and controls, the synthetic claim
    assert re.search(r"synthetic</a></td><td>S1</td>.*?not run.*?not run.*?not run", overview, re.S)
    assert "1 diverged" in page and "1 failed" in page
    glance = re.search(r'<table id="glance">.*?</table>', page, re.S).group(0)
    assert glance.count("<tr>") == 1 + len(discover()) + 1  # header, every study, the synthetic one
    flooding = re.search(r"flooding</a></td>(.*?)</tr>", glance, re.S).group(1).split("<td>")[1:]
    smoke, local, full = flooding
    assert "not run" in smoke and "not run" in full and "F5: " in local  # one badge per claim, verdict on hover
    assert local.count('class="badge"') == len(discover()["flooding"].claims)
    assert re.search(r"synthetic</a></td>(<td><span[^>]*>not run</span></td>){3}", glance)
    assert 'src="http' not in page and "<link" not in page  # nothing fetched to view it
    assert page.count("data:image/png;base64,") >= 8
    assert (tmp_path / "out" / "flooding" / "local" / "trial_status.png").exists()


@pytest.mark.skipif(chromium() is None and not NEED_BROWSER, reason="chromium not installed")
def test_report_renders_in_a_headless_browser(results, tmp_path):
    report_all(results, tmp_path / "out")
    page = tmp_path / "out" / "report.html"
    dom = browse(page, "--dump-dom")
    assert '<table id="overview">' in dom
    images = re.search(r'data-images="(\d+)" data-images-loaded="(\d+)"', dom)
    assert images and int(images.group(1)) >= 8 and images.group(1) == images.group(2)  # every figure decoded
    png = screenshot(page, tmp_path / "shot.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
