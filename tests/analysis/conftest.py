"""Planted flooding results: tables whose verdicts are known from how they were made."""

import numpy as np
import pandas as pd
import pytest

from analysis import style
from analysis.schema import upsert_trials, write_metrics
from analysis.verdict import Tables

EPS = [0.04, 0.02, 0.01, 0.005]
GOOD_CHECKS = pd.DataFrame(
    [(i, "eps", e) for i, e in enumerate(EPS)]
    + [(i, f"{n}/err", e**k) for n, k in [("e2_product", 3), ("e2_mlp", 3), ("fc1_mlp", 1)] for i, e in enumerate(EPS)]
    + [
        (0, "e1/abs_err", 1e-16),
        (0, "fp1/value_err", 0.0),
        (0, "fp1/grad_err", 0.0),
        (0, "fp1/sign_above_b", 1.0),
        (0, "fp1/sign_below_b", -1.0),
        (0, "fp2/eta", 0.1),
        (0, "fp2/realised", 0.1),
        (0, "fp2/kept_class", 0.0),
        (0, "fp2/n", 1000.0),
    ],
    columns=["step", "metric", "value"],
)


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test drew to look at, so they never pile up over the suite (the report closes its own)."""
    yield
    style.plt.close("all")


def planted(
    effect: float,
    seeds: int = 5,
    etas=(0.2, 0.4),
    levels=(0.0, 0.3, 0.6),
    epochs: int = 30,
    bump: bool = True,
    every_level: bool = False,
) -> Tables:
    """Trials whose b = 0.6 arm (or every b > 0) beats b = 0 by `effect`; test-loss curves rebound under flooding if `bump`."""
    rng = np.random.default_rng(0)
    trials, metrics = [], []
    for eta in etas:
        for b in levels:
            for s in range(seeds):
                tid = f"e{eta}-b{b}-s{s}"
                gain = effect if b == 0.6 or (every_level and b > 0) else 0.0
                trials.append(
                    {
                        "trial_id": tid,
                        "seed": s,
                        "status": "ok",
                        "arm": f"b={b}",
                        "config/label_noise": eta,
                        "config/flood_level": b,
                        "train/lambda_max": 5.0 - (2.0 if b == 0.6 else 0.0) + 0.1 * rng.standard_normal(),
                    }
                )
                t = np.arange(1, epochs + 1)
                test_loss = 0.5 + 0.02 * np.maximum(t - 5, 0)
                if b > 0 and bump:
                    test_loss = np.where(t > 18, test_loss[17] - 0.03 * (t - 18), test_loss)
                for step in t:
                    noise = 0.002 * rng.standard_normal()
                    metrics += [
                        (tid, step, "val/acc", 0.7 + gain * step / epochs + noise),
                        (tid, step, "test/acc", 0.8 + gain * step / epochs + noise),
                        (tid, step, "test/loss", test_loss[step - 1]),
                        (tid, step, "train/loss", max(b, 2.0 / step) * (1 + 0.05 * rng.standard_normal())),
                        (tid, step, "train/flood_prop", 0.5 if b and 2.0 / step < b else 0.0),
                    ]
    m = pd.DataFrame(metrics, columns=["trial_id", "step", "metric", "value"])
    return Tables("local", pd.DataFrame(trials), m, pd.DataFrame(columns=["step", "metric", "value"]))


def write_planted(results, tables: Tables, extra_statuses: dict[str, str] | None = None) -> None:
    """Write planted tables as a flooding results directory (`extra_statuses`: trial id -> status to force)."""
    study_dir = results / "flooding"
    rows = []
    for _, r in tables.trials.iterrows():
        status = (extra_statuses or {}).get(r["trial_id"], "ok")
        rows.append(
            {
                **r.to_dict(),
                "study": "flooding",
                "budget": tables.budget,
                "phase": "main",
                "status": status,
                "error": "RuntimeError: planted" if status == "failed" else None,
                "config_hash": r["trial_id"],
            }
        )
        m = tables.metrics[tables.metrics["trial_id"] == r["trial_id"]]
        write_metrics(study_dir, r["trial_id"], list(zip(m["step"], m["series"], m["metric"], m["value"], strict=True)))
    rows.append(
        {
            "study": "flooding",
            "budget": tables.budget,
            "phase": "checks",
            "arm": "checks",
            "trial_id": "checks-x",
            "seed": 0,
            "status": "ok",
            "config_hash": "x",
        }
    )
    checks = list(zip([0] * len(GOOD_CHECKS), GOOD_CHECKS["step"], GOOD_CHECKS["metric"], GOOD_CHECKS["value"], strict=True))
    write_metrics(study_dir, "checks-x", checks)  # a check's values are one series at step 0, as the runner writes them
    upsert_trials(study_dir, rows)
