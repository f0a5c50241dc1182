"""Every module in studies/ is a well-formed study at every budget (found by discovery, not a list)."""

import pytest

from studies import BUDGETS, CLAIM_KINDS, discover, expand, validate
from studies._plan import arm_of, plan

MODULES = discover()


def test_discovery_finds_the_studies_and_skips_private_modules():
    assert "flooding" in MODULES
    assert not any(name.startswith("_") for name in MODULES)


@pytest.mark.parametrize("name", sorted(MODULES))
@pytest.mark.parametrize("budget", BUDGETS)
def test_every_budget_builds(name, budget):
    study = MODULES[name].get_study(budget)
    assert study.name == name and study.budget == budget
    configs = validate(study)
    best = {arm_of(study, c): {} for c in configs}  # as if every tuned arm had chosen its nuisance values
    assert configs and len({p.trial_id for p in plan(study, best)}) == len(configs)
    assert study.claims and all(c.id and c.statement and c.rule and c.kind in CLAIM_KINDS for c in study.claims)
    assert study.cost and study.article
    assert all(callable(f) for f in study.figures)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_has_a_docstring_with_command_and_cost(name):
    doc = MODULES[name].__doc__ or ""
    assert f"python -m studies run {name}" in doc and "Cost:" in doc and "Claims:" in doc


def test_flooding_grid_matches_the_spec():
    local = expand(MODULES["flooding"].get_study("local").param_space)
    assert len(local) == 120  # 3 noise levels x 8 flood levels x 5 seeds
    assert {c["dataset"] for c in local} == {"mnist_5k"} and {c["epochs"] for c in local} == {150}
    assert sorted({c["flood_level"] for c in local if c["label_noise"] == 0.0}) == [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.6]
    smoke = expand(MODULES["flooding"].get_study("smoke").param_space)
    assert len(smoke) == 12 and {c["label_noise"] for c in smoke} == {0.2}
    full = MODULES["flooding"].get_study("full")
    assert full.resources["gpu"] == 0.25 and {c["dataset"] for c in expand(full.param_space)} == {"cifar10", "cifar100"}
