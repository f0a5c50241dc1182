"""The claims of study `embedding_dim` with their pre-registered rules, the article and the figures.

Each claim names its measurement in `analysis/embedding_dim.py`; `studies/embedding_dim.py` hands these to the
runner, and `python -m analysis` reads them from here without importing the study (torch, Ray). D3 and D-P1 are
decided by `analysis.rules`; D2, D4 and D5 by its `Within` and `AllOf` on the knees' own bootstrap intervals; D1's
ratio test (the interval holds ln N_max / ln N_min and excludes the rival models) and D3's two-family rule are the
two rules of this study's own shape, defined below from the vocabulary's pieces.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from analysis import embedding_dim as ea
from analysis.figures import embedding_dim as eaf
from analysis.rules import TOO_FEW, AllOf, Cell, Control, Equivalence, Estimate, Exact, Superiority, Within
from analysis.verdict import INCONCLUSIVE, REFUTED, SUPPORTED, Claim, StudyClaims, Verdict

ARTICLE = (
    "最小熵原理（六）：词向量的维度应该怎么选择？ (how to choose the word-vector dimension) https://kexue.fm/archives/7695"
)


@dataclass(frozen=True)
class LnRatio:
    """D1: the knee ratio r between the largest and the smallest size against ln max / ln min, 1 and (max / min)^power."""

    power: float = 0.2
    min_seeds: int = 3

    def text(self) -> str:
        return (f"r = n_eps(N_max) / n_eps(N_min), 95% bootstrap interval over seeds widened by the grid's resolution (a "
                f"knee k lies somewhere in (previous grid point, k]), at least {self.min_seeds} complete seeds at both: "
                f"SUPPORTED if the interval contains ln N_max / ln N_min and excludes both 1 (constant) and (N_max / "
                f"N_min)^{self.power:g} (power law); REFUTED if it excludes the ln-ratio; else INCONCLUSIVE. AIC of a ln N + "
                "b vs c N^alpha vs a constant reported.")  # fmt: skip

    def decide(self, r: Estimate, low: float, high: float, note: str = "") -> Verdict:
        gone = f"; left out: {', '.join(r.left_out)}" if r.left_out else ""
        if r.n < self.min_seeds:
            return Verdict(INCONCLUSIVE, f"{TOO_FEW} in {r.label} (n = {r.n} < {self.min_seeds}){gone}", n_seeds=r.n)
        pred, power = math.log(high) / math.log(low), (high / low) ** self.power
        holds = [r.low <= v <= r.high for v in (pred, 1.0, power)]
        if not r.low <= r.high:
            verdict = INCONCLUSIVE
        else:
            verdict = (SUPPORTED if not any(holds[1:]) else INCONCLUSIVE) if holds[0] else REFUTED
        text = f"{r.label} = {r.mean:.3f} [{r.low:.3f}, {r.high:.3f}]"
        text += f" vs ln-ratio {pred:.3f}, constant 1, power {power:.3f}"
        return Verdict(verdict, f"{text}; {note}{gone}", r.mean, r.low, r.high, threshold=pred, n_seeds=r.n)


@dataclass(frozen=True)
class Sufficiency:
    """D3: per N, equivalence at the article's dimension and a deficit at its quarter, Holm across N in each family;
    REFUTED if at some N the quality at the article's dimension lies significantly below the plateau by more than the
    margin (the equivalence's lower side: its 95% interval entirely below -margin)."""

    plateau: Equivalence
    deficit: Superiority

    def text(self) -> str:
        p = self.plateau
        return (f"Per N, at least {p.min_seeds} seeds per N (one-sided paired t-tests; exact sign-flip when every difference "
                f"is equal), Holm across N at alpha {p.alpha:g}: SUPPORTED if for every N a paired TOST shows {p.what} "
                f"inside +-{p.margin:g} and {self.deficit.what} > 0 is significant; REFUTED if for some N the 95% interval "
                f"of {p.what} lies entirely below -{p.margin:g}; else INCONCLUSIVE.")  # fmt: skip

    def decide(self, plateau: Sequence[Cell], deficit: Sequence[Cell]) -> Verdict:
        eq, low = self.plateau.decide(plateau), self.deficit.decide(deficit)
        few = any(r["test"] == "too few seeds" for r in eq.detail + low.detail)
        below = [r["cell"] for r in eq.detail if r["ci_high"] < -self.plateau.margin]
        if few:
            verdict = INCONCLUSIVE
        else:
            verdict = REFUTED if below else SUPPORTED if eq.verdict == low.verdict == SUPPORTED else INCONCLUSIVE
        detail = [{"family": "plateau"} | r for r in eq.detail] + [{"family": "deficit"} | r for r in low.detail]
        reason = f"{'too few seeds: ' if few else ''}plateau {eq.verdict}: {eq.reason}; deficit {low.verdict}: {low.reason}"
        return Verdict(verdict, reason, eq.effect, eq.ci_low, eq.ci_high, eq.p_value, self.plateau.margin,
                       min(eq.n_seeds, low.n_seeds), detail)  # fmt: skip


RATIO = LnRatio()
MAGNITUDE = Within("n_eps / (8.33 ln N) per N", 0.5, 2.0)

CLAIMS = (
    Claim(
        "D1",
        "The dimension that is enough grows like ln N (doubling N adds ~5.8 dimensions; 1e3 -> 1e6 doubles it).",
        RATIO,
        "empirical",
        ea.check_d1,
        "knee_vs_lnN",
        decides_from="local",
    ),
    Claim(
        "D2",
        "The enough dimension is about 8.33 ln N.",
        MAGNITUDE,
        "empirical",
        ea.check_d2,
        "knee_vs_lnN",
        decides_from="local",
    ),
    Claim(
        "D3",
        "At n >= ceil(8.33 ln N) quality is within noise of the plateau; well below it there is a measurable deficit.",
        Sufficiency(
            Equivalence("(Q(ceil(8.33 ln N)) - Q(n_max)) / (max - min of the seed-mean curve)", ea.EPS),
            Superiority("Q(n_max) - Q(ceil(8.33 ln N / 4))"),
        ),
        "empirical",
        ea.check_d3,
        "quality_vs_dim",
        decides_from="local",
    ),
    Claim(
        "D4",
        "Attention head size ~ 8.33 ln L for sequence length L (40 / 52 / 64 / 75 for L = 128 / 512 / 2048 / 8192).",
        AllOf(
            what="With L for N, on the 5%-knee of -(validation nats per byte) vs head_dim, d_model fixed at 384 (heads = "
            "384 / head_dim; the 4-heads-fixed arm reported); full budget only",
            rules=(RATIO, MAGNITUDE),
        ),  # fmt: skip
        "empirical",
        ea.check_d4,
        decides_from="full",
    ),
    Claim(
        "D5",
        "The knee does not depend on the corpus size T or the algorithm (SGNS vs CBOW) at fixed N.",
        Within("largest |relative shift| of n_eps at one N against SGNS at the main T (other T; CBOW)", 0.0, 0.3, min_seeds=2),
        "empirical",
        ea.check_d5,
        "knee_vs_tokens",
        decides_from="local",
    ),
    Claim(
        "D-P1",
        "The quadrature reproduces the article's h_n table and h_n / n -> -(1/2) ln(golden ratio).",
        Control(Exact(1e-3, "|h_n - table| over n = 32 ... 512 and |h_n / n + (1/2) ln phi| at the largest n")),
        "positive_control",
        ea.check_dp1,
        "derivation",
    ),
    Claim(
        "D-P2",
        "On the planted tree corpus the 5%-knee of the exact KL never falls as N grows (per b) or as b grows (per N).",
        Control(Exact(0.0, "fall of the knee from one N to the next (per b) and from one b to the next (per shared N)")),
        "positive_control",
        ea.check_dp2,
        "tree_control",
    ),
    Claim(
        "D-D1",
        "The sampling approximation 2 ln N + h_n departs from the exact entropy of random sqrt(n)-sphere vectors.",
        "Reported: the first n where |exact - approximate| > 1 nat for N in {250, 500, 1000}, vs 8.33 ln N.",
        "diagnostic",
        ea.check_dd1,
        "derivation",
    ),
    Claim(
        "D-D3",
        "The Chinese arm (Su's language): knees of the held-out SGNS loss beside 8.33 ln N, on PKU People's Daily "
        "(local) and Chinese Wikipedia segmented by jieba (full).",
        "Reported without a verdict: per corpus and N (1k, 4k at local, T = 0.9M; 1k ... 300k at full, T = 0.2B), the "
        "5%-knee with its seed-bootstrap CI and n_eps / 8.33 ln N; no Chinese similarity benchmark exists offline "
        "(spec 5.2).",
        "diagnostic",
        ea.check_dd3,
        "quality_vs_dim",
    ),
    Claim(
        "D-D4",
        "The OOV policy (full budget's ablation): knees with out-of-vocabulary tokens mapped to <unk> vs dropped.",
        "Reported without a verdict: per N of the <unk> arm (1k, 30k, 1M at T = 0.5B), the 5%-knee of the held-out "
        "SGNS loss with its seed-bootstrap CI beside the knee of the dropped arm at the same (N, T) and the relative "
        "shift. Full budget only.",
        "diagnostic",
        ea.check_dd4,
    ),
    Claim(
        "D-D5",
        "A competing predictor (M5): Yin and Shen's PIP-optimal dimension, which grows with the corpus, beside the knee.",
        "Reported without a verdict: per (N, T), the PIP-optimal dimension of the training text's shifted PMI (noise "
        "from two halves of the text, 3 Monte-Carlo draws; the range within 1% of its minimum) beside the 5%-knee of "
        "the held-out SGNS loss at the same (N, T) and 8.33 ln N. N <= 10k (dense SVDs).",
        "diagnostic",
        ea.check_dd5,
    ),
    Claim(
        "D-D2",
        "Capacity: tied random sqrt(n)-sphere vectors reach mean p(self) >= 0.9 at n ~ 1.65 ln N + 3.8.",
        "Reported: the smallest such n for N = 128 ... 4096, the slope and intercept of its fit on ln N (expect a slope "
        "<= 2), and the same for a sphere-constrained Adam fit of the tied vectors (100 steps, N <= 256).",
        "diagnostic",
        ea.check_dd2,
        "capacity",
    ),
)

FIGURES = (eaf.fig_quality, eaf.fig_knees, eaf.fig_tokens, eaf.fig_derivation, eaf.fig_tree, eaf.fig_capacity)

CLAIMED = StudyClaims("embedding_dim", ARTICLE, CLAIMS, FIGURES)
