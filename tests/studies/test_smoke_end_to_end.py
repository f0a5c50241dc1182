"""The flooding study at smoke budget through Ray, then the analysis from Parquet alone."""

import pytest

from analysis.report import report_all
from analysis.schema import read_trials, read_verdicts
from studies import expand, load
from studies._runner import run

pytestmark = pytest.mark.slow  # every study's smoke budget end to end: the second tier


def test_flooding_smoke_runs_and_reports(tmp_path, ray_session):
    summary = run(load("flooding", "smoke"), tmp_path / "results")
    assert summary["ok"] == 12 and summary["failed"] == 0 and summary["bundles"] == 2  # fused by default, 2 slots
    trials = read_trials(tmp_path / "results" / "flooding")
    assert (trials["status"] == "ok").all() and len(trials) == 13  # 12 runs and the exact checks
    index = report_all(tmp_path / "results", tmp_path / "reports")
    verdicts = read_verdicts(tmp_path / "reports" / "flooding").set_index("claim_id")
    # Exact claims and controls are decided at smoke; the controls behave, so the study is valid.
    assert verdicts.loc["F4", "verdict"] == "SUPPORTED"
    assert verdicts.loc["F-P1", "verdict"] == "PASS" and verdicts.loc["F-P2", "verdict"] == "PASS"
    assert verdicts.loc["F-C1", "verdict"] == "FAIL" and verdicts["controls_ok"].all()
    # Empirical claims at smoke never claim more than the direction.
    assert verdicts.loc["F1", "verdict"] == "INCONCLUSIVE" and verdicts.loc["F6", "verdict"] == "INCONCLUSIVE"
    assert "flooding/smoke F4: SUPPORTED" in index.read_text()
    figures = {p.stem for p in (tmp_path / "reports" / "flooding" / "smoke").glob("*.png")}
    assert {"test_loss_curves", "mechanics", "isolation_test_acc", "flatness", "exact_identity", "trial_status"} <= figures
    # The same study with every run in its own Ray trial gives the same verdicts.
    alone = run(load("flooding", "smoke"), tmp_path / "alone", fuse=False)
    assert alone["ok"] == 12 and alone["bundles"] == 0
    report_all(tmp_path / "alone", tmp_path / "reports_alone")
    unfused = read_verdicts(tmp_path / "reports_alone" / "flooding").set_index("claim_id")
    assert unfused["verdict"].to_dict() == verdicts["verdict"].to_dict()
    assert unfused["n_seeds"].to_dict() == verdicts["n_seeds"].to_dict()


def test_lr_finiteness_smoke_runs_and_reports(tmp_path, ray_session):
    summary = run(load("lr_finiteness", "smoke"), tmp_path / "results")
    assert summary["ok"] + summary["diverged"] == 28 and summary["failed"] == 0
    report_all(tmp_path / "results", tmp_path / "reports")
    verdicts = read_verdicts(tmp_path / "reports" / "lr_finiteness").set_index("claim_id")
    for claim in ("I1", "I2", "I3"):
        assert verdicts.loc[claim, "verdict"] == "SUPPORTED", verdicts.loc[claim, "reason"]
    assert (verdicts.loc[["I-P1", "I-P2", "I-P3"], "verdict"] == "PASS").all() and verdicts["controls_ok"].all()
    for claim in ("I4", "I5", "I6"):  # directions only at smoke (2 seeds: also under the minimum of 3)
        reason = verdicts.loc[claim, "reason"]
        assert verdicts.loc[claim, "verdict"] == "INCONCLUSIVE", reason
        assert reason.startswith("direction only at smoke") or "too few seeds" in reason, reason
    figures = {p.stem for p in (tmp_path / "reports" / "lr_finiteness" / "smoke").glob("*.png")}
    assert {"exact_orders", "two_parameter_model", "regularisation_at_matched_loss", "accuracy_vs_step_size"} <= figures
    assert {"edge_of_stability", "flatness", "trial_status"} <= figures


def test_weissi_smoke_runs_and_reports(tmp_path, ray_session):
    summary = run(load("weissi", "smoke"), tmp_path / "results")
    assert summary["ok"] == 22 and summary["failed"] == 0 and summary["bundles"] >= 2  # fused per optimiser
    report_all(tmp_path / "results", tmp_path / "reports")
    verdicts = read_verdicts(tmp_path / "reports" / "weissi").set_index("claim_id")
    alone = run(load("weissi", "smoke"), tmp_path / "alone", fuse=False)  # the same verdicts with every run alone
    assert alone["ok"] == 22 and alone["bundles"] == 0
    report_all(tmp_path / "alone", tmp_path / "reports_alone")
    unfused = read_verdicts(tmp_path / "reports_alone" / "weissi").set_index("claim_id")
    assert unfused["verdict"].to_dict() == verdicts["verdict"].to_dict()
    for claim in ("W1", "W2", "W3", "W4"):
        assert verdicts.loc[claim, "verdict"] == "SUPPORTED", verdicts.loc[claim, "reason"]
    assert verdicts.loc["W-C1", "verdict"] == "FAIL" and verdicts.loc["W-P1", "verdict"] == "PASS"
    assert verdicts["controls_ok"].all()
    for claim in ("W5", "W6", "W7"):
        assert verdicts.loc[claim, "verdict"] == "INCONCLUSIVE"
    figures = {p.stem for p in (tmp_path / "reports" / "weissi" / "smoke").glob("*.png")}
    assert {"invariance", "orbit", "balance_dynamics", "optimiser_equivalence", "isolation", "robustness", "norms"} <= figures


def test_pg_vs_zo_smoke_runs_and_reports(tmp_path, ray_session):
    summary = run(load("pg_vs_zo", "smoke"), tmp_path / "results")
    assert summary["ok"] == 5 and summary["failed"] == 0
    report_all(tmp_path / "results", tmp_path / "reports")
    verdicts = read_verdicts(tmp_path / "reports" / "pg_vs_zo").set_index("claim_id")
    for claim in ("Z1", "Z2", "Z3", "Z4"):
        assert verdicts.loc[claim, "verdict"] == "SUPPORTED", verdicts.loc[claim, "reason"]
    assert verdicts.loc["Z-C1", "verdict"] == "FAIL" and verdicts.loc["Z-C2", "verdict"] == "FAIL"
    assert verdicts["controls_ok"].all() and "level chance + 50 pp reached" in verdicts.loc["Z5", "reason"]
    assert verdicts.loc["Z6", "reason"].startswith("not_run_at_budget")
    figures = {p.stem for p in (tmp_path / "reports" / "pg_vs_zo" / "smoke").glob("*.png")}
    assert {"identities", "variance_vs_dimension", "baselines", "cosine_vs_q", "learning_curves", "final_accuracy"} <= figures


def test_attention_scaling_smoke_runs_and_reports(tmp_path, ray_session):
    summary = run(load("attention_scaling", "smoke"), tmp_path / "results")
    assert summary["ok"] == 29 and summary["failed"] == 0  # 16 timing (fla: skipped on CPU), 1 decode, 6 LM, 6 recall
    report_all(tmp_path / "results", tmp_path / "reports")
    verdicts = read_verdicts(tmp_path / "reports" / "attention_scaling").set_index("claim_id")
    for claim in ("L2", "L4"):
        assert verdicts.loc[claim, "verdict"] == "SUPPORTED", verdicts.loc[claim, "reason"]
    assert verdicts.loc["L-C1", "verdict"] == "FAIL" and verdicts.loc["L-C2", "verdict"] == "FAIL"
    assert verdicts["controls_ok"].all()
    # L3's exact half (the causal forms agree) is asserted; its decode-latency half is a timing trend measured while
    # the LM trials share the 2 cores, and once came out REFUTED in a full CI run (it passed alone): not asserted here.
    l3 = verdicts.loc["L3", "reason"]
    assert l3.startswith("max form errors: ") and "; RNN step" in l3, l3  # the forms agreed, so decode was judged
    for claim in ("L5", "L6"):  # 2 smoke seeds: under the minimum of 3, and verdicts come from local on anyway
        reason = verdicts.loc[claim, "reason"]
        assert verdicts.loc[claim, "verdict"] == "INCONCLUSIVE", reason
        assert reason.startswith("direction only at smoke") or "too few seeds" in reason, reason
    figures = {p.stem for p in (tmp_path / "reports" / "attention_scaling" / "smoke").glob("*.png")}
    assert {"time_vs_length", "memory_vs_length", "decode_latency", "equivalence", "quality", "row_kl"} <= figures


def test_fast_mlm_smoke_runs_and_reports(tmp_path, ray_session):
    summary = run(load("fast_mlm", "smoke"), tmp_path / "results")
    assert summary["ok"] == 8 and summary["failed"] == 0  # 7 HMM runs and the timing run
    report_all(tmp_path / "results", tmp_path / "reports")
    verdicts = read_verdicts(tmp_path / "reports" / "fast_mlm").set_index("claim_id")
    assert verdicts.loc["T2", "verdict"] == "SUPPORTED", verdicts.loc["T2", "reason"]
    # The leaky control exploits its leak (below the oracle), the additive mask leaks, the oracle is exact.
    assert verdicts.loc["T-C1", "verdict"] == "FAIL", verdicts.loc["T-C1", "reason"]
    assert verdicts.loc["T-C2", "verdict"] == "FAIL" and verdicts.loc["T-P1", "verdict"] == "PASS"
    assert verdicts["controls_ok"].all()
    for claim in ("T1", "T3", "T4", "T5"):  # reported only at smoke
        assert verdicts.loc[claim, "verdict"] == "INCONCLUSIVE"
    figures = {p.stem for p in (tmp_path / "reports" / "fast_mlm" / "smoke").glob("*.png")}
    assert {"efficiency", "oracle_gap", "one_layer_only", "non_inferiority", "throughput"} <= figures


def test_question_generation_smoke_runs_and_reports(tmp_path, ray_session):
    study = load("question_generation", "smoke")
    summary = run(study, tmp_path / "results")
    assert summary["ok"] == len(expand(study.param_space)) and summary["failed"] == 0
    report_all(tmp_path / "results", tmp_path / "reports")
    verdicts = read_verdicts(tmp_path / "reports" / "question_generation").set_index("claim_id")
    # The exact leak tests: the bidirectional mask leaks the next target, the mask without padding leaks padding.
    assert verdicts.loc["Q-C1", "verdict"] == "FAIL" and verdicts.loc["Q-C2", "verdict"] == "FAIL"
    assert verdicts["controls_ok"].all()
    for claim in ("Q1", "Q2", "Q3", "Q4", "Q5"):  # reported only at smoke
        assert verdicts.loc[claim, "verdict"] == "INCONCLUSIVE"
    figures = {p.stem for p in (tmp_path / "reports" / "question_generation" / "smoke").glob("*.png")}
    assert {"pareto", "order_effect", "training", "controls", "diversity"} <= figures
