"""The claims of study `fast_mlm` with their pre-registered rules, the article and the figures.

Each claim names its check in `analysis/fast_mlm.py`; `studies/fast_mlm.py` hands these to the runner,
and `python -m analysis` reads them from here without importing the study (torch, Ray).
"""

from analysis import fast_mlm as fa
from analysis.figures import fast_mlm as faf
from analysis.verdict import Claim, StudyClaims

ARTICLE = "修改Transformer结构，设计一个更快更好的MLM模型 (a faster, better MLM by changing the Transformer) https://kexue.fm/archives/7661"

CLAIMS = (
    Claim(
        "T1",
        "Every token is a target (6.7x more than 15% MLM), so T-TA reaches a given pseudo-NLL in fewer steps.",
        "Target: MLM-15%'s final validation pnll (at s_total). s_TTA: T-TA's first evaluation step with pnll <= target; "
        "r = s_total / s_TTA. SUPPORTED if the 95% bootstrap CI of r (seeds, then validation windows) lies above 1; "
        "REFUTED if T-TA never reaches the target in >= 2 of 3 seeds or the CI lies below 1; else INCONCLUSIVE. The "
        "ratio in training wall-clock seconds is reported beside it. Real text at local/full; at smoke (HMM) "
        "reported only.",
        "empirical",
        fa.check_t1,
        "efficiency",
    ),
    Claim(
        "T2",
        "With keys and values from the input at every layer and the diagonal mask, output i is exactly independent of x_i.",
        "SUPPORTED if max |d logit_i / d e_i| <= 1e-12 (float64, e = per-position embeddings) at depths 1-4 and every "
        "trained T-TA's HMM test pnll >= oracle pnll - 0.01 nats (per depth and seed); REFUTED otherwise.",
        "exact",
        fa.check_t2,
        "oracle_gap",
    ),
    Claim(
        "T3",
        "At equal parameters T-TA is comparable to or better than standard MLM (paper: 3-layer models).",
        "TOST non-inferiority of test pnll(T-TA) / pnll(best MLM), the better of MLM-15%/40% on validation, margin "
        "1.02, hierarchical bootstrap (seeds, then test windows, paired): SUPPORTED if the one-sided 95% upper bound "
        "<= 1.02; REFUTED if the lower bound > 1.02; else INCONCLUSIVE. INCONCLUSIVE also when the better MLM's test "
        "pnll is not at least 0.05 nats below the training unigram's (nothing learned to compare). Real text at "
        "local/full; at smoke (HMM) reported only.",
        "empirical",
        fa.check_t3,
        "non_inferiority",
    ),
    Claim(
        "T4",
        "Unsupervised scoring needs one pass instead of T: the paper reports over 6x faster reranking on CPU.",
        "PLL scoring time of the same windows, MLM (T masked copies) / T-TA (one pass), one thread, at batch 1 and 32, "
        "paired by repeat: SUPPORTED if the lower end of the 95% CI of the median speed-up (bootstrap over repeats) is "
        ">= 6 at both batch sizes; REFUTED if the upper end is < 6 at either; else INCONCLUSIVE. The ratio to T is "
        "reported. At smoke reported only.",
        "empirical",
        fa.check_t4,
        "throughput",
    ),
    Claim(
        "T5",
        "T3 holds beyond 3 layers (Su's open question; the Synthesizer-R argument predicts yes).",
        "T3's test (with its unigram guard) at each depth of the data set that ran at several (the HMM at 2 and 4 at "
        "local, text at 3/6/12 at full): SUPPORTED if non-inferiority is SUPPORTED at every depth; "
        "REFUTED if it is SUPPORTED at the shallowest and REFUTED at the deepest; else INCONCLUSIVE.",
        "empirical",
        fa.check_t5,
        "non_inferiority",
    ),
    Claim(
        "T-C1",
        "Leaky stacking (keys and values from the previous layer) keeps x_i out of output i.",
        "Must FAIL: leak gradient > 1e-12 at depths 2-4 and <= 1e-12 at depth 1, and every leaky HMM run's test pnll "
        "below the oracle - 0.05 nats; otherwise the leak test or the oracle is blind and the study INVALID.",
        "negative_control",
        fa.check_tc1,
        "one_layer_only",
    ),
    Claim(
        "T-C2",
        "An additive -10000 mask keeps x_i out of output i on a row with a single real token.",
        "Must FAIL: leak gradient > 1e-12 for the additive mask (while the -inf mask with zeroed rows stays <= 1e-12).",
        "negative_control",
        fa.check_tc2,
    ),
    Claim(
        "T-P1",
        "The forward-backward oracle p(x_i | x_not_i) equals brute-force enumeration (K = 2, V = 3, T = 5).",
        "Must PASS: max absolute difference of the pseudo-NLLs <= 1e-12.",
        "positive_control",
        fa.check_tp1,
    ),
)

FIGURES = (faf.fig_efficiency, faf.fig_oracle_gap, faf.fig_one_layer_only, faf.fig_non_inferiority, faf.fig_throughput)

CLAIMED = StudyClaims("fast_mlm", ARTICLE, CLAIMS, FIGURES)
