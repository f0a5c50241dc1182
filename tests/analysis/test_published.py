"""The published verdicts (reference/report) follow from the published results (reference/results), cover every
built-in study at smoke and local, and are what the README's table shows (`analysis.published`)."""

import pandas as pd
import pytest

from analysis import published as pub
from analysis.claims import discover

RESULTS, REPORT, README = (pub.ROOT / p for p in (pub.RESULTS, pub.REPORT, pub.README))


@pytest.fixture(scope="module")
def stored() -> pd.DataFrame:
    return pub.stored(REPORT)


def test_every_built_in_study_is_published_at_smoke_and_every_claim_where_it_ran(stored):
    """Smoke for all eight; at local, every claim of each study with local results (the README's table says "not run
    at this budget" for the others)."""
    for name, claimed in discover().items():
        for budget in pub.BUDGETS:
            here = stored[(stored["study"] == name) & (stored["budget"] == budget)]
            assert budget != "smoke" or len(here), f"{name} is not published at smoke"
            assert here.empty or sorted(here["claim_id"]) == sorted(c.id for c in claimed.claims), f"{name}/{budget}"


def test_the_stored_verdicts_follow_from_the_reference_results(stored):
    """Re-derives every verdict from the Parquet results: a change that moves one fails here until it is re-published
    on purpose (`python -m analysis.published`)."""
    assert pub.differences(stored, pub.derived(RESULTS)) == []


def test_the_readme_table_is_the_one_generated_from_the_stored_verdicts(stored):
    text = README.read_text()
    assert pub.with_table(text, pub.verdict_table(stored)) == text
    for name in discover():
        assert f"[{name}](reference/report/{name}.md)" in text


def test_a_moved_verdict_is_named(stored):
    """Negative control: the comparison names a flipped verdict, a moved interval and a row that vanished."""
    moved = stored.copy()
    first, second, gone = moved.index[:3]
    moved.loc[first, "verdict"] = "SUPPORTED" if moved.loc[first, "verdict"] != "SUPPORTED" else "REFUTED"
    moved.loc[second, "ci_low"] = 3.0 + abs(moved.loc[second, "ci_low"]) if pd.notna(moved.loc[second, "ci_low"]) else 3.0
    lines = pub.differences(stored, moved.drop(index=gone))
    named = lambda i: f"{stored.loc[i, 'study']}/{stored.loc[i, 'budget']} {stored.loc[i, 'claim_id']}:"  # noqa: E731
    assert len(lines) == 3
    assert any(line.startswith(named(first)) and "verdict " in line for line in lines)
    assert any(line.startswith(named(second)) and "ci_low" in line for line in lines)
    assert any(line.startswith(named(gone)) and "only stored" in line for line in lines)


def test_the_table_says_not_run_where_a_budget_has_no_verdict():
    one = pd.DataFrame(
        [
            {
                "study": "pg_vs_zo",
                "budget": "smoke",
                "claim_id": "Z1",
                "verdict": "PASS",
                "reason": "ok",
                "effect": 1e-12,
                "ci_low": float("nan"),
                "ci_high": float("nan"),
                "n_seeds": 1,
            }
        ]  # fmt: skip
    )
    rows = [r for r in pub.verdict_table(one).splitlines() if "| Z1 |" in r]
    assert rows and "**PASS**" in rows[0] and "not run at this budget" in rows[0]
    assert all("not run at this budget | not run at this budget" in r for r in pub.verdict_table(one).splitlines()[2:]
               if "| Z1 |" not in r)  # fmt: skip
