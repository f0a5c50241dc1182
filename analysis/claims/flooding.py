"""The claims of study `flooding` with their pre-registered rules, the article and the figures.

Each claim names its measurement in `analysis/flooding.py`; `studies/flooding.py` hands these to the runner,
and `python -m analysis` reads them from here without importing the study (torch, Ray). F1, F5, F-P1 and F-C1 are
decided by `analysis.rules`; F4 and F-P2 by two exact rules together (`AllOf`), F6 by a trend and a ratio range
together (`GrowsWithNoise`), F2 by a detector's firing rates (`FiringRates`) and F3 by ranges per reached level
(`Hovers`): shapes the vocabulary lacks, defined below. The diagnostic F-D1 (amendment A1) runs F5's test on
scale-aware flatness measures and reports them without a verdict (`ScaleAwareFlatness`).
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis import flooding as fl
from analysis.figures import flooding as flf
from analysis.rules import TOO_FEW, AllOf, Cell, Control, Exact, Superiority, Trend
from analysis.stats import bootstrap_ci
from analysis.verdict import FAIL, INCONCLUSIVE, REFUTED, SUPPORTED, Claim, StudyClaims, Verdict

ARTICLE = "我们真的需要把训练集的损失降低到零吗？ (Do we really need zero training loss?) https://kexue.fm/archives/7643"


@dataclass(frozen=True)
class GrowsWithNoise:
    """F6: per-seed b* rises with eta (`trend`) and, for every eta > 0, the median of b*/H(eta) over seeds lies in
    [low, high]. REFUTED if the trend is significantly the other way, or if for every eta > 0 the 95% bootstrap
    interval of that median lies entirely outside the range."""

    trend: Trend
    low: float
    high: float
    min_seeds: int = 3

    def text(self) -> str:
        return (f"{self.trend.text()} And the median of per-seed b*/H(eta) lies in [{self.low:g}, {self.high:g}] for every "
                f"eta > 0 (95% bootstrap interval of the median; at least {self.min_seeds} seeds with a b* per eta). "
                "SUPPORTED if both hold; REFUTED if the trend is significantly negative or, for every eta > 0, the interval "
                f"lies entirely outside [{self.low:g}, {self.high:g}]; else INCONCLUSIVE.")  # fmt: skip

    def decide(
        self, eta: Sequence[float], b_star: Sequence[float], entropy: Sequence[float], left_out=(), planned=()
    ) -> Verdict:
        """Per-seed (eta, b*, H(eta)) triples, the runs left out, and the planned etas (an eta without any b* counts)."""
        eta, b, h = (np.asarray(v, dtype=float) for v in (eta, b_star, entropy))
        counts = {e: int((eta == e).sum()) for e in sorted({*np.unique(eta), *planned})}
        trend = self.trend.decide(eta, b, left_out)
        rows = []
        for e in (e for e, n in counts.items() if e > 0 and n):
            ratio = b[eta == e] / h[eta == e]
            lo, hi = bootstrap_ci(ratio, np.median)
            rows.append({"eta": e, "H": h[eta == e][0], "median_ratio": float(np.median(ratio)), "ci_low": lo,
                         "ci_high": hi, "n": len(ratio)})  # fmt: skip
        few = [f"eta={e:g} (n = {n} < {self.min_seeds})" for e, n in counts.items() if n < self.min_seeds]
        inside = all(self.low <= r["median_ratio"] <= self.high for r in rows)
        outside = bool(rows) and all(r["ci_high"] < self.low or r["ci_low"] > self.high for r in rows)
        if few:
            verdict = INCONCLUSIVE
        elif trend.verdict == REFUTED or outside:
            verdict = REFUTED
        else:
            verdict = SUPPORTED if trend.verdict == SUPPORTED and inside else INCONCLUSIVE
        ratios = ", ".join(f"eta={r['eta']:g} {r['median_ratio']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]" for r in rows)
        reason = f"{'too few seeds in ' + ', '.join(few) + '; ' if few else ''}trend {trend.verdict}: {trend.reason}"
        return Verdict(verdict, f"{reason}; median b*/H: {ratios}", trend.effect, trend.ci_low, trend.ci_high, trend.p_value,
                       self.trend.alpha, min(counts.values()), rows)  # fmt: skip


@dataclass(frozen=True)
class FiringRates:
    """F2: per noisy cell, the share of ok seeds whose test loss shows a second descent (`second_descent`), at b* and
    at b = 0."""

    fires: float = 0.8
    quiet: float = 0.2
    refute: float = 0.4
    min_seeds: int = 3

    def text(self) -> str:
        return ("Detector: 5-epoch moving average; onset where it exceeds its running minimum by 5%; fires if a later maximum "
                f"is followed by a 5% drop. SUPPORTED if in every noisy cell it fires for b* in >= {self.fires:g} of the ok "
                f"seeds and for b = 0 in <= {self.quiet:g}; REFUTED if in every noisy cell it fires for b* in <= "
                f"{self.refute:g} or for b = 0 at least as often; else INCONCLUSIVE. A cell with fewer than {self.min_seeds} "
                "ok seeds in either arm decides nothing (INCONCLUSIVE).")  # fmt: skip

    def decide(self, rows: list[dict], left_out: Sequence[str] = ()) -> Verdict:
        if not rows:
            return Verdict(INCONCLUSIVE, "not_run_at_budget: no noisy cell")
        text = "; ".join(
            f"{r['cell']}: b*={r['b_star']:g} fires {r['fires_b_star']:.0%}, b=0 {r['fires_b0']:.0%}" for r in rows
        )
        text += f"; left out: {', '.join(left_out)}" if left_out else ""
        few = [f"{r['cell']} (n = {r['n']} < {self.min_seeds})" for r in rows if r["n"] < self.min_seeds]
        if few:
            verdict, text = INCONCLUSIVE, f"too few seeds in {', '.join(few)}: {text}"
        elif all(r["fires_b_star"] >= self.fires and r["fires_b0"] <= self.quiet for r in rows):
            verdict = SUPPORTED
        elif all(r["fires_b_star"] <= self.refute or r["fires_b0"] >= r["fires_b_star"] for r in rows):
            verdict = REFUTED
        else:
            verdict = INCONCLUSIVE
        effect = float(np.mean([r["fires_b_star"] - r["fires_b0"] for r in rows]))
        return Verdict(verdict, text, effect=effect, threshold=self.fires, n_seeds=min(r["n"] for r in rows), detail=rows)


@dataclass(frozen=True)
class Hovers:
    """F3: at every reached level b >= `min_level`, the late training loss / b and the flood proportion in range."""

    loss: tuple[float, float] = (0.8, 1.2)
    prop: tuple[float, float] = (0.3, 0.7)
    min_level: float = 0.05
    min_seeds: int = 3
    smoke_seeds: int = 2
    """The minimum at smoke, which runs 2 seeds and decides F3 (spec 5.1)."""

    def text(self) -> str:
        return (f"For every b >= {self.min_level:g} that is reached (flood proportion > 0 in some epoch), over the seeds that "
                f"reached it: mean training loss over the last 20% of epochs in [{self.loss[0]:g}b, {self.loss[1]:g}b] and "
                f"flood proportion in [{self.prop[0]:g}, {self.prop[1]:g}]. SUPPORTED if all hold; REFUTED if a majority "
                f"fail; else INCONCLUSIVE. A reached level with fewer than {self.min_seeds} such seeds ({self.smoke_seeds} at "
                "smoke) decides nothing (INCONCLUSIVE).")  # fmt: skip

    def decide(self, rows: list[dict], budget: str) -> Verdict:
        rows = [r | {"holds": bool(self.loss[0] <= r["loss_over_b"] <= self.loss[1] and self.prop[0] <= r["flood_prop"]
                                   <= self.prop[1])} for r in rows if r["b"] >= self.min_level]  # fmt: skip
        if not rows:
            return Verdict(INCONCLUSIVE, f"no flood level >= {self.min_level:g} was reached")
        held, least = sum(r["holds"] for r in rows), self.smoke_seeds if budget == "smoke" else self.min_seeds
        fails = [f"eta={r['eta']:g} b={r['b']:g}: loss/b={r['loss_over_b']:.2f}, prop={r['flood_prop']:.2f}"
                 for r in rows if not r["holds"]]  # fmt: skip
        gone = [x for r in rows for x in r["left_out"]]
        text = f"holds for {held}/{len(rows)} reached (eta, b)" + (f"; fails at {', '.join(fails)}" if fails else "")
        text += f"; left out: {', '.join(gone)}" if gone else ""
        few = [f"eta={r['eta']:g} b={r['b']:g} (n = {r['n']} < {least})" for r in rows if r["n"] < least]
        if few:
            verdict, text = INCONCLUSIVE, f"too few seeds reached b in {', '.join(few)}: {text}"
        else:
            verdict = SUPPORTED if held == len(rows) else REFUTED if len(rows) - held > len(rows) / 2 else INCONCLUSIVE
        detail = [{k: v for k, v in r.items() if k != "left_out"} for r in rows]
        return Verdict(verdict, text, effect=held / len(rows), threshold=1.0, n_seeds=min(r["n"] for r in rows), detail=detail)


@dataclass(frozen=True)
class ScaleAwareFlatness:
    """F-D1 (diagnostic): `test` (F5's paired test) on each scale-aware measure, per cell; always INCONCLUSIVE."""

    test: Superiority

    def text(self) -> str:
        return ("Reported without a verdict (amendment A1; F5 keeps its pre-registered rule). Per noise cell (E = off, b* "
                "as for F5), paired over seeds, at b* (end of training) minus at b = 0: (i) lambda_max / L_train, L_train "
                "the loss on the 1,000 training examples (noisy labels) lambda_max is measured on; (ii) the adaptive "
                "eps-sharpness, the largest rise of that loss within |delta_i| <= 0.05 (|theta_i| + 1e-3), found by 10 "
                "steps of projected gradient ascent (ASAM, Kwon et al. 2021); b = 0 read at the end of training, and "
                "(iii) at the first epoch its training loss fell to b* (equal loss). The test, as F5's: "
                f"{self.test.text()}")  # fmt: skip

    def decide(self, comparisons: dict[str, list[Cell]], means: list[dict]) -> Verdict:
        """Per measure, the test's cells; `means`: per measure and cell, the arms' means over the paired seeds."""
        mean = {(m["measure"], m["cell"]): m for m in means}
        words = {SUPPORTED: "lower at b*", REFUTED: "higher at b*"}
        parts, detail, gone = [], [], set()
        for name, cells in comparisons.items():
            v = self.test.decide(cells)
            gone |= {f"{c.label}: {x}" for c in cells for x in c.left_out}
            for r in v.detail:
                m = mean[(name, r["cell"])]
                word = words.get(r["decision"], TOO_FEW if r["test"] == TOO_FEW else "no significant difference")
                detail.append({"measure": name, **r, "b_star_mean": m["b_star"], "b0_mean": m["b0"]})
                tested = "" if r["test"] == TOO_FEW else (f" [{r['ci_low']:+.4g}, {r['ci_high']:+.4g}], p_holm lower "
                                                           f"{r['p_holm']:.3g}, higher {r['p_other_holm']:.3g}")  # fmt: skip
                parts.append(f"{name}, {r['cell']}: {m['b_star']:.4g} vs {m['b0']:.4g} at b=0, difference {r['mean']:+.4g}"
                             f"{tested}, n {r['n']} ({word})")  # fmt: skip
        if not detail:
            return Verdict(INCONCLUSIVE, "not_run_at_budget: no cells")
        reason = "diagnostic: " + "; ".join(parts) + (f"; left out: {'; '.join(sorted(gone))}" if gone else "")
        return Verdict(INCONCLUSIVE, reason, threshold=self.test.alpha, n_seeds=min(r["n"] for r in detail), detail=detail)


E2 = Exact(0.3, "|log-log slope of the two-step error over eps in {0.04, 0.02, 0.01, 0.005} - 3|")
"""F4's E2 slope test (slope in [2.7, 3.3]), which the different-batch control F-C1 must fail."""

FLATTER = Superiority("lambda_max at b* minus at b = 0 (E = off)", alternative="less", combine="half")
"""F5's rule; F-D1 applies the same test (the same alternative, cells, Holm and minimum seeds) to its measures."""

CLAIMS = (
    Claim(
        "F1",
        "With b > 0 chosen on validation, test accuracy is at least that of b = 0, also with early stopping.",
        Superiority("test accuracy at b* (chosen per cell on validation) minus at b = 0, clean test set", combine="half"),
        "empirical",
        fl.measure_f1,
        "isolation_test_acc",
        decides_from="local",
    ),
    Claim(
        "F2",
        "The test loss rises and then falls again once the training loss hovers at b; without flooding it keeps rising.",
        FiringRates(),
        "empirical",
        fl.measure_f2,
        "test_loss_curves",
        decides_from="local",
    ),
    Claim(
        "F3",
        "Once flooded, the training loss stays near b and about half of the steps are ascent steps.",
        Hovers(),
        "empirical",
        fl.measure_f3,
        "mechanics",
    ),
    Claim(
        "F4",
        "Two flooded steps equal theta - (eps^2/2) grad ||g||^2 + O(eps^3), exactly for quadratics (E2 on (1 - ab)^2/2 "
        "and a 2-2-1 tanh MLP).",
        AllOf((Exact(1e-12, "E1 error |two steps - (theta - eps^2 A^2 theta)| on random SPD quadratics (float64)"), E2)),
        "exact",
        fl.measure_f4,
        "exact_identity",
    ),
    Claim(
        "F5",
        "Flooded models end flatter: a lower top Hessian eigenvalue.",
        FLATTER,
        "empirical",
        fl.measure_f5,
        "flatness",
        decides_from="local",
    ),
    Claim(
        "F-D1",
        "Scale-aware flatness beside F5: curvature per unit of training loss and adaptive eps-sharpness, at b* and at "
        "b = 0, at the end of training and at equal training loss.",
        ScaleAwareFlatness(dataclasses.replace(FLATTER, what="the measure at b* minus at b = 0")),
        "diagnostic",
        fl.measure_fd1,
        "scale_aware_flatness",
    ),
    Claim(
        "F6",
        "The best b grows with label noise, of the order of the noisy-label entropy H(eta) (a hypothesis of the spec).",
        GrowsWithNoise(Trend("per-seed b* over (eta, seed) against eta"), low=0.5, high=2.0),
        "empirical",
        fl.measure_f6,
        "noise_vs_best_level",
        decides_from="local",
    ),
    Claim(
        "F-P1",
        "With b = 0 the flooded loss and gradient equal the base loss and gradient; the sign is +1 above b, -1 below.",
        Control(Exact(0.0, "error of the b = 0 value and gradient, and of the gradient sign (+1 above b, -1 below)")),
        "positive_control",
        fl.measure_fp1,
    ),
    Claim(
        "F-C1",
        "Two flooded steps on different mini-batches pass the E2 slope test.",
        Control(E2, must=FAIL),
        "negative_control",
        fl.measure_fc1,
        "exact_identity",
    ),
    Claim(
        "F-P2",
        "The label-noise generator flips a fraction eta within 1/n, and no flipped label keeps its class.",
        Control(AllOf((Exact(1.0, "|realised - eta| x n (labels)"), Exact(0.0, "flipped labels that kept their class")))),
        "positive_control",
        fl.measure_fp2,
    ),
)

FIGURES = (
    flf.fig_test_loss,
    flf.fig_mechanics,
    flf.fig_isolation,
    flf.fig_paired,
    flf.fig_flatness,
    flf.fig_scale_aware_flatness,
    flf.fig_identity,
    flf.fig_noise_vs_b,
)

CLAIMED = StudyClaims("flooding", ARTICLE, CLAIMS, FIGURES)
