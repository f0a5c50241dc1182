"""The claims of study `lr_finiteness` with their pre-registered rules, the article and the figures.

Each claim names its check in `analysis/lr_finiteness.py`; `studies/lr_finiteness.py` hands these to the runner,
and `python -m analysis` reads them from here without importing the study (torch, Ray).
"""

from analysis import lr_finiteness as lf
from analysis.figures import lr_finiteness as lff
from analysis.verdict import Claim, StudyClaims

ARTICLE = "从动力学角度看优化算法（五）：为什么学习率不宜过小？ (why the learning rate should not be too small) https://kexue.fm/archives/7787"

CLAIMS = (
    Claim(
        "I1",
        "On L = theta^T A theta / 2, GD differs from the flow by (h^2/2) A^2 theta and from the modified flow by "
        "(h^3/3) A^3 theta.",
        "3-D diagonal A, float64: SUPPORTED if ||modified-flow error|| / ||(h^3/3) A^3 theta0|| lies in [0.95, 1.05] and "
        "the flow error within 5% of (h^2/2) ||A^2 theta0|| for every h <= 0.025; REFUTED otherwise.",
        "exact",
        lf.check_i1,
        "exact_orders",
    ),
    Claim(
        "I2",
        "On E = (1 - ab)^2 / 2 the one-step error of GD has order 2 against the flow and 3 against the modified flow.",
        "From (1.4, 1.75), h in {0.0025, 0.005, 0.01, 0.02}, flows by solve_ivp (rtol 1e-12): SUPPORTED if the log-log "
        "slopes lie in [1.8, 2.2] and [2.7, 3.3]; REFUTED otherwise.",
        "exact",
        lf.check_i2,
        "exact_orders",
    ),
    Claim(
        "I3",
        "On E = (1 - ab)^2 / 2 one GD step multiplies D = a^2 - b^2 by (1 - h^2 r^2), so a larger h ends more balanced.",
        "SUPPORTED if (a) the identity holds to 1e-12 (relative) for 200 random (a, b, h) and (b) after 2000 GD steps "
        "from (2.8, 3.5) the final |a - b| decreases strictly over h in {0.005, 0.01, 0.02, 0.05, 0.1}, all with "
        "|1 - ab| < 1e-6; REFUTED otherwise.",
        "exact",
        lf.check_i3,
        "two_parameter_model",
    ),
    Claim(
        "I4",
        "Larger h gives a smaller R_IG at matched loss and higher test accuracy, up to the instability threshold.",
        "Per activation, over stable runs (target reached without a spike above 2x the running minimum): (a) Spearman "
        "rho(h, R_IG) <= -0.7 with Holm-adjusted p < 0.01 at >= 3 of the loss levels {0.5, 0.2, 0.1, 0.05}; (b) on the "
        "increasing branch (h up to the optimum of a quadratic fit of test accuracy in log h) test accuracy rises with "
        "log h (OLS slope, one-sided p < 0.05, Holm). SUPPORTED if (a) and (b) hold for every activation; REFUTED if "
        "either shows a significant opposite trend for any; else INCONCLUSIVE.",
        "empirical",
        lf.check_i4,
        "regularisation_at_matched_loss",
    ),
    Claim(
        "I5",
        "EGR at small h with mu = (h_big - h)/4 reproduces the large-h run's R_IG and test accuracy.",
        "Per activation, mu* = best mu > 0 on validation: SUPPORTED if mu* beats mu = 0 (paired one-sided t, p < 0.05, "
        "Holm), EGR(mu*) is TOST-equivalent to the h_big run in test accuracy (margin 1.0 pp local, 0.5 pp full) and its "
        "final R_IG lies between those of h and h_big; REFUTED if EGR(mu*) is significantly worse than h_big by more "
        "than the margin or mu* significantly worse than mu = 0; else INCONCLUSIVE.",
        "empirical",
        lf.check_i5,
        "accuracy_vs_step_size",
    ),
    Claim(
        "I6",
        "The learning rate should not be too small: the best stable h beats the smallest h in test accuracy.",
        "Per activation, h* = stable h with the best mean validation accuracy: SUPPORTED if acc(h*) - acc(h_min) > 0 "
        "(paired one-sided t, p < 0.05, Holm) for every activation; REFUTED if the 95% CI upper bound is < 0.5 pp for "
        "any (this covers h* = h_min); else INCONCLUSIVE.",
        "empirical",
        lf.check_i6,
        "accuracy_vs_step_size",
    ),
    Claim(
        "I-P1",
        "EGR with mu = 0 equals plain gradient descent: the same iterates in float64.",
        "Exact equality over 25 steps of a softplus MLP. Must PASS, else the study is INVALID.",
        "positive_control",
        lf.check_ip1,
    ),
    Claim(
        "I-P2",
        "The double-backprop penalty gradient equals 2 mu H g by autograd.functional.hvp, and a central finite "
        "difference agrees.",
        "Relative error <= 1e-10 against hvp and <= 1e-6 for the central difference, float64. Must PASS, else INVALID.",
        "positive_control",
        lf.check_ip2,
    ),
    Claim(
        "I-P3",
        "R_IG from accumulated batch gradients equals the single full-batch computation.",
        "Absolute difference <= 1e-10 in float64. Must PASS, else INVALID.",
        "positive_control",
        lf.check_ip3,
    ),
)

FIGURES = (
    lff.fig_exact_orders,
    lff.fig_two_parameter,
    lff.fig_matched_loss,
    lff.fig_accuracy,
    lff.fig_edge_of_stability,
    lff.fig_flatness,
)

CLAIMED = StudyClaims("lr_finiteness", ARTICLE, CLAIMS, FIGURES)
