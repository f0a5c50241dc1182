"""embedding_dim checks on planted tables whose knees are known from how they were made."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis import embedding_dim as ea
from analysis.claims.embedding_dim import CLAIMS
from analysis.figures import embedding_dim as eaf
from analysis.verdict import FAIL, INCONCLUSIVE, PASS, REFUTED, SUPPORTED, Tables
from studies.embedding_dim import grid_dims

CLAIM = {c.id: c for c in CLAIMS}


def decide(claim_id: str, t: Tables):
    """The claim's verdict: its measurement decided by its rule."""
    return CLAIM[claim_id].decide(t)


def _loss(n: float, k: float) -> float:
    """Held-out loss that falls linearly until the planted knee k and is flat after it (its 5%-knee is k)."""
    return 3.0 + max(0.0, (k - n) / k)


def planted(knees: dict[tuple[str, int, int], float], seeds=(0, 1, 2), noise=1e-4, grid: str = "full") -> Tables:
    """w2v trials with loss curves whose knee is `knees[(algo, N, T)]` on the dimension grid of a budget."""
    rng = np.random.default_rng(0)
    rows = []
    for (algo, N, T), k in knees.items():
        for n in grid_dims(N, grid):
            for s in seeds:
                config = {"task": "w2v", "corpus": "gcide", "algo": algo, "vocab_size": N, "tokens": T, "dim": n, "seed": s}
                row = {"trial_id": f"{algo}-{N}-{T}-{n}-{s}", "status": "ok", "seed": s}
                row |= {f"config/{k}": v for k, v in config.items()}
                loss = _loss(n, k) + noise * rng.standard_normal()
                rows.append(row | {"heldout/sgns_loss": loss, "bench/ws353": 4 - loss, "coverage/ws353": 0.5})
    empty = pd.DataFrame(columns=["trial_id", "step", "metric", "value"])
    return Tables("local", pd.DataFrame(rows), empty, pd.DataFrame(columns=["step", "metric", "value"]))


SU_KNEES = {("sgns", N, 2_000_000): math.ceil(8.33 * math.log(N)) for N in (1000, 4000, 16000)}


def test_knees_are_recovered():
    c = ea.conditions(planted(SU_KNEES))
    # 80 is 1/81 of the range short of the plateau at N = 16k: within 5%, so it is the knee on the fine grid.
    assert c.sort_values("N")["knee"].tolist() == [58, 70, 80] and not c["non_monotone"].any()


def test_su_law_is_supported_by_d1_d2_d3():
    t = planted(SU_KNEES)
    assert decide("D1", t).verdict == SUPPORTED  # r = 81 / 58 = 1.397; the grid cannot tell it from 1.401
    # On the coarser local grid (32, 58, 64, 81, 128) the interval (64/58, 81/32) also holds the power law's 1.741.
    assert decide("D1", planted(SU_KNEES, grid="local")).verdict == INCONCLUSIVE
    d2 = decide("D2", t)
    assert d2.verdict == SUPPORTED and "ws353 N=1000: 58 (cov 0.50)" in d2.reason  # benchmark knees reported beside
    d3 = decide("D3", t)
    assert d3.verdict == SUPPORTED, d3.reason


def test_constant_knees_refute_the_log_law_only_when_the_grid_resolves_it():
    const = dict.fromkeys(SU_KNEES, 32)
    d1 = decide("D1", planted(const))
    assert d1.verdict == REFUTED and d1.effect == 1.0  # (24/32, 32/24) excludes 1.401
    assert decide("D1", planted(const, grid="local")).verdict == INCONCLUSIVE  # (16/32, 32/16) does not
    assert decide("D2", planted(const)).verdict == REFUTED  # 32 / 80.6 = 0.40 < 0.5 at N = 16k (one N suffices)
    loose = {("sgns", 1000, 2_000_000): 32, ("sgns", 4000, 2_000_000): 48, ("sgns", 16000, 2_000_000): 48}
    assert decide("D2", planted(loose)).verdict == SUPPORTED  # ratios 0.56, 0.69, 0.60: all inside [0.5, 2]


def test_d3_refuted_when_the_su_dimension_is_far_below_the_plateau():
    late = dict.fromkeys(SU_KNEES, 256)
    assert decide("D3", planted(late)).verdict == REFUTED


def test_d5_corpus_size_and_algorithm():
    base = dict(SU_KNEES)
    same = base | {("sgns", 4000, 500_000): 70, ("cbow", 4000, 2_000_000): 70}
    assert decide("D5", planted(same)).verdict == SUPPORTED
    shifted = base | {("sgns", 4000, 500_000): 128, ("cbow", 4000, 2_000_000): 70}
    v = decide("D5", planted(shifted))
    assert v.verdict == REFUTED and v.effect == pytest.approx(128 / 70 - 1)


def test_no_runs_is_not_run_at_budget():
    empty = Tables("smoke", pd.DataFrame(), pd.DataFrame(columns=["trial_id", "step", "metric", "value"]), pd.DataFrame())
    for cid in ("D1", "D2", "D3", "D5", "D4"):
        assert decide(cid, empty).verdict == INCONCLUSIVE
    assert decide("D-P2", empty).verdict == FAIL


def _tree_tables(knees: dict[tuple[int, int], int]) -> Tables:
    dims = [1, 2, 4, 6, 8, 12, 16, 24, 32]
    trials, metrics = [], []
    for (b, N), k in knees.items():
        tid = f"tree-{b}-{N}"
        trials.append(
            {"trial_id": tid, "status": "ok", "seed": 0, "config/task": "tree", "config/b": b, "config/vocab_size": N}
        )
        metrics += [(tid, n, "tree/kl", max(0.0, (k - n) / k) + 1e-3) for n in dims]
    m = pd.DataFrame(metrics, columns=["trial_id", "step", "metric", "value"])
    return Tables("smoke", pd.DataFrame(trials), m, pd.DataFrame(columns=["step", "metric", "value"]))


def test_tree_control_passes_on_monotone_knees_and_fails_otherwise():
    good = {(2, 64): 12, (2, 256): 12, (2, 1024): 16, (4, 64): 16, (4, 256): 24}
    v = decide("D-P2", _tree_tables(good))
    assert v.verdict == PASS, v.reason
    assert decide("D-P2", _tree_tables(good | {(2, 1024): 8})).verdict == FAIL  # falls with N
    assert decide("D-P2", _tree_tables(good | {(4, 256): 8})).verdict == FAIL  # b = 4 below b = 2


def test_exact_check_rules():
    checks = pd.DataFrame(
        [(i, "dp1/h", h) for i, h in enumerate([-7.77471, -15.4734])]
        + [(i, "dp1/table", h) for i, h in enumerate([-7.77471, -15.4734])]
        + [(i, "dp1/limit_gap", g) for i, g in enumerate([1e-2, 1e-3, 1e-5])]
        + [(i, "dp1/limit_n", n) for i, n in enumerate([4, 512, 8192])],
        columns=["step", "metric", "value"],
    )
    t = Tables("smoke", pd.DataFrame(), pd.DataFrame(), checks)
    assert decide("D-P1", t).verdict == PASS
    bad = checks.copy()
    bad.loc[bad["metric"] == "dp1/h", "value"] += 0.01
    assert decide("D-P1", Tables("smoke", pd.DataFrame(), pd.DataFrame(), bad)).verdict == FAIL


def test_figures_draw_on_planted_tables():
    t = planted(SU_KNEES | {("sgns", 4000, 500_000): 70, ("cbow", 4000, 2_000_000): 64})
    names = [f(t)[0] for f in (eaf.fig_quality, eaf.fig_knees, eaf.fig_tokens)]
    assert names == ["quality_vs_dim", "knee_vs_lnN", "knee_vs_tokens"]
    assert eaf.fig_tree(_tree_tables({(2, 64): 12, (4, 64): 16}))[0] == "tree_control"
    assert eaf.fig_derivation(t) is None and eaf.fig_capacity(t) is None  # no exact checks in these tables


def planted_heads(knees: dict[int, float], arms=("d_model", "heads"), seeds=(0, 1, 2), noise=1e-4) -> Tables:
    """D4 head runs whose validation loss has its 5%-knee at `knees[L]` on the full budget's head_dim grid."""
    from studies.embedding_dim import HEADS

    rng = np.random.default_rng(1)
    rows = []
    for arm in arms:
        for L, k in knees.items():
            for hd in HEADS["full"]["head_dim"]:
                for s in seeds:
                    config = {"task": "head", "arm": arm, "context": L, "head_dim": hd, "seed": s}
                    row = {"trial_id": f"{arm}-{L}-{hd}-{s}", "status": "ok", "seed": s}
                    row |= {f"config/{key}": v for key, v in config.items()}
                    rows.append(row | {"head/val_nats": _loss(hd, k) + noise * rng.standard_normal()})
    empty = pd.DataFrame(columns=["trial_id", "step", "metric", "value"])
    return Tables("full", pd.DataFrame(rows), empty, pd.DataFrame(columns=["step", "metric", "value"]))


def test_d4_applies_the_d1_and_d2_rules_to_head_size_knees():
    # 8.33 ln L = 40.4, 52.0, 63.5, 75.1; on the grid 16 ... 128 the knees land at 48, 64, 64, 96.
    su = {L: 8.33 * math.log(L) for L in (128, 512, 2048, 8192)}
    h = ea.head_knees(planted_heads(su))
    assert h[h["arm"] == "d_model"].sort_values("N")["knee"].tolist() == [48, 64, 64, 96]
    v = decide("D4", planted_heads(su))
    # r = 96 / 48 = 2.0 in [64/48, 96/32] = [1.33, 3.0]: holds the ln-ratio 1.857 and the power law's 2.297 too.
    assert v.verdict == INCONCLUSIVE and "(2) SUPPORTED" in v.reason and v.effect == 2.0
    const = decide("D4", planted_heads(dict.fromkeys(su, 24)))
    assert const.verdict == REFUTED  # r in [16/24, 24/16] excludes 1.857, and 24 / 75.1 < 0.5 at L = 8192
    assert "heads L=128: knee 24" in const.reason  # the second arm is reported
    assert decide("D4", planted_heads({128: 40}, arms=("d_model",))).verdict == INCONCLUSIVE  # one L: incomplete


def test_the_chinese_arm_is_reported_apart_and_leaves_the_main_claims_alone():
    main = planted(SU_KNEES)
    zh = planted({("sgns", 1000, 900_000): 16, ("sgns", 4000, 900_000): 24}, seeds=(0, 1))
    zh.trials["config/corpus"] = "pku"
    zh.trials["trial_id"] = "zh-" + zh.trials["trial_id"]
    both = Tables("local", pd.concat([main.trials, zh.trials], ignore_index=True), main.metrics, main.checks)
    for cid in ("D1", "D2", "D3", "D5"):
        assert decide(cid, both).reason == decide(cid, main).reason  # the second corpus never enters the main grid or D5
    dd3 = decide("D-D3", both)
    assert "N=1000 (T=900000): knee 16" in dd3.reason and "N=4000 (T=900000): knee 24" in dd3.reason
    assert decide("D-D3", main).reason.startswith("not_run_at_budget")


def test_the_unk_ablation_is_reported_apart_and_leaves_the_main_claims_alone():
    main = planted(SU_KNEES)
    main.trials["config/oov"] = "drop"
    unk = planted({("sgns", 1000, 2_000_000): 32, ("sgns", 16000, 2_000_000): 96})  # same conditions, other knees
    unk.trials["config/oov"] = "unk"
    unk.trials["trial_id"] = "unk-" + unk.trials["trial_id"]
    both = Tables("full", pd.concat([main.trials, unk.trials], ignore_index=True), main.metrics, main.checks)
    for cid in ("D1", "D2", "D3", "D5"):
        assert decide(cid, both).reason == decide(cid, main).reason  # <unk> runs never mix into a main condition
    dd4 = decide("D-D4", both)
    assert dd4.verdict == INCONCLUSIVE and dd4.reason.startswith("diagnostic")
    assert "N=1000: <unk> 32" in dd4.reason and "vs drop 58 (-45%)" in dd4.reason and "N=16000: <unk> 96" in dd4.reason
    assert decide("D-D4", main).reason.startswith("not_run_at_budget")
    no_column = planted(SU_KNEES)  # tables from before the ablation (no config/oov) read as dropped
    assert decide("D1", no_column).reason == decide("D1", main).reason


def test_a_larger_chinese_arm_never_becomes_the_main_corpus():
    main = planted({("sgns", 1000, 2_000_000): 58, ("sgns", 16000, 2_000_000): 81}, seeds=(0, 1))
    zh = planted({("sgns", N, 200_000_000): 24 for N in (1000, 3000, 10000, 30000)})  # more runs than the main grid
    zh.trials["config/corpus"] = "zhwiki"
    zh.trials["trial_id"] = "zh-" + zh.trials["trial_id"]
    both = Tables("full", pd.concat([main.trials, zh.trials], ignore_index=True), main.metrics, main.checks)
    assert len(zh.trials) > len(main.trials)
    for cid in ("D1", "D2", "D3"):
        assert decide(cid, both).reason == decide(cid, main).reason
    dd3 = decide("D-D3", both)
    assert "zhwiki N=1000 (T=200000000): knee 24" in dd3.reason and "zhwiki N=30000" in dd3.reason
    only_zh = Tables("full", zh.trials, main.metrics, main.checks)
    assert decide("D1", only_zh).reason.startswith("not_run_at_budget")  # Chinese runs alone decide no main claim


def test_pip_dimensions_are_reported_beside_the_knees():
    t = planted(SU_KNEES)
    assert decide("D-D5", t).reason.startswith("not_run_at_budget")
    pip_rows = pd.DataFrame(
        [{"trial_id": f"pip-{N}", "status": "ok", "seed": 0, "config/task": "pip", "config/corpus": "gcide",
          "config/algo": "pip", "config/vocab_size": N, "config/tokens": 2_000_000, "config/dim": 0, "pip/dim": d,
          "pip/dim_lo": d - 1, "pip/dim_hi": d + 2, "pip/sigma": 0.5} for N, d in ((1000, 40), (4000, 55))]
    )  # fmt: skip
    both = Tables("local", pd.concat([t.trials, pip_rows], ignore_index=True), t.metrics, t.checks)
    for cid in ("D1", "D2", "D3", "D5"):
        assert decide(cid, both).reason == decide(cid, t).reason  # PIP fits are not word-vector runs
    v = decide("D-D5", both)
    assert v.verdict == INCONCLUSIVE and "N=1000 T=2000000: PIP 40 [39, 42] (sigma 0.500), knee 58" in v.reason
    assert "N=4000 T=2000000: PIP 55 [54, 57]" in v.reason and "knee 70" in v.reason


def _fail(t: Tables, N: int, n: int, seed: int, status: str = "failed") -> Tables:
    """Mark one word-vector run as not finished (no metrics), as the runner records a failed or diverged trial."""
    tr = t.trials
    run = (tr["config/vocab_size"] == N) & (tr["config/dim"] == n) & (tr["seed"] == seed)
    assert run.sum() == 1
    tr.loc[run, "status"] = status
    tr.loc[run, ["heldout/sgns_loss", "bench/ws353"]] = np.nan
    return t


def test_one_seed_decides_no_knee_claim():
    # One seed gives every knee a zero-width bootstrap interval: D1 and D2 were SUPPORTED on it, now too few seeds.
    one = planted(SU_KNEES | {("sgns", 4000, 500_000): 70, ("cbow", 4000, 2_000_000): 70}, seeds=(0,))
    for cid in ("D1", "D2", "D3", "D5"):
        v = decide(cid, one)
        assert v.verdict == INCONCLUSIVE and "too few seeds" in v.reason, (cid, v.reason)
    assert decide("D5", planted(SU_KNEES | {("cbow", 4000, 2_000_000): 70}, seeds=(0, 1))).verdict == SUPPORTED  # spec: 2


def test_a_failed_run_at_the_decisive_dimension_leaves_d3_undecided_and_named():
    # N = 4k plateaus only at 256, so Q(70) is far below it: REFUTED. The old `quality` dropped n = 70 for every seed
    # of N = 4k when one run there failed, and D3 then skipped N = 4k and came out SUPPORTED on the other two.
    mixed = SU_KNEES | {("sgns", 4000, 2_000_000): 256}
    assert decide("D3", planted(mixed)).verdict == REFUTED
    v = decide("D3", _fail(planted(mixed), 4000, 70, seed=0))
    assert v.verdict == INCONCLUSIVE and "too few seeds in N=4000 (n = 2 < 3)" in v.reason
    assert "N=4000: seed 0 at n = 70: failed" in v.reason
    # The knee of N = 4k now reads two complete seeds: D2 cannot decide either, and says which run is missing.
    d2 = decide("D2", _fail(planted(SU_KNEES), 4000, 70, seed=1, status="diverged"))
    assert d2.verdict == INCONCLUSIVE and "N=4000: seed 1 at n = 70: diverged" in d2.reason
    # A run absent from the table altogether is named as missing.
    t = planted(SU_KNEES)
    gone = Tables("local", t.trials[t.trials["trial_id"] != "sgns-1000-2000000-512-2"], t.metrics, t.checks)
    v = decide("D3", gone)
    assert v.verdict == INCONCLUSIVE and "seed 2 at n = 512: missing" in v.reason


def test_all_equal_differences_use_the_sign_flip_test():
    # Noise-free curves: every paired difference is equal. The old `_t_p` called that p = 0 (and the bootstrap
    # 1e-4), so D3 was SUPPORTED; the exact sign-flip test over 3 seeds gives p = 1/8 per N: undecided.
    v = decide("D3", planted(SU_KNEES, noise=0.0))
    assert v.verdict == INCONCLUSIVE
    assert {r["test"] for r in v.detail} == {"sign-flip"} and all(r["p"] == pytest.approx(1 / 8) for r in v.detail)


def test_an_unfinished_tree_leaves_the_tree_control_undecided():
    good = {(2, 64): 12, (2, 256): 12, (2, 1024): 16, (4, 64): 16, (4, 256): 24}
    t = _tree_tables(good)
    t.trials.loc[t.trials["trial_id"] == "tree-2-1024", "status"] = "failed"
    v = decide("D-P2", t)
    assert v.verdict == INCONCLUSIVE and "b=2 N=1024 seed 0: failed" in v.reason
