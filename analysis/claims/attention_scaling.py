"""The claims of study `attention_scaling` with their pre-registered rules, the article and the figures.

Each claim names its measurement in `analysis/attention_scaling.py`; `studies/attention_scaling.py` hands these to the
runner, and `python -m analysis` reads them from here without importing the study (torch, Ray). The controls are rule
objects; L1-L6 are composite rules (several conditions, two tolerances, a hierarchical bootstrap) whose text is
rendered from the same rule objects and constants their checks decide with.
"""

from analysis import attention_scaling as aa
from analysis.figures import attention_scaling as aaf
from analysis.rules import Control, Exact
from analysis.verdict import FAIL, Claim, StudyClaims

ARTICLE = "线性Attention的探索：Attention必须有个Softmax吗？ (must attention have a softmax?) https://kexue.fm/archives/7546"
L1, TOL64, TOL32, LEAK = aa.L1, aa.F64.tolerance, aa.F32.tolerance, aa.LEAK.tolerance

CLAIMS = (
    Claim(
        "L1",
        "Without the softmax, time and memory grow linearly in n; the speed crossover is at n* = Theta(d) and the "
        "causal cumsum memory crossover near d^2.",
        f"Forward time, non-causal, per d. Smoke: SUPPORTED if slope(softmax) - slope(linear) >= {L1['gap']:g} (OLS of log "
        f"time on log n, three largest n), n* <= {L1['n_star_d']:g}d (n*: the first n from which linear stays faster, "
        f"read by its 95% bootstrap interval over the timing repeats, amendment A1: upper end <= {L1['n_star_d']:g}d "
        f"holds, lower end > {L1['n_star_d']:g}d fails, else INCONCLUSIVE) and the cumsum-vs-softmax memory crossover "
        f"lies in [{L1['mem_d2'][0]:g} d^2, {L1['mem_d2'][1]:g} d^2]. Local/full: "
        f"slope(linear) <= {L1['linear_max']:g} and slope(softmax) >= {L1['softmax_min']:g} for n >= {aa.TOP_N['local']} "
        f"({aa.TOP_N['full']} full) instead of the slope difference. REFUTED if slope(linear) >= {L1['refute']:g} or no "
        "crossover up to the largest n; else INCONCLUSIVE. n* against SDPA is reported without a verdict.",
        "empirical",
        aa.check_l1,
        "time_vs_length",
    ),
    Claim(
        "L2",
        "Every kernel variant (and Efficient Attention, non-causally) is legal attention: non-negative rows summing to "
        "1, and the associative form equals A V.",
        f"Implied matrices on awkward shapes, causal and not: most negative entry, |row sum - 1| and |associative - A V| "
        f"<= {TOL64:g} (float64); |associative - A V| <= {TOL32:g} (float32). SUPPORTED if all hold; REFUTED otherwise.",
        "exact",
        aa.check_l2,
        "equivalence",
    ),
    Claim(
        "L3",
        "The masked quadratic, cumsum, chunked and recurrent causal forms are one function, and RNN decoding costs the "
        "same at every position.",
        f"Outputs and gradients of every form pair within {TOL64:g} (float64) and {TOL32:g} (float32), chunk 16 (64 at "
        f"local) with n not a multiple of it; and |OLS slope of RNN decode latency on position| x max position <= "
        f"{aa.DRIFT.tolerance:g} of its median latency while the KV-cached softmax latency grows (slope > 0, p < "
        f"{aa.KV_P:g}). SUPPORTED if both hold; REFUTED if the forms disagree or the RNN drift exceeds "
        f"{aa.DRIFT.tolerance:g} with the RNN latency's trend significant (p < {aa.KV_P:g}); else INCONCLUSIVE (the "
        "KV-cached latency not growing leaves a flat RNN latency undecided, a drift without a trend is timing noise).",
        "exact",
        aa.check_l3,
        "decode_latency",
    ),
    Claim(
        "L4",
        "Every kernel variant can be made causal (no output depends on a future key), and a Linformer layer cannot.",
        f"Leak test, float64 autograd: max |d o_i / d (k_j, v_j)| over j > i <= {LEAK:g} for softmax, SDPA and every kernel "
        f"variant in causal mode, and > {LEAK:g} for a Linformer layer (E K, F V along positions). SUPPORTED if so; "
        "REFUTED if a variant leaks or Linformer does not; INCONCLUSIVE if a leak test is missing.",
        "exact",
        aa.check_l4,
        "equivalence",
    ),
    Claim(
        "L5",
        "linear_elu is about as good as softmax attention (Katharopoulos et al.: 'similar to vanilla transformers').",
        f"TOST non-inferiority of linear_elu - softmax in test nats per token (chars at local, HMM tokens at smoke), "
        f"margin ln 1.05 = {aa.MARGIN:.4f}, hierarchical bootstrap (seeds, then test chunks; 10,000 resamples) over the "
        f"seeds run ok in both arms at each variant's chosen lr: SUPPORTED if the one-sided 95% upper bound < margin; "
        f"REFUTED if the lower bound > margin; else INCONCLUSIVE. Fewer than {aa.MIN_SEEDS} paired seeds: INCONCLUSIVE "
        "(too few seeds), the runs left out named.",
        "empirical",
        aa.check_l5,
        "quality",
        decides_from="local",
    ),
    Claim(
        "L6",
        "Su's 1 + cos kernel is closer to softmax than elu + 1 (Su retracted it in 2024: expected REFUTED).",
        "linear_cos vs linear_elu: recall accuracy (MQAR), test bits per char (LM), both by hierarchical bootstrap "
        "(seeds, then test chunks), and the median attention-row KL to the trained softmax model's rows (same q, k; "
        "paired bootstrap over rows). SUPPORTED if linear_cos is better on all three (95% CIs exclude 0); REFUTED if it "
        "is significantly worse on recall and bits per char and its median row KL is larger (a point comparison); "
        "else INCONCLUSIVE. INCONCLUSIVE also when softmax's recall accuracy is below twice chance (amendment A2: the "
        f"task was not learned, so it cannot rank kernels), or with fewer than {aa.MIN_SEEDS} paired seeds in recall "
        "or LM (the runs left out named).",
        "empirical",
        aa.check_l6,
        "row_kl",
        decides_from="local",
    ),
    Claim(
        "L-C1",
        "Efficient Attention used in a causal model keeps the future out.",
        Control(Exact(LEAK, "future gradient of Efficient Attention in a causal model (leak test as in L4)"), must=FAIL),
        "negative_control",
        lambda t: t.check("lc1/leak/efficient"),
    ),
    Claim(
        "L-C2",
        "elu + 1 attention without zeroing padded keys keeps padding out.",
        Control(Exact(LEAK, "padded-key gradient of elu + 1 without zeroing (last 5 keys padded)"), must=FAIL),
        "negative_control",
        lambda t: t.check("lc2/padding_leak/unzeroed"),
    ),
)

FIGURES = (aaf.fig_time, aaf.fig_memory, aaf.fig_decode, aaf.fig_equivalence, aaf.fig_quality, aaf.fig_row_kl)

CLAIMED = StudyClaims("attention_scaling", ARTICLE, CLAIMS, FIGURES)
