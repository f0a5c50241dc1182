"""T-TA vs MLM: claim checks and figures, computed from the study's Parquet tables alone.

Language-model trials (`config/task = lm`) report validation `pnll` at each evaluation step with its per-window
values as a series (`series` = window), and at their last step the test per-window values (with the HMM oracle's
per-window pseudo-NLL beside them). The timing trial reports per-repeat scoring seconds at steps 0 ... reps - 1,
then at step `reps` the lengths T timed and the seconds at each, as series. The exact checks hold the leak gradients.

The study module imports this one, and so does every Ray worker that runs a trial: plotting (`analysis.style`,
seaborn) and `analysis.stats` (scipy.stats) are imported inside the functions that use them, which saves each
worker about 3 s of imports (measured with `python -X importtime`; it matters at the smoke budget's minute).
"""

from dataclasses import replace

import numpy as np
import pandas as pd

from analysis.verdict import FAIL, INCONCLUSIVE, PASS, REFUTED, SUPPORTED, Tables, Verdict

VAL_WINDOWS, TEST_WINDOWS, TEST_ORACLE = "val/window_pnll", "test/window_pnll", "test/window_oracle"
"""Series of one value per window: validation pnll (at each evaluation), test pnll and the oracle's (at the end)."""
LENGTHS = "time/length"
"""The timing trial's series of the lengths T timed; `time/<objective>_len_s` are the seconds at each."""
LEAK_TOL = 1e-12
ORACLE_SLACK = 0.01  # T2: pnll >= oracle - 0.01 nats
LEAK_GAP = 0.05  # T-C1: pnll < oracle - 0.05 nats
MARGIN = 1.02  # T3/T5: pnll ratio
LEARNED = 0.05  # T3/T5: the better MLM must beat the training unigram by this many nats, or there is nothing to compare
SPEEDUP = 6.0  # T4
RESAMPLES = 2000
ARMS = ("mlm15", "mlm40", "tta", "leaky", "l2r")


def colours() -> dict[str, str]:
    """Colour of each arm: MLM-15 as the baseline, T-TA as the technique, the leaky control in red."""
    from analysis import style

    return {"mlm15": style.BASELINE, "mlm40": "#7f7f7f", "tta": style.FLOODED, "leaky": style.CONTROL, "l2r": "#2ca02c"}


def at_smoke(t: Tables, v: Verdict) -> Verdict:
    """Empirical claims only report their direction at smoke (150 steps, 2 seeds): the verdict becomes INCONCLUSIVE
    and the reason says what it would have been."""
    if t.budget != "smoke" or v.verdict not in (SUPPORTED, REFUTED):
        return v
    return replace(v, verdict=INCONCLUSIVE, reason=f"smoke, reported only (would be {v.verdict}): {v.reason}")


def arm(objective: str, rate: float) -> str:
    """Display name of an objective: mlm15, mlm40, tta, leaky, l2r."""
    return f"mlm{round(100 * rate)}" if objective == "mlm" else objective


def lm_runs(t: Tables) -> pd.DataFrame:
    """Finished language-model runs with columns `trial_id, data, arm, depth, seed, steps` and their finals."""
    tr = t.trials
    if tr.empty or "config/task" not in tr:
        return pd.DataFrame()
    runs = tr[(tr["status"] == "ok") & (tr["config/task"] == "lm")].copy()
    if runs.empty:
        return runs
    runs["arm"] = [arm(o, r) for o, r in zip(runs["config/objective"], runs["config/mask_rate"], strict=True)]
    runs["data"], runs["depth"] = runs["config/data"], runs["config/depth"].astype(int)
    runs["steps"] = runs["config/steps"].astype(int)
    return runs


def primary(runs: pd.DataFrame) -> tuple[str, int] | None:
    """(data, depth) of the T1/T3 comparison: real text when it ran (its shallowest depth), else the HMM's."""
    main = runs[runs["arm"].isin(["mlm15", "tta"])]
    if main.empty:
        return None
    text = main[main["data"] != "hmm"]
    pick = text if len(text) else main
    return str(pick["data"].iloc[0]), int(pick["depth"].min())


def _series(t: Tables, trial_id: str, metric: str) -> pd.Series:
    """One run's scalar metric by step."""
    m = t.metrics[(t.metrics["trial_id"] == trial_id) & (t.metrics["metric"] == metric)]
    return m.set_index("step")["value"].sort_index()


def val_windows(t: Tables, trial_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(evaluation steps, per-window validation pnll `[evals, windows]`) of one run."""
    m = t.metrics[(t.metrics["trial_id"] == trial_id) & (t.metrics["metric"] == VAL_WINDOWS)]
    wide = m.pivot(index="step", columns="series", values="value").sort_index()
    return wide.index.to_numpy(), wide.to_numpy()


def test_windows(t: Tables, trial_id: str, metric: str = TEST_WINDOWS) -> np.ndarray:
    """Per-window test values of one run (pnll, or the oracle's with `TEST_ORACLE`)."""
    return t.series(metric, trial_id)


def _cell(runs: pd.DataFrame, data: str, depth: int) -> pd.DataFrame:
    return runs[(runs["data"] == data) & (runs["depth"] == depth)]


# T1: steps to MLM-15's final validation pnll.


def _first_reach(curve: np.ndarray, target: float) -> int | None:
    hit = np.nonzero(curve <= target)[0]
    return int(hit[0]) if len(hit) else None


def t1_ratio(t: Tables, seed: int = 0) -> dict | None:
    """r = s_total / s_TTA with its bootstrap CI over seeds and validation windows (paired across arms)."""
    runs = lm_runs(t)
    where = primary(runs) if len(runs) else None
    if where is None:
        return None
    cell = _cell(runs, *where)
    ids = {(a, int(s)): tid for a, s, tid in zip(cell["arm"], cell["seed"], cell["trial_id"], strict=True)}
    seeds = sorted(s for (a, s) in ids if a == "tta" and ("mlm15", s) in ids)
    if not seeds:
        return None
    mlm, tta, steps = [], [], None
    for s in seeds:
        ms, mv = val_windows(t, ids[("mlm15", s)])
        ts, tv = val_windows(t, ids[("tta", s)])
        if len(ms) == 0 or not np.array_equal(ms, ts) or mv.shape != tv.shape:
            return None
        steps, mlm, tta = ms, [*mlm, mv], [*tta, tv]
    s_total = int(steps[-1])
    never = sum(_first_reach(np.nanmean(tv, 1), np.nanmean(mv[-1])) is None for mv, tv in zip(mlm, tta, strict=True))

    def ratio(seed_idx, win_idx) -> tuple[float, int | None]:
        target = np.nanmean(np.concatenate([mlm[i][-1, w] for i, w in zip(seed_idx, win_idx, strict=True)]))
        curve = np.nanmean(np.concatenate([tta[i][:, w] for i, w in zip(seed_idx, win_idx, strict=True)], axis=1), 1)
        e = _first_reach(curve, target)
        return (0.0 if e is None else s_total / steps[e]), e

    n_win = mlm[0].shape[1]
    r, e = ratio(range(len(seeds)), [np.arange(n_win)] * len(seeds))
    rng = np.random.default_rng(seed)
    boot = np.empty(RESAMPLES)
    for b in range(RESAMPLES):
        pick = rng.integers(0, len(seeds), size=len(seeds))
        boot[b] = ratio(pick, [rng.integers(0, n_win, size=n_win) for _ in pick])[0]
    low, high = np.percentile(boot, [2.5, 97.5])
    wall = np.nan
    if e is not None:
        mlm_s = np.mean([_series(t, ids[("mlm15", s)], "time/train_s").iloc[-1] for s in seeds])
        tta_s = np.mean([_series(t, ids[("tta", s)], "time/train_s").loc[steps[e]] for s in seeds])
        wall = float(mlm_s / tta_s)
    base = cell[cell["arm"] == "mlm15"]
    gain = float((base["test/unigram_pnll"] - base["test/pnll"]).mean()) if "test/unigram_pnll" in base else np.nan
    return {"r": r, "low": float(low), "high": float(high), "never": never, "seeds": len(seeds), "s_total": s_total,
            "mlm15_gain_over_unigram": gain,
            "s_tta": None if e is None else int(steps[e]), "wall_ratio": wall, "data": where[0], "depth": where[1],
            "windows": n_win}  # fmt: skip


def check_t1(t: Tables) -> Verdict:
    """T1: bootstrap CI of s_total / s_TTA above 1."""
    res = t1_ratio(t)
    if res is None:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no paired MLM-15 / T-TA validation curves")
    if res["never"] >= 2 or (res["never"] and res["never"] == res["seeds"]):
        verdict = REFUTED
    elif res["low"] > 1:
        verdict = SUPPORTED
    elif res["high"] < 1:
        verdict = REFUTED
    else:
        verdict = INCONCLUSIVE
    reached = f"at step {res['s_tta']} of {res['s_total']}" if res["s_tta"] else "never"
    return at_smoke(
        t,
        Verdict(
            verdict,
            f"{res['data']} depth {res['depth']}: T-TA reaches MLM-15's final validation pnll {reached}; r = {res['r']:.2f}, "
            f"95% CI [{res['low']:.2f}, {res['high']:.2f}] ({res['seeds']} seeds x {res['windows']} windows); never reached "
            f"in {res['never']} seed(s); wall-clock ratio {res['wall_ratio']:.2f}; MLM-15 beats the training unigram by "
            f"{res['mlm15_gain_over_unigram']:+.3f} nats on test",
            effect=res["r"],
            ci_low=res["low"],
            ci_high=res["high"],
            threshold=1.0,
            n_seeds=res["seeds"],
            detail=[{k: v for k, v in res.items() if k != "never"} | {"never_reached": res["never"]}],
        ),
    )


# T3/T5: non-inferiority of the pnll ratio against the better MLM.


def _ratio_of_means(rows: np.ndarray) -> float:
    return float(rows[:, 0].mean() / rows[:, 1].mean())


def noninferiority(t: Tables, data: str, depth: int) -> dict | None:
    """Test pnll(T-TA) / pnll(best MLM on validation) with its one-sided 95% bounds (hierarchical, paired)."""
    runs = lm_runs(t)
    cell = _cell(runs, data, depth) if len(runs) else runs
    mlms = cell[cell["arm"].isin(["mlm15", "mlm40"])]
    if mlms.empty or not (cell["arm"] == "tta").any():
        return None
    val = mlms.groupby("arm")["val/pnll"].mean()
    best = str(val.idxmin())
    ids = {(a, int(s)): tid for a, s, tid in zip(cell["arm"], cell["seed"], cell["trial_id"], strict=True)}
    groups = []
    for s in sorted(s for (a, s) in ids if a == "tta" and (best, s) in ids):
        a, b = test_windows(t, ids[("tta", s)]), test_windows(t, ids[(best, s)])
        if len(a) == len(b) > 0:
            rows = np.stack([a, b], axis=1)
            groups.append(rows[np.isfinite(rows).all(1)])
    if not groups:
        return None
    from analysis.stats import hierarchical_bootstrap

    ratio, low, high = hierarchical_bootstrap(groups, level=0.90, statistic=_ratio_of_means)
    verdict = SUPPORTED if high <= MARGIN else (REFUTED if low > MARGIN else INCONCLUSIVE)
    best_runs = cell[cell["arm"] == best]
    unigram = float(best_runs["test/unigram_pnll"].mean()) if "test/unigram_pnll" in best_runs else np.nan
    gain = unigram - float(best_runs["test/pnll"].mean())
    if not gain >= LEARNED:  # also when the unigram baseline is missing
        verdict = INCONCLUSIVE
    return {"data": data, "depth": depth, "best_mlm": best, "ratio": ratio, "low": low, "high": high, "verdict": verdict,
            "seeds": len(groups), "windows": len(groups[0]), "val_mlm15": float(val.get("mlm15", np.nan)),
            "val_mlm40": float(val.get("mlm40", np.nan)), "mlm_gain_over_unigram": gain}  # fmt: skip


def _t3_verdict(res: dict, claim: str) -> Verdict:
    return Verdict(
        res["verdict"],
        f"{claim}{res['data']} depth {res['depth']}: pnll T-TA / {res['best_mlm']} = {res['ratio']:.4f}, one-sided 95% "
        f"bounds [{res['low']:.4f}, {res['high']:.4f}] vs margin {MARGIN}; {res['seeds']} seeds x {res['windows']} test "
        f"windows; validation pnll mlm15 {res['val_mlm15']:.4f}, mlm40 {res['val_mlm40']:.4f}; {res['best_mlm']} beats the "
        f"training unigram by {res['mlm_gain_over_unigram']:.3f} nats"
        + ("" if res["mlm_gain_over_unigram"] >= LEARNED else f" (< {LEARNED}: nothing learned to compare, INCONCLUSIVE)"),
        effect=res["ratio"],
        ci_low=res["low"],
        ci_high=res["high"],
        threshold=MARGIN,
        n_seeds=res["seeds"],
        detail=[res],
    )


def check_t3(t: Tables) -> Verdict:
    """T3: TOST non-inferiority on the primary data set (real text when it ran)."""
    runs = lm_runs(t)
    where = primary(runs) if len(runs) else None
    res = noninferiority(t, *where) if where else None
    if res is None:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no paired T-TA / MLM test windows")
    return at_smoke(t, _t3_verdict(res, ""))


def depth_cells(t: Tables) -> list[dict]:
    """Non-inferiority per depth on the data set that ran at several depths (real text preferred)."""
    runs = lm_runs(t)
    if runs.empty:
        return []
    tta = runs[runs["arm"] == "tta"]
    for data in sorted(tta["data"].unique(), key=lambda d: d == "hmm"):
        depths = sorted(tta[tta["data"] == data]["depth"].unique())
        if len(depths) >= 2:
            return [r for d in depths if (r := noninferiority(t, data, int(d)))]
    return []


def check_t5(t: Tables) -> Verdict:
    """T5: non-inferiority at every depth; REFUTED if it holds at the shallowest and is refuted at the deepest."""
    cells = depth_cells(t)
    if len(cells) < 2:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: T-TA and MLM ran at fewer than two depths")
    verdicts = [c["verdict"] for c in cells]
    if all(v == SUPPORTED for v in verdicts):
        verdict = SUPPORTED
    elif verdicts[0] == SUPPORTED and verdicts[-1] == REFUTED:
        verdict = REFUTED
    else:
        verdict = INCONCLUSIVE
    shallow, deep = cells[0], cells[-1]
    return at_smoke(
        t,
        Verdict(
            verdict,
            f"{cells[0]['data']}: "
            + "; ".join(
                f"depth {c['depth']} ratio {c['ratio']:.4f} [{c['low']:.4f}, {c['high']:.4f}] {c['verdict']}" for c in cells
            ),  # fmt: skip
            effect=deep["ratio"] - shallow["ratio"],
            ci_low=deep["low"],
            ci_high=deep["high"],
            threshold=MARGIN,
            n_seeds=min(c["seeds"] for c in cells),
            detail=cells,
        ),
    )


# T2 and the controls.


def oracle_gaps(t: Tables) -> pd.DataFrame:
    """Per HMM run: arm, depth, seed, mean test pnll - oracle pnll (nats)."""
    runs = lm_runs(t)
    if runs.empty:
        return pd.DataFrame()
    hmm = runs[runs["data"] == "hmm"]
    rows = []
    for _, r in hmm.iterrows():
        pn, orc = test_windows(t, r["trial_id"]), test_windows(t, r["trial_id"], TEST_ORACLE)
        if len(pn) == len(orc) > 0:
            rows.append({"arm": r["arm"], "depth": r["depth"], "seed": int(r["seed"]), "excess": float(np.nanmean(pn - orc))})
    return pd.DataFrame(rows)


def check_t2(t: Tables) -> Verdict:
    """T2: exact leak test at depths 1-4 and every T-TA HMM run at or above the oracle - 0.01 nats."""
    leak = t.check("leak/tta")
    gaps = oracle_gaps(t)
    tta = gaps[gaps["arm"] == "tta"] if len(gaps) else gaps
    if not leak:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no leak-test checks")
    worst_leak = max(leak)
    if worst_leak > LEAK_TOL:
        return Verdict(REFUTED, f"T-TA leaks: max |d logit_i / d e_i| = {worst_leak:.3g} > {LEAK_TOL:g}",
                       effect=worst_leak, threshold=LEAK_TOL)  # fmt: skip
    if tta.empty:
        return Verdict(INCONCLUSIVE, f"leak test passes at depths 1-{len(leak)} (max {worst_leak:.3g}); no HMM runs")
    low = float(tta["excess"].min())
    verdict = SUPPORTED if low >= -ORACLE_SLACK else REFUTED
    return Verdict(
        verdict,
        f"leak gradient max {worst_leak:.3g} at depths 1-{len(leak)}; T-TA test pnll - oracle: min {low:+.4f}, mean "
        f"{tta['excess'].mean():+.4f} nats over {len(tta)} runs (must be >= {-ORACLE_SLACK})",
        effect=low,
        threshold=-ORACLE_SLACK,
        n_seeds=int(tta["seed"].nunique()),
        detail=tta.to_dict("records"),
    )


def check_tc1(t: Tables) -> Verdict:
    """T-C1 (must FAIL): leaky stacking leaks from two layers on, not at one, and beats the oracle on the HMM."""
    leak = t.check("leak/leaky")
    gaps = oracle_gaps(t)
    leaky = gaps[gaps["arm"] == "leaky"] if len(gaps) else gaps
    if len(leak) < 2 or leaky.empty:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: leak checks or leaky HMM runs missing")
    one_ok, deep_leak = leak[0] <= LEAK_TOL, all(v > LEAK_TOL for v in leak[1:])
    below = bool((leaky["excess"] < -LEAK_GAP).all())
    verdict = FAIL if (one_ok and deep_leak and below) else PASS
    return Verdict(
        verdict,
        f"leak gradient by depth 1-{len(leak)}: " + ", ".join(f"{v:.3g}" for v in leak)
        + "; leaky HMM test pnll - oracle: " + ", ".join(f"{e:+.3f}" for e in leaky["excess"])
        + f" (must be < {-LEAK_GAP})",
        effect=float(leaky["excess"].max()),
        threshold=-LEAK_GAP,
        n_seeds=len(leaky),
        detail=leaky.to_dict("records"),
    )  # fmt: skip


def check_tc2(t: Tables) -> Verdict:
    """T-C2 (must FAIL): the additive -10000 mask leaks on a single-token row; the -inf mask does not."""
    add, inf = t.check("tc2/leak/softmax_additive"), t.check("tc2/leak/sdpa")
    if not add or not inf:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no T-C2 checks")
    verdict = FAIL if add[0] > LEAK_TOL and inf[0] <= LEAK_TOL else PASS
    return Verdict(verdict, f"leak gradient: additive -10000 {add[0]:.3g}, -inf with zeroed rows {inf[0]:.3g}",
                   effect=add[0], threshold=LEAK_TOL)  # fmt: skip


def check_tp1(t: Tables) -> Verdict:
    """T-P1 (must PASS): forward-backward equals brute force to 1e-12."""
    err = t.check("tp1/oracle_vs_brute")
    if not err:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no T-P1 check")
    return Verdict(PASS if err[0] <= 1e-12 else FAIL, f"max |forward-backward - brute force| = {err[0]:.3g}",
                   effect=err[0], threshold=1e-12)  # fmt: skip


# T4: scoring speed.


def timing_frame(t: Tables) -> tuple[pd.DataFrame, float]:
    """Per-repeat scoring seconds (columns `time/*_b*_s`) and the mean window length."""
    tr = t.trials
    if tr.empty or "config/task" not in tr:
        return pd.DataFrame(), np.nan
    runs = tr[(tr["status"] == "ok") & (tr["config/task"] == "timing")]
    if runs.empty:
        return pd.DataFrame(), np.nan
    tid = runs["trial_id"].iloc[0]
    m = t.metrics[t.metrics["trial_id"] == tid]
    m = m[(m["metric"] != LENGTHS) & ~m["metric"].str.endswith("_len_s")]  # the per-length series: `length_times`
    wide = m.pivot_table(index="step", columns="metric", values="value", aggfunc="last")
    length = float(wide["time/mean_length"].dropna().iloc[0]) if "time/mean_length" in wide else np.nan
    return wide, length


def length_times(t: Tables) -> pd.DataFrame:
    """The timing trial's scoring seconds against length (figure 5): columns `length`, `time/<objective>_len_s`."""
    tr = t.trials
    if tr.empty or "config/task" not in tr:
        return pd.DataFrame()
    runs = tr[(tr["status"] == "ok") & (tr["config/task"] == "timing")]
    if runs.empty:
        return pd.DataFrame()
    tid = runs["trial_id"].iloc[0]
    m = t.metrics[
        (t.metrics["trial_id"] == tid) & ((t.metrics["metric"] == LENGTHS) | t.metrics["metric"].str.endswith("_len_s"))
    ]
    if m.empty:
        return pd.DataFrame()
    wide = m.pivot(index="series", columns="metric", values="value").sort_index()
    return wide.rename(columns={LENGTHS: "length"}).reset_index(drop=True)


def check_t4(t: Tables) -> Verdict:
    """T4: the median speed-up's bootstrap CI against 6x, at batch 1 and 32."""
    from analysis.stats import bootstrap_ci

    wide, length = timing_frame(t)
    cells = []
    for b in (1, 32):
        cols = (f"time/mlm_b{b}_s", f"time/tta_b{b}_s")
        if not all(c in wide for c in cols):
            continue
        reps = wide[list(cols)].dropna()
        ratios = (reps[cols[0]] / reps[cols[1]]).to_numpy()
        low, high = bootstrap_ci(ratios, statistic=np.median)
        med = float(np.median(ratios))
        v = SUPPORTED if low >= SPEEDUP else (REFUTED if high < SPEEDUP else INCONCLUSIVE)
        cells.append({"batch": b, "speedup": med, "low": low, "high": high, "repeats": len(ratios), "verdict": v,
                      "ratio_to_T": med / length})  # fmt: skip
    if not cells:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no timing run")
    verdicts = [c["verdict"] for c in cells]
    verdict = SUPPORTED if all(v == SUPPORTED for v in verdicts) else (REFUTED if REFUTED in verdicts else INCONCLUSIVE)
    main = cells[-1]
    return at_smoke(
        t,
        Verdict(
            verdict,
            "; ".join(
                f"batch {c['batch']}: {c['speedup']:.1f}x [{c['low']:.1f}, {c['high']:.1f}] ({c['ratio_to_T']:.2f} of T)"
                for c in cells
            )
            + f"; mean length T = {length:.1f}, one thread",  # fmt: skip
            effect=main["speedup"],
            ci_low=main["low"],
            ci_high=main["high"],
            threshold=SPEEDUP,
            n_seeds=main["repeats"],
            detail=cells,
        ),
    )


# Figures (spec 03, section 6).
