"""T-TA vs MLM: the measurements behind the claims, from the study's Parquet tables alone; the rule objects below
(`analysis.rules`) decide, held by the claims in `analysis/claims/fast_mlm.py`.

Language-model trials (`config/task = lm`) report validation `pnll` at each evaluation step with its per-window
values as a series (`series` = window), and at their last step the test per-window values (with the HMM oracle's
per-window pseudo-NLL beside them). The timing trial reports per-repeat scoring seconds at steps 0 ... reps - 1,
then at step `reps` the lengths T timed and the seconds at each, as series. The exact checks hold the leak gradients.
"""

from dataclasses import replace

import numpy as np
import pandas as pd

from analysis.rules import Cell, Exact, NonInferiority
from analysis.stats import BOOTSTRAP_RESAMPLES, bootstrap_ci
from analysis.verdict import FAIL, INCONCLUSIVE, PASS, REFUTED, SUPPORTED, Tables, Verdict, all_cells

VAL_WINDOWS, TEST_WINDOWS, TEST_ORACLE = "val/window_pnll", "test/window_pnll", "test/window_oracle"
"""Series of one value per window: validation pnll (at each evaluation), test pnll and the oracle's (at the end)."""
LENGTHS = "time/length"
"""The timing trial's series of the lengths T timed; `time/<objective>_len_s` are the seconds at each."""
ARMS = ("mlm15", "mlm40", "tta", "leaky", "l2r")
MIN_SEEDS = 3  # spec README "Minimum seeds": 3 at local; smoke's plan has 2 (spec 03, 5.1), where only T2 decides
LEAK = Exact(1e-12, "leak gradient max |d logit_i / d e_i| (float64, per-position embeddings e, depths 1-4)")
ORACLE = Exact(0.01, "oracle pnll - T-TA's HMM test pnll (nats, per depth and seed)")
NONINFERIORITY = NonInferiority("test pnll ratio T-TA / better MLM (chosen on validation) - 1, per seed over the test "
                                "windows", margin=0.02, alternative="less", min_seeds=MIN_SEEDS)  # fmt: skip
"""T3, and T5 at each depth: the pnll ratio T-TA / MLM <= 1.02 is a relative difference < +0.02."""
TP1 = Exact(1e-12, "|forward-backward - brute-force pseudo-NLL| (K = 2, V = 3, T = 5)")
LEAKY_GAP, SPEEDUP = 0.05, 6.0  # T-C1: leaky pnll below the oracle by more (nats); T4: the median speed-up to reach


def lm_runs(t: Tables, every: bool = False) -> pd.DataFrame:
    """Language-model runs with columns `trial_id, status, data, arm, depth, seed, steps` and their finals: the
    finished ones (`status` ok), or with `every` all of them (diverged and failed too, to name what is left out)."""
    tr = t.trials
    if tr.empty or "config/task" not in tr:
        return pd.DataFrame(columns=["trial_id", "status", "data", "arm", "depth", "seed", "steps"])
    runs = tr[(tr["config/task"] == "lm") & (every or tr["status"] == "ok")]
    arm = [f"mlm{round(100 * r)}" if o == "mlm" else o for o, r in runs[["config/objective", "config/mask_rate"]].to_numpy()]
    ints = {k: runs[f"config/{k}"].astype(int) for k in ("depth", "steps")}
    return runs.assign(arm=arm, data=runs["config/data"], **ints, seed=runs["seed"].astype(int))


def primary(runs: pd.DataFrame) -> tuple[str, int] | None:
    """(data, depth) of the T1/T3 comparison: real text when it ran (its shallowest depth), else the HMM's."""
    main = runs[runs["arm"].isin(["mlm15", "tta"])]
    pick = main[main["data"] != "hmm"] if (main["data"] != "hmm").any() else main
    return (str(pick["data"].iloc[0]), int(pick["depth"].min())) if len(pick) else None


def _cell(runs: pd.DataFrame, data: str, depth: int) -> pd.DataFrame:
    return runs[(runs["data"] == data) & (runs["depth"] == depth)]


def pairs(cell: pd.DataFrame, a: str, b: str) -> list[tuple[int, str, str]]:
    """(seed, trial of a, trial of b) for the seeds where arms `a` and `b` both finished."""
    ok = {(r.arm, r.seed): r.trial_id for r in cell.itertuples() if r.status == "ok"}
    return [(s, ok[(a, s)], ok[(b, s)]) for x, s in sorted(ok) if x == a and (b, s) in ok]


def named(runs: pd.DataFrame, *arms: str) -> list[str]:
    """The runs of `arms` that did not finish, named with their status (`runs` from `lm_runs(t, every=True)`)."""
    return [f"{r.arm} depth {r.depth} seed {r.seed}: {r.status}" for r in runs.itertuples()
            if r.arm in arms and r.status != "ok"]  # fmt: skip


def _first_reach(curve: np.ndarray, target: float) -> int | None:
    hit = np.nonzero(curve <= target)[0]
    return int(hit[0]) if len(hit) else None


def t1_ratio(t: Tables, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict | None:
    """r = s_total / s_TTA on the primary cell, with its bootstrap CI over seeds, then validation windows (paired
    across arms; `resamples=0` skips it), the seeds that never reach the target, the wall-clock ratio."""
    if (where := primary(every := lm_runs(t, every=True))) is None:
        return None
    cell, val = _cell(every, *where), t.metrics[t.metrics["metric"] == VAL_WINDOWS]
    gone, keep = named(cell, "mlm15", "tta"), []
    for s, m, x in pairs(cell, "mlm15", "tta"):  # per run: [evals, windows] of validation pnll, evaluation steps as index
        mv, xv = (val[val["trial_id"] == i].pivot(index="step", columns="series", values="value").sort_index() for i in (m, x))
        ms = mv.index.to_numpy()
        if len(ms) and np.array_equal(ms, xv.index) and np.array_equal(ms, keep[0][0] if keep else ms):
            keep.append((ms, mv.to_numpy(), xv.to_numpy(), m, x))
        else:
            gone.append(f"seed {s}: validation curves not at common steps")
    if not keep:
        return None
    steps, mlm, tta = keep[0][0], np.stack([c[1] for c in keep]), np.stack([c[2] for c in keep])  # [seeds, evals, windows]
    (n, _, n_win), s_total = mlm.shape, int(steps[-1])
    never = sum(_first_reach(np.nanmean(tta[i], 1), np.nanmean(mlm[i, -1])) is None for i in range(n))

    def ratio(seeds: np.ndarray, windows: np.ndarray) -> tuple[float, int | None]:  # seeds [n], windows [n, n_win]
        e = _first_reach(np.nanmean(tta[seeds[:, None], :, windows], (0, 1)), np.nanmean(mlm[seeds[:, None], -1, windows]))
        return (0.0 if e is None else s_total / steps[e]), e

    r, e = ratio(np.arange(n), np.tile(np.arange(n_win), (n, 1)))
    rng = np.random.default_rng(seed)
    boot = [ratio(rng.integers(0, n, n), rng.integers(0, n_win, (n, n_win)))[0] for _ in range(resamples)]
    low, high = np.percentile(boot, [2.5, 97.5]) if resamples else (np.nan, np.nan)
    wall, train_s = np.nan, t.curves("time/train_s").set_index(["trial_id", "step"])["value"]
    if e is not None and len(train_s):
        wall = np.mean([train_s[c[3]].iloc[-1] for c in keep]) / np.mean([train_s[(c[4], steps[e])] for c in keep])
    return {"r": r, "low": float(low), "high": float(high), "never_reached": never, "seeds": n, "s_total": s_total,
            "s_tta": None if e is None else int(steps[e]), "wall_ratio": float(wall), "data": where[0], "depth": where[1],
            "windows": n_win, "left_out": gone}  # fmt: skip


def check_t1(t: Tables) -> Verdict:
    """T1 (a bespoke rule: a bootstrap CI of r against 1, or T-TA never reaching the target in >= 2 of 3 seeds)."""
    if (res := t1_ratio(t)) is None:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no paired MLM-15 / T-TA validation curves")
    few = f"too few seeds (n = {res['seeds']} < {MIN_SEEDS}): " if res["seeds"] < MIN_SEEDS else ""
    verdict = SUPPORTED if res["low"] > 1 else REFUTED if res["never_reached"] >= 2 or res["high"] < 1 else INCONCLUSIVE
    gone = f"; left out: {', '.join(res['left_out'])}" if res["left_out"] else ""
    reason = (f"{few}{res['data']} depth {res['depth']}: T-TA reaches MLM-15's final validation pnll at step "
              f"{res['s_tta'] or 'never'} of {res['s_total']}; r = {res['r']:.2f}, 95% CI [{res['low']:.2f}, "
              f"{res['high']:.2f}] ({res['seeds']} seeds x {res['windows']} windows); never reached in "
              f"{res['never_reached']} seed(s); wall-clock ratio {res['wall_ratio']:.2f}{gone}")  # fmt: skip
    return Verdict(INCONCLUSIVE if few else verdict, reason, effect=res["r"], ci_low=res["low"], ci_high=res["high"],
                   threshold=1.0, n_seeds=res["seeds"], detail=[res])  # fmt: skip


def ni_cell(t: Tables, data: str, depth: int) -> Cell:
    """Per seed, test pnll(T-TA) / pnll(better MLM on validation) - 1 over the paired test windows; the runs left
    out are named (a cell without a finished MLM run is empty, so undecidable)."""
    cell = _cell(lm_runs(t, every=True), data, depth)
    mlms, gone = cell[cell["arm"].isin(["mlm15", "mlm40"]) & (cell["status"] == "ok")], named(cell, "mlm15", "mlm40", "tta")
    if mlms.empty:
        return Cell(f"{data} depth {depth}", [], ("no finished MLM run", *gone))
    best, diffs = str(mlms.groupby("arm")["val/pnll"].mean().idxmin()), []
    for s, a, b in pairs(cell, "tta", best):
        x, y = t.series(TEST_WINDOWS, a), t.series(TEST_WINDOWS, b)
        if len(x) == len(y) > 0:
            keep = np.isfinite(x) & np.isfinite(y)
            diffs.append(float(x[keep].mean() / y[keep].mean() - 1))
        else:
            gone.append(f"seed {s}: no paired test windows")
    return Cell(f"{data} depth {depth} vs {best}", diffs, tuple(gone))


def check_t3(t: Tables) -> list[Cell] | Verdict:
    """T3: the primary cell (real text when it ran) for `NONINFERIORITY`."""
    where = primary(lm_runs(t, every=True))
    return [ni_cell(t, *where)] if where else Verdict(INCONCLUSIVE, "not_run_at_budget: no T-TA / MLM runs")


def check_t5(t: Tables) -> Verdict:
    """T5: `NONINFERIORITY` at every planned depth of the data set that ran at several (real text preferred; a depth
    whose runs all diverged or failed keeps its place, empty), Holm across depths, combined as the claim's rule says."""
    runs = lm_runs(t, every=True)
    depths = runs[runs["arm"].isin(["mlm15", "mlm40", "tta"])].groupby("data")["depth"].unique()
    several = sorted((d for d in depths.index if len(depths[d]) >= 2), key=lambda d: d == "hmm")
    cells = [ni_cell(t, several[0], int(d)) for d in sorted(depths[several[0]])] if several else []
    if len(cells) < 2:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: T-TA and MLM ran at fewer than two depths")
    v = NONINFERIORITY.decide(cells)  # SUPPORTED at every depth; too few seeds anywhere: INCONCLUSIVE
    d = [r["decision"] for r in v.detail]
    verdict = v.verdict if v.verdict != REFUTED or (d[0], d[-1]) == (SUPPORTED, REFUTED) else INCONCLUSIVE
    return replace(v, verdict=verdict, reason=f"by depth: {', '.join(d)}; {v.reason}", threshold=NONINFERIORITY.margin)


def oracle_gaps(t: Tables) -> pd.DataFrame:
    """Per finished HMM run: arm, depth, seed, mean test pnll - oracle pnll (nats)."""
    runs, rows = lm_runs(t), []
    for r in runs[runs["data"] == "hmm"].itertuples():
        if len(pn := t.series(TEST_WINDOWS, r.trial_id)) == len(orc := t.series(TEST_ORACLE, r.trial_id)) > 0:
            rows.append({"arm": r.arm, "depth": r.depth, "seed": r.seed, "excess": float(np.nanmean(pn - orc))})
    return pd.DataFrame(rows, columns=["arm", "depth", "seed", "excess"])


def _hmm(t: Tables, arm_: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """An arm's HMM runs (every status), the oracle gaps of the finished ones, and the others named."""
    every, gaps = lm_runs(t, every=True), oracle_gaps(t)
    planned = every[(every["data"] == "hmm") & (every["arm"] == arm_)]
    return planned, gaps[gaps["arm"] == arm_], named(planned, arm_)


def check_t2(t: Tables) -> Verdict:
    """T2 (composite of two `Exact` rules): the leak test, and every T-TA HMM run against the oracle."""
    leak = LEAK.decide({"T-TA": t.check("leak/tta")})
    planned, gaps, gone = _hmm(t, "tta")
    need = 2 if t.budget == "smoke" else MIN_SEEDS
    few = [f"depth {d} (n = {n} < {need})" for d in sorted(planned["depth"].unique())
           if (n := int((gaps["depth"] == d).sum())) < need]  # fmt: skip
    if planned.empty or few:
        oracle = Verdict(INCONCLUSIVE, f"too few seeds in {', '.join(few)}" if few else "no T-TA HMM runs")
    else:
        oracle = ORACLE.decide({f"depth {d}": -g["excess"].to_numpy() for d, g in gaps.groupby("depth")})
    reason = f"leak test: {leak.reason}; oracle: {oracle.reason}" + (f"; left out: {', '.join(gone)}" if gone else "")
    return Verdict(all_cells([leak.verdict, oracle.verdict]), reason, effect=oracle.effect, threshold=ORACLE.tolerance,
                   n_seeds=gaps["seed"].nunique(), detail=leak.detail + oracle.detail + gaps.to_dict("records"))  # fmt: skip


def check_tc1(t: Tables) -> Verdict:
    """T-C1 (must FAIL): leaky stacking leaks from two layers on, not at one, and beats the oracle on the HMM."""
    leak, (planned, leaky, gone) = t.check("leak/leaky"), _hmm(t, "leaky")
    if len(leak) < 2 or planned.empty:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: leak checks or leaky HMM runs missing")
    if len(leaky) < len(planned):
        return Verdict(INCONCLUSIVE, f"leaky HMM runs left out: {', '.join(gone) or 'no test windows'}")
    leaks = leak[0] <= LEAK.tolerance and all(v > LEAK.tolerance for v in leak[1:]) and (leaky["excess"] < -LEAKY_GAP).all()
    return Verdict(FAIL if leaks else PASS,
                   f"leak gradient by depth 1-{len(leak)}: " + ", ".join(f"{v:.3g}" for v in leak)
                   + "; leaky HMM test pnll - oracle: " + ", ".join(f"{e:+.3f}" for e in leaky["excess"])
                   + f" (must be < {-LEAKY_GAP})", effect=float(leaky["excess"].max()), threshold=-LEAKY_GAP,
                   n_seeds=len(leaky), detail=leaky.to_dict("records"))  # fmt: skip


def check_tc2(t: Tables) -> Verdict:
    """T-C2 (must FAIL): the additive -10000 mask leaks on a single-token row; the -inf mask does not."""
    add, inf = t.check("tc2/leak/softmax_additive"), t.check("tc2/leak/sdpa")
    if not add or not inf:
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no T-C2 checks")
    verdict = FAIL if add[0] > LEAK.tolerance and inf[0] <= LEAK.tolerance else PASS
    return Verdict(verdict, f"leak gradient: additive -10000 {add[0]:.3g}, -inf with zeroed rows {inf[0]:.3g}",
                   effect=add[0], threshold=LEAK.tolerance)  # fmt: skip


def check_tp1(t: Tables) -> list[float]:
    """T-P1: the oracle's error against brute force, for `TP1`."""
    return t.check("tp1/oracle_vs_brute")


def timing(t: Tables) -> tuple[pd.DataFrame, float, pd.DataFrame]:
    """The timing trial's per-repeat scoring seconds (columns `time/*_b*_s`), the mean window length, and the seconds
    against length (figure 5: columns `length`, `time/<objective>_len_s`, one row per length timed)."""
    tr = t.trials
    ids = tr[(tr["status"] == "ok") & (tr["config/task"] == "timing")]["trial_id"] if "config/task" in tr else []
    m = t.metrics[t.metrics["trial_id"] == (ids.iloc[0] if len(ids) else None)]
    by_length = (m["metric"] == LENGTHS) | m["metric"].str.endswith("_len_s")
    wide = m[~by_length].pivot_table(index="step", columns="metric", values="value", aggfunc="last")
    lengths = m[by_length].pivot(index="series", columns="metric", values="value").sort_index()
    length = float(wide["time/mean_length"].dropna().iloc[0]) if "time/mean_length" in wide else np.nan
    return wide, length, lengths.rename(columns={LENGTHS: "length"}).reset_index(drop=True)


def check_t4(t: Tables) -> Verdict:
    """T4 (a bespoke rule, stated in the claim): the median speed-up over the repeats at batch size 1 and 32."""
    wide, length, _ = timing(t)
    if not any(c.startswith("time/tta_b") for c in wide):
        return Verdict(INCONCLUSIVE, "not_run_at_budget: no timing run")
    cells = []
    for b in (1, 32):  # a batch size without its columns keeps its place, with no repeats
        mlm, tta = (wide.get(f"time/{o}_b{b}_s", pd.Series(dtype=float)) for o in ("mlm", "tta"))
        ratios = (mlm / tta).dropna().to_numpy()
        med, (low, high) = float(np.median(ratios)) if len(ratios) else np.nan, bootstrap_ci(ratios, statistic=np.median)
        cells.append({"batch": b, "speedup": med, "low": low, "high": high, "repeats": len(ratios), "ratio_to_T": med / length,
                      "verdict": SUPPORTED if med >= SPEEDUP else REFUTED if high < SPEEDUP else INCONCLUSIVE})  # fmt: skip
    few = [c["batch"] for c in cells if c["repeats"] < MIN_SEEDS]
    text = "; ".join(f"batch {c['batch']}: {c['speedup']:.1f}x [{c['low']:.1f}, {c['high']:.1f}] ({c['repeats']} repeats, "
                     f"{c['ratio_to_T']:.2f} of T)" for c in cells)  # fmt: skip
    reason = (f"too few repeats (< {MIN_SEEDS}) at batch {few}: " if few else "") + f"{text}; mean length T = {length:.1f}"
    verdict = INCONCLUSIVE if few else all_cells([c["verdict"] for c in cells])
    return Verdict(verdict, reason, effect=cells[-1]["speedup"], ci_low=cells[-1]["low"], ci_high=cells[-1]["high"],
                   threshold=SPEEDUP, n_seeds=cells[-1]["repeats"], detail=cells)  # fmt: skip
