"""The claims of study `attention_scaling` with their pre-registered rules, the article and the figures.

Each claim names its check in `analysis/attention_scaling.py`; `studies/attention_scaling.py` hands these to the runner,
and `python -m analysis` reads them from here without importing the study (torch, Ray).
"""

from analysis import attention_scaling as aa
from analysis.figures import attention_scaling as aaf
from analysis.verdict import Claim, StudyClaims

ARTICLE = "线性Attention的探索：Attention必须有个Softmax吗？ (must attention have a softmax?) https://kexue.fm/archives/7546"

CLAIMS = (
    Claim(
        "L1",
        "Without the softmax, time and memory grow linearly in n; the speed crossover is at n* = Theta(d) and the "
        "causal cumsum memory crossover near d^2.",
        "Forward time, non-causal, per d. Smoke: SUPPORTED if slope(softmax) - slope(linear) >= 0.4 (OLS of log time on "
        "log n, three largest n), n* <= 8d (first n from which linear stays faster) and the cumsum-vs-softmax memory "
        "crossover lies in [0.5 d^2, 2 d^2]. Local/full: slope(linear) <= 1.15 and slope(softmax) >= 1.8 for n >= "
        "2048 (4096 full) instead of the slope difference. REFUTED if slope(linear) >= 1.5 or no crossover up to the "
        "largest n; else INCONCLUSIVE. n* against SDPA is reported without a verdict.",
        "empirical",
        aa.check_l1,
        "time_vs_length",
    ),
    Claim(
        "L2",
        "Every kernel variant (and Efficient Attention, non-causally) is legal attention: non-negative rows summing to "
        "1, and the associative form equals A V.",
        "Implied matrices on awkward shapes, causal and not: min entry >= 0 and |row sum - 1| <= 1e-10 (float64); "
        "|associative - A V| <= 1e-10 (float64) and 1e-5 (float32). SUPPORTED if all hold; REFUTED otherwise.",
        "exact",
        aa.check_l2,
        "equivalence",
    ),
    Claim(
        "L3",
        "The masked quadratic, cumsum, chunked and recurrent causal forms are one function, and RNN decoding costs the "
        "same at every position.",
        "Outputs and gradients of every form pair within 1e-10 (float64) and 1e-5 (float32), chunk 16 (64 at local) "
        "with n not a multiple of it; and |OLS slope of RNN decode latency on position| x max position <= 10% of its "
        "median latency while the KV-cached softmax latency grows (slope > 0, p < 0.01). SUPPORTED if both hold; "
        "REFUTED if the forms disagree or the RNN latency grows by more than that; else INCONCLUSIVE.",
        "exact",
        aa.check_l3,
        "decode_latency",
    ),
    Claim(
        "L4",
        "Every kernel variant can be made causal (no output depends on a future key), and a Linformer layer cannot.",
        "Leak test, float64 autograd: max |d o_i / d (k_j, v_j)| over j > i <= 1e-12 for softmax, SDPA and every kernel "
        "variant in causal mode, and > 1e-12 for a Linformer layer (E K, F V along positions). SUPPORTED if so; "
        "REFUTED otherwise.",
        "exact",
        aa.check_l4,
        "equivalence",
    ),
    Claim(
        "L5",
        "linear_elu is about as good as softmax attention (Katharopoulos et al.: 'similar to vanilla transformers').",
        "TOST non-inferiority of linear_elu - softmax in test nats per token (chars at local, HMM tokens at smoke), "
        "margin ln 1.05 = 0.0488, hierarchical bootstrap (seeds, then test chunks) on the confirmation seeds at each "
        "variant's chosen lr: SUPPORTED if the one-sided 95% upper bound < margin; REFUTED if the lower bound > margin; "
        "else INCONCLUSIVE.",
        "empirical",
        aa.check_l5,
        "quality",
    ),
    Claim(
        "L6",
        "Su's 1 + cos kernel is closer to softmax than elu + 1 (Su retracted it in 2024: expected REFUTED).",
        "linear_cos vs linear_elu: recall accuracy (MQAR), test bits per char (LM), and the median attention-row KL to "
        "the trained softmax model's rows (same q, k). SUPPORTED if linear_cos is better on all three (paired bootstrap "
        "95% CIs exclude 0); REFUTED if it is significantly worse on recall and bits per char and its row KL is larger; "
        "else INCONCLUSIVE. INCONCLUSIVE also when softmax's recall accuracy is below twice chance (the task was not "
        "learned, so it cannot rank kernels; added after the first local run, where every variant sat at chance).",
        "empirical",
        aa.check_l6,
        "row_kl",
    ),
    Claim(
        "L-C1",
        "Efficient Attention used in a causal model keeps the future out.",
        "Leak test as in L4: it must FAIL (leak > 1e-12), else the leak test is blind and the study INVALID.",
        "negative_control",
        aa.check_lc1,
    ),
    Claim(
        "L-C2",
        "elu + 1 attention without zeroing padded keys keeps padding out.",
        "Padding leak test (last 5 keys padded): it must FAIL (leak > 1e-12), else the study is INVALID.",
        "negative_control",
        aa.check_lc2,
    ),
)

FIGURES = (aaf.fig_time, aaf.fig_memory, aaf.fig_decode, aaf.fig_equivalence, aaf.fig_quality, aaf.fig_row_kl)

CLAIMED = StudyClaims("attention_scaling", ARTICLE, CLAIMS, FIGURES)
