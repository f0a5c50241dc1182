"""The claims of study `lr_finiteness` with their pre-registered rules, the article and the figures.

Each claim names its check in `analysis/lr_finiteness.py`; `studies/lr_finiteness.py` hands these to the runner,
and `python -m analysis` reads them from here without importing the study (torch, Ray).
"""

from analysis import lr_finiteness as lf
from analysis.figures import lr_finiteness as lff
from analysis.rules import Control, Exact
from analysis.stats import ALPHA
from analysis.verdict import Claim, StudyClaims

ARTICLE = "从动力学角度看优化算法（五）：为什么学习率不宜过小？ (why the learning rate should not be too small) https://kexue.fm/archives/7787"

I5, I6 = lf.I5_BETTER, lf.I6_BETTER
LEVELS = ", ".join(f"{lv:g}" for lv in lf.LEVELS)
TEST = "one-sided paired test (t; exact sign-flip when every difference is equal), Holm across the cells at alpha"

CLAIMS = (
    Claim(
        "I1",
        "On L = theta^T A theta / 2, GD differs from the flow by (h^2/2) A^2 theta and from the modified flow by "
        "(h^3/3) A^3 theta.",
        Exact(
            0.05,
            f"|ratio - 1| at h <= {lf.I1_H_MAX:g} (3-D diagonal A, float64; modified flow: ||error|| / "
            "||(h^3/3) A^3 theta0||; flow: ||error|| / ((h^2/2) ||A^2 theta0||))",
        ),
        "exact",
        lf.check_i1,
        "exact_orders",
    ),
    Claim(
        "I2",
        "On E = (1 - ab)^2 / 2 the one-step error of GD has order 2 against the flow and 3 against the modified flow.",
        Exact(
            0.1,
            "|slope / order - 1| of the log-log one-step error (order 2 against the flow, 3 against the modified "
            "flow; from (1.4, 1.75), h in {0.0025, 0.005, 0.01, 0.02}, flows by solve_ivp at rtol 1e-12)",
        ),
        "exact",
        lf.check_i2,
        "exact_orders",
    ),
    Claim(
        "I3",
        "On E = (1 - ab)^2 / 2 one GD step multiplies D = a^2 - b^2 by (1 - h^2 r^2), so a larger h ends more balanced.",
        f"SUPPORTED if (a) the identity holds to {lf.I3_IDENTITY:g} (relative) for 200 random (a, b, h) and (b) after "
        "2000 GD steps from (2.8, 3.5) the final |a - b| decreases strictly over h in {0.005, 0.01, 0.02, 0.05, "
        f"{lf.I3_H_MAX:g}}}, all with |1 - ab| < {lf.I3_RESIDUAL:g}; REFUTED otherwise.",
        "exact",
        lf.check_i3,
        "two_parameter_model",
    ),
    Claim(
        "I4",
        "Larger h gives a smaller R_IG at matched loss and higher test accuracy, up to the instability threshold.",
        "Per activation, over stable runs (target reached without a spike above 2x the running minimum; the others "
        f"named), at least {lf.MIN_SEEDS} seeds per cell: (a) Spearman rho(h, R_IG) <= {lf.RHO:g} with Holm-adjusted "
        f"p < {lf.RHO_ALPHA:g} at >= {lf.MIN_LEVELS} of the loss levels {{{LEVELS}}}; (b) on the increasing branch "
        "(h up to the optimum of a quadratic fit of test accuracy in log h) test accuracy rises with log h (OLS slope, "
        f"one-sided p < {ALPHA:g}, Holm). SUPPORTED if (a) and (b) hold for every activation; REFUTED if either shows "
        "a significant opposite trend for any; else INCONCLUSIVE.",
        "empirical",
        lf.check_i4,
        "regularisation_at_matched_loss",
        decides_from="local",
    ),
    Claim(
        "I5",
        "EGR at small h with mu = (h_big - h)/4 reproduces the large-h run's R_IG and test accuracy.",
        f"Per activation, mu* = best mu > 0 on validation, runs that reached the target, at least {I5.min_seeds} seeds "
        f"per cell: SUPPORTED if mu* beats mu = 0 ({TEST} {I5.alpha:g}), EGR(mu*) is TOST-equivalent to the h_big run "
        f"in test accuracy (margin {lf.I5_SAME['local'].margin:g} local, {lf.I5_SAME['full'].margin:g} full; the "
        "larger of the two one-sided p, Holm) and its final R_IG lies between those of h and h_big, in every cell; "
        "REFUTED if the 95% interval of EGR(mu*) - h_big lies entirely below -margin or mu* is significantly worse "
        "than mu = 0 (Holm) in any cell; else INCONCLUSIVE.",
        "empirical",
        lf.check_i5,
        "accuracy_vs_step_size",
        decides_from="local",
    ),
    Claim(
        "I6",
        "The learning rate should not be too small: the best stable h beats the smallest h in test accuracy.",
        f"Per activation, h* = stable h with the best mean validation accuracy, at least {I6.min_seeds} seeds per "
        f"cell: SUPPORTED if acc(h*) - acc(h_min) > 0 ({TEST} {I6.alpha:g}) for every activation; REFUTED if the 95% "
        f"CI upper bound is < {lf.I6_FLOOR:g} for any (this covers h* = h_min); else INCONCLUSIVE.",
        "empirical",
        lf.check_i6,
        "accuracy_vs_step_size",
        decides_from="local",
    ),
    Claim(
        "I-P1",
        "EGR with mu = 0 equals plain gradient descent: the same iterates in float64.",
        Control(Exact(0.0, "max |EGR(mu = 0) - GD| over 25 steps of a softplus MLP, float64,")),
        "positive_control",
        lambda t: t.check("ip1/max_abs_diff"),
    ),
    Claim(
        "I-P2",
        "The double-backprop penalty gradient equals 2 mu H g by autograd.functional.hvp, and a central finite "
        "difference agrees.",
        "PASS if "
        + " and ".join(f"the {r.what} is <= {r.tolerance:g}" for r in lf.IP2.values())
        + " (float64); FAIL otherwise. Must PASS, else the study is INVALID.",
        "positive_control",
        lf.check_ip2,
    ),
    Claim(
        "I-P3",
        "R_IG from accumulated batch gradients equals the single full-batch computation.",
        Control(Exact(1e-10, "|R_IG(accumulated batches) - R_IG(full batch)|, float64,")),
        "positive_control",
        lambda t: t.check("ip3/abs_err"),
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
