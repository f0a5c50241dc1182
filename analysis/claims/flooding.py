"""The claims of study `flooding` with their pre-registered rules, the article and the figures.

Each claim names its check in `analysis/flooding.py`; `studies/flooding.py` hands these to the runner,
and `python -m analysis` reads them from here without importing the study (torch, Ray).
"""

from analysis import flooding as fl
from analysis.figures import flooding as flf
from analysis.verdict import Claim, StudyClaims

ARTICLE = "我们真的需要把训练集的损失降低到零吗？ (Do we really need zero training loss?) https://kexue.fm/archives/7643"

CLAIMS = (
    Claim(
        "F1",
        "With b > 0 chosen on validation, test accuracy is at least that of b = 0, also with early stopping.",
        "Per cell, Delta_s = acc_s(b*) - acc_s(0) on the clean test set. SUPPORTED if mean Delta > 0 and a Holm-corrected "
        "one-sided paired t-test is significant in >= 50% of cells with none significantly negative; REFUTED if any cell "
        "is significantly negative (Holm); else INCONCLUSIVE. Smoke reports direction only.",
        "empirical",
        fl.check_f1,
        "isolation_test_acc",
    ),
    Claim(
        "F2",
        "The test loss rises and then falls again once the training loss hovers at b; without flooding it keeps rising.",
        "Detector: 5-epoch moving average; onset where it exceeds its running minimum by 5%; fires if a later maximum is "
        "followed by a 5% drop. SUPPORTED if in every noisy cell it fires for b* in >= 4/5 seeds and for b = 0 in <= 1/5; "
        "REFUTED if in every noisy cell it fires for b* in <= 2/5 or for b = 0 at least as often.",
        "empirical",
        fl.check_f2,
        "test_loss_curves",
    ),
    Claim(
        "F3",
        "Once flooded, the training loss stays near b and about half of the steps are ascent steps.",
        "For every b >= 0.05 that is reached: mean training loss over the last 20% of epochs in [0.8b, 1.2b] and flood "
        "proportion in [0.3, 0.7]. SUPPORTED if all hold; REFUTED if a majority fail.",
        "empirical",
        fl.check_f3,
        "mechanics",
    ),
    Claim(
        "F4",
        "Two flooded steps equal theta - (eps^2/2) grad ||g||^2 + O(eps^3), exactly for quadratics.",
        "E1: random SPD quadratics, error <= 1e-12 (float64). E2: on (1 - ab)^2/2 and a 2-2-1 tanh MLP, the log-log error "
        "slope over eps in {0.04, 0.02, 0.01, 0.005} lies in [2.7, 3.3]. SUPPORTED if both pass, REFUTED otherwise.",
        "exact",
        fl.check_f4,
        "exact_identity",
    ),
    Claim(
        "F5",
        "Flooded models end flatter: a lower top Hessian eigenvalue.",
        "lambda_max(b*) < lambda_max(0), one-sided paired t per noise cell (E = off), Holm; SUPPORTED in >= 50% of cells, "
        "REFUTED if significantly larger in any cell.",
        "empirical",
        fl.check_f5,
        "flatness",
    ),
    Claim(
        "F6",
        "The best b grows with label noise, of the order of the noisy-label entropy H(eta) (a hypothesis of the spec).",
        "Per-seed b*. SUPPORTED if Spearman rho(eta, b*) > 0 with p < 0.05 and median b*/H(eta) in [0.5, 2] for every "
        "eta > 0; "
        "REFUTED if rho < 0 significantly or every eta's bootstrap CI of the median ratio lies outside [0.5, 2].",
        "empirical",
        fl.check_f6,
        "noise_vs_best_level",
    ),
    Claim(
        "F-P1",
        "With b = 0 the flooded loss and gradient equal the base loss and gradient; the sign is +1 above b, -1 below.",
        "Exact equality in float64. Must PASS, else the study is INVALID.",
        "positive_control",
        fl.check_fp1,
    ),
    Claim(
        "F-C1",
        "Two flooded steps on different mini-batches pass the E2 slope test.",
        "The error is O(eps) (slope ~ 1), so this must FAIL, else the study is INVALID.",
        "negative_control",
        fl.check_fc1,
        "exact_identity",
    ),
    Claim(
        "F-P2",
        "The label-noise generator flips a fraction eta within 1/n, and no flipped label keeps its class.",
        "Must PASS, else the study is INVALID.",
        "positive_control",
        fl.check_fp2,
    ),
)

FIGURES = (
    flf.fig_test_loss,
    flf.fig_mechanics,
    flf.fig_isolation,
    flf.fig_paired,
    flf.fig_flatness,
    flf.fig_identity,
    flf.fig_noise_vs_b,
)

CLAIMED = StudyClaims("flooding", ARTICLE, CLAIMS, FIGURES)
