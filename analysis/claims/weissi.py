"""The claims of study `weissi` with their pre-registered rules, the article and the figures.

Each claim names its check in `analysis/weissi.py`; `studies/weissi.py` hands these to the runner,
and `python -m analysis` reads them from here without importing the study (torch, Ray).
"""

from analysis import weissi as wa
from analysis.figures import weissi as waf
from analysis.verdict import Claim, StudyClaims

ARTICLE = 'L2正则没有想象那么好？可能是"权重尺度偏移"惹的祸 (is L2 not as good as we think?) https://kexue.fm/archives/7681'

CLAIMS = (
    Claim(
        "W1",
        "A weight-scale shift with prod gamma = 1 leaves a biased ReLU net's outputs and WEISSI unchanged but changes L2.",
        "20 random log-normal gamma vectors on a 64-128-128-10 net, float64: SUPPORTED if outputs agree to rtol 1e-9, "
        "|delta WEISSI| < 1e-9 and |delta L2| > 1e-6 for every draw; REFUTED otherwise.",
        "exact",
        wa.check_w1,
        "invariance",
    ),
    Claim(
        "W2",
        "Balanced rescaling lowers the weight-only L2 to L (prod_l ||W_l||)^(2/L) without changing the function.",
        "SUPPORTED if the balanced L2 equals the AM-GM bound to 1e-9 (relative), lies below the original L2, and "
        "outputs are unchanged (rtol 1e-9); REFUTED otherwise.",
        "exact",
        wa.check_w2,
        "orbit",
    ),
    Claim(
        "W3",
        "Gradient flow conserves D = ||W1||^2 + ||b1||^2 - ||W2||^2, also under WEISSI; L2 decays it as exp(-4 lambda t).",
        "Full-batch GD on a 2-layer ReLU net, lr 1e-3, 20k steps (lr T = 20), lambda = 0.05: SUPPORTED if |D_T/D_0 - 1| "
        "< 1e-3 without regulariser and with WEISSI, and D_T/D_0 within 5% of exp(-4 lambda lr T) with L2 (all "
        "tensors); REFUTED otherwise.",
        "exact",
        wa.check_w3,
        "balance_dynamics",
    ),
    Claim(
        "W4",
        "SGD(weight_decay) and Adam(weight_decay) equal L2 in the loss; AdamW differs and is a decoupled update.",
        "50 steps on a fixed batch, float64: SUPPORTED if max|delta theta| < 1e-10 for SGD (momentum 0 and 0.9) and "
        "Adam against L2 in the loss, > 1e-6 for AdamW against Adam + L2, and < 1e-10 for AdamW against a "
        "hand-written decoupled step; REFUTED otherwise.",
        "exact",
        wa.check_w4,
        "optimiser_equivalence",
    ),
    Claim(
        "W5",
        "Tuned WEISSI generalises better than the better of tuned L2 and tuned weight decay on a homogeneous net.",
        "Per optimiser (and model/data at full): delta = test acc(best WEISSI arm) - test acc(better of L2/WD, chosen "
        "on validation), paired over seeds. SUPPORTED if in every cell the one-sided paired t has Holm p < 0.05 and "
        "mean delta >= 0.3 pp; REFUTED if in any cell the 95% CI upper bound of delta is < 0.3 pp; else INCONCLUSIVE.",
        "empirical",
        wa.check_w5,
        "isolation",
    ),
    Claim(
        "W6",
        "WEISSI gives better adversarial accuracy and a smaller input-gradient norm than L2/WD.",
        "PGD accuracy (PGD-10 at eps 0.1 locally, PGD-20 at full) of the best WEISSI arm vs the better L2/WD arm, "
        "paired over seeds: SUPPORTED if higher in every cell with Holm p < 0.05; REFUTED if significantly lower in "
        "any; else INCONCLUSIVE. The input-gradient norm is reported beside it.",
        "empirical",
        wa.check_w6,
        "robustness",
    ),
    Claim(
        "W7",
        "AdamW beats Adam + L2 when both are tuned with equal budgets.",
        "Adam cells: test acc(wd_decoupled) - test acc(l2_coupled), paired over seeds. SUPPORTED if > 0 with one-sided "
        "p < 0.05 (Holm over models at full) in every cell; REFUTED if Adam + L2 is significantly better in any; else "
        "INCONCLUSIVE.",
        "empirical",
        wa.check_w7,
        "isolation",
    ),
    Claim(
        "W-C1",
        "Scaling each bias by its own gamma (not the cumulative product) passes the W1 output-invariance test.",
        "It changes the outputs (relative > 1e-6), so it must FAIL, else the W1 test is insensitive and the study INVALID.",
        "negative_control",
        wa.check_wc1,
        "invariance",
    ),
    Claim(
        "W-P1",
        "With lambda1 = lambda2 = 0 WEISSI is 0, and its value equals a per-layer Python loop over the formula.",
        "Exact zero and relative error < 1e-12. Must PASS, else INVALID.",
        "positive_control",
        wa.check_wp1,
    ),
    Claim(
        "W-D1",
        "On a BN ResNet-18 (WEISSI only on layers not followed by BN) WEISSI shows no advantage over L2/WD.",
        "Reported only (full budget): a significant win there would mean the effect does not come from the invariance.",
        "diagnostic",
        wa.check_wd1,
        "isolation",
    ),
)

FIGURES = (
    waf.fig_invariance,
    waf.fig_orbit,
    waf.fig_balance,
    waf.fig_optimisers,
    waf.fig_isolation,
    waf.fig_robustness,
    waf.fig_norms,
)

CLAIMED = StudyClaims("weissi", ARTICLE, CLAIMS, FIGURES)
