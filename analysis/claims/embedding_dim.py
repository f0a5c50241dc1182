"""The claims of study `embedding_dim` with their pre-registered rules, the article and the figures.

Each claim names its check in `analysis/embedding_dim.py`; `studies/embedding_dim.py` hands these to the runner,
and `python -m analysis` reads them from here without importing the study (torch, Ray).
"""

from analysis import embedding_dim as ea
from analysis.figures import embedding_dim as eaf
from analysis.verdict import Claim, StudyClaims

ARTICLE = (
    "最小熵原理（六）：词向量的维度应该怎么选择？ (how to choose the word-vector dimension) https://kexue.fm/archives/7695"
)

CLAIMS = (
    Claim(
        "D1",
        "The dimension that is enough grows like ln N (doubling N adds ~5.8 dimensions; 1e3 -> 1e6 doubles it).",
        "r = n_eps(N_max) / n_eps(N_min) on the held-out SGNS loss (eps = 0.05), 95% bootstrap CI over seeds widened by "
        "the grid's resolution (a knee k means somewhere in (previous grid point, k]): SUPPORTED if "
        "the CI contains ln N_max / ln N_min and excludes both 1 (constant) and (N_max / N_min)^0.2 (power law); REFUTED if "
        "it excludes the ln-ratio; else INCONCLUSIVE. AIC of a ln N + b vs c N^alpha vs constant reported.",
        "empirical",
        ea.check_d1,
        "knee_vs_lnN",
    ),
    Claim(
        "D2",
        "The enough dimension is about 8.33 ln N.",
        "For every N the bootstrap CI of n_eps / (8.33 ln N) on the held-out SGNS loss: SUPPORTED if every CI lies within "
        "[0.5, 2]; REFUTED if some CI lies entirely outside [0.5, 2]; else INCONCLUSIVE. The CI of the through-origin "
        "slope a (n_eps = a ln N) is reported without a verdict.",
        "empirical",
        ea.check_d2,
        "knee_vs_lnN",
    ),
    Claim(
        "D3",
        "At n >= ceil(8.33 ln N) quality is within noise of the plateau; well below it there is a measurable deficit.",
        "Held-out SGNS loss, per N, Holm across N: SUPPORTED if a paired TOST over seeds shows Q(ceil(8.33 ln N)) "
        "equivalent to Q(n_max) within 0.05 x range (max - min of the seed-mean curve) and Q(ceil(8.33 ln N / 4)) is "
        "lower than Q(n_max) (one-sided paired bootstrap, p < 0.05), for every N; REFUTED if for some N "
        "Q(ceil(8.33 ln N)) is significantly below Q(n_max) by more than the margin; else INCONCLUSIVE.",
        "empirical",
        ea.check_d3,
        "quality_vs_dim",
    ),
    Claim(
        "D4",
        "Attention head size ~ 8.33 ln L for sequence length L (40 / 52 / 64 / 75 for L = 128 / 512 / 2048 / 8192).",
        "The D1 and D2 rules with L for N on the 5%-knee of -(validation nats per byte) vs head_dim, d_model fixed at "
        "384 (heads = 384 / head_dim; the 4-heads-fixed arm reported): SUPPORTED if both rules support, REFUTED if "
        "either refutes, else INCONCLUSIVE. Full budget only (not_run_at_budget at smoke and local).",
        "empirical",
        ea.check_d4,
    ),
    Claim(
        "D5",
        "The knee does not depend on the corpus size T or the algorithm (SGNS vs CBOW) at fixed N.",
        "At N = 4k (local): n_eps per condition (T in {0.5M, 2M} with SGNS; CBOW at 2M), relative to SGNS at "
        "2M. SUPPORTED if the bootstrap CI upper bound of the largest |relative shift| is <= 30%; REFUTED if its CI lower "
        "bound is > 30%; else INCONCLUSIVE.",
        "empirical",
        ea.check_d5,
        "knee_vs_tokens",
    ),
    Claim(
        "D-P1",
        "The quadrature reproduces the article's h_n table and h_n / n -> -(1/2) ln(golden ratio).",
        "|h_n - table| < 1e-3 for n = 32 ... 512; |h_n / n + 0.240606| decreasing in n and < 2e-5 at n = 8192. "
        "Must PASS, else INVALID.",
        "positive_control",
        ea.check_dp1,
        "derivation",
    ),
    Claim(
        "D-P2",
        "On the planted tree corpus the 5%-knee of the exact KL never falls as N grows (per b) or as b grows (per N).",
        "Full-softmax fits (300 full-batch Adam steps) at every grid n; knees non-decreasing in N for each b and in b at "
        "each shared N. Must PASS, else INVALID.",
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
