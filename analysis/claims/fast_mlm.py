"""The claims of study `fast_mlm` with their pre-registered rules, the article and the figures.

Each claim names its check in `analysis/fast_mlm.py`; `studies/fast_mlm.py` hands these to the runner,
and `python -m analysis` reads them from here without importing the study (torch, Ray).
"""

from analysis import fast_mlm as fa
from analysis.figures import fast_mlm as faf
from analysis.rules import Control
from analysis.verdict import PASS, Claim, StudyClaims

ARTICLE = "修改Transformer结构，设计一个更快更好的MLM模型 (a faster, better MLM by changing the Transformer) https://kexue.fm/archives/7661"

CLAIMS = (
    Claim(
        "T1",
        "Every token is a target (6.7x more than 15% MLM), so T-TA reaches a given pseudo-NLL in fewer steps.",
        "Target: MLM-15%'s final validation pnll (at s_total). s_TTA: T-TA's first evaluation step with pnll <= target; "
        "r = s_total / s_TTA. SUPPORTED if the 95% bootstrap CI of r (10k resamples: seeds, then validation windows) lies "
        f"above 1; REFUTED if T-TA never reaches the target in >= 2 of 3 seeds or the CI lies below 1; else INCONCLUSIVE. "
        f"Fewer than {fa.MIN_SEEDS} seeds with both arms finished: INCONCLUSIVE, too few seeds (runs left out named). The "
        "ratio in training wall-clock seconds is reported beside it. Real text at local/full; at smoke (HMM) direction "
        "only.",
        "empirical",
        fa.check_t1,
        "efficiency",
        decides_from="local",
    ),
    Claim(
        "T2",
        "With keys and values from the input at every layer and the diagonal mask, output i is exactly independent of x_i.",
        f"Both: (1) {fa.LEAK.text()} (2) {fa.ORACLE.text()} SUPPORTED if both support; REFUTED if either refutes; "
        f"INCONCLUSIVE otherwise, also when a depth has fewer finished T-TA HMM runs than its seeds need (2 at smoke, "
        f"{fa.MIN_SEEDS} from local; diverged and failed runs named).",
        "exact",
        fa.check_t2,
        "oracle_gap",
    ),
    Claim(
        "T3",
        "At equal parameters T-TA is comparable to or better than standard MLM (paper: 3-layer models).",
        fa.NONINFERIORITY,
        "empirical",
        fa.check_t3,
        "non_inferiority",
        decides_from="local",
    ),
    Claim(
        "T4",
        "Unsupervised scoring needs one pass instead of T: the paper reports over 6x faster reranking on CPU.",
        "PLL scoring time of the same windows, MLM (T masked copies) / T-TA (one pass), one thread, at batch 1 and 32, "
        f"paired by repeat: SUPPORTED if the median speed-up over the repeats is >= {fa.SPEEDUP:g} at both batch sizes; "
        f"REFUTED if the upper end of its 95% CI (bootstrap over repeats) is < {fa.SPEEDUP:g} at either; else "
        f"INCONCLUSIVE, also with fewer than {fa.MIN_SEEDS} repeats at either. The ratio to T is reported. At smoke "
        "direction only.",
        "empirical",
        fa.check_t4,
        "throughput",
        decides_from="local",
    ),
    Claim(
        "T5",
        "T3 holds beyond 3 layers (Su's open question; the Synthesizer-R argument predicts yes).",
        "T3's rule at each planned depth of the data set that ran at several (the HMM at 2 and 4 at local, text at "
        f"3/6/12 at full), the depths as its cells [{fa.NONINFERIORITY.text()}]. The claim: SUPPORTED if non-inferiority "
        "is SUPPORTED at every depth; REFUTED if it is SUPPORTED at the shallowest and REFUTED at the deepest; else "
        "INCONCLUSIVE. A depth with too few finished seeds (none at all included) makes it INCONCLUSIVE, naming it.",
        "empirical",
        fa.check_t5,
        "non_inferiority",
        decides_from="local",
    ),
    Claim(
        "T-C1",
        "Leaky stacking (keys and values from the previous layer) keeps x_i out of output i.",
        f"Must FAIL: leak gradient > {fa.LEAK.tolerance:g} at depths 2-4 and <= {fa.LEAK.tolerance:g} at depth 1, and "
        f"every leaky HMM run's test pnll below the oracle - {fa.LEAKY_GAP:g} nats (a leaky run that did not finish: "
        "INCONCLUSIVE, named); otherwise the leak test or the oracle is blind and the study INVALID.",
        "negative_control",
        fa.check_tc1,
        "one_layer_only",
    ),
    Claim(
        "T-C2",
        "An additive -10000 mask keeps x_i out of output i on a row with a single real token.",
        f"Must FAIL: leak gradient > {fa.LEAK.tolerance:g} for the additive mask (while the -inf mask with zeroed rows "
        f"stays <= {fa.LEAK.tolerance:g}).",
        "negative_control",
        fa.check_tc2,
    ),
    Claim(
        "T-P1",
        "The forward-backward oracle p(x_i | x_not_i) equals brute-force enumeration (K = 2, V = 3, T = 5).",
        Control(fa.TP1, must=PASS),
        "positive_control",
        fa.check_tp1,
    ),
)

FIGURES = (faf.fig_efficiency, faf.fig_oracle_gap, faf.fig_one_layer_only, faf.fig_non_inferiority, faf.fig_throughput)

CLAIMED = StudyClaims("fast_mlm", ARTICLE, CLAIMS, FIGURES)
