"""The claims of study `pg_vs_zo` with their pre-registered rules, the article and the figures.

Each claim names its check in `analysis/pg_vs_zo.py`, or, decided by a rule of `analysis.rules` (Z1, Z3, Z-P1), the
exact-check values that rule reads; `studies/pg_vs_zo.py` hands these to the runner, and `python -m analysis` reads
them from here without importing the study (torch, Ray). The other rules are composite (several conditions with
their own thresholds, or a precondition), so their checks decide; `analysis.rules.Superiority` decides the paired
half of Z5 and Z6 inside theirs.
"""

from analysis import pg_vs_zo as pz
from analysis.figures import pg_vs_zo as pzf
from analysis.rules import Control, Exact
from analysis.verdict import Claim, StudyClaims

ARTICLE = "殊途同归的策略梯度与零阶优化 (policy gradient and zeroth-order optimisation) https://kexue.fm/archives/7737"

CLAIMS = (
    Claim(
        "Z1",
        "The Gaussian-policy REINFORCE term equals the forward-difference ZO term sample by sample (b = f(theta)).",
        Exact(
            1e-12,
            "|REINFORCE term - ZO term| over 1000 random (theta, u) pairs (f = accuracy of a linear classifier "
            "on a fixed digits batch, float64)",
        ),
        "exact",
        lambda t: t.check("z1/max_abs_diff"),
        "identities",
    ),
    Claim(
        "Z2",
        "ZO estimates are unbiased on quadratics with single-direction variance (d + 1) ||grad f||^2; E cos^2 ~ q / d.",
        "d in {4, 16, 64}, N = 2e4: relative bias < 3 sqrt((d + 1) / N) and variance / ||g||^2 within 5% of d + 1; at local "
        "and full also, for every model (float64, sigma 1e-3), the slope of log E[cos^2] on log q in [0.9, 1.1] and "
        "|intercept + ln d| <= 0.5. SUPPORTED if all hold; REFUTED otherwise.",
        "exact",
        pz.check_z2,
        "cosine_vs_q",
    ),
    Claim(
        "Z3",
        "Gumbel noise on the logits induces exactly the softmax policy, and its noise score gives grad softmax.",
        Exact(
            5e-3,
            "error of the Gumbel-max frequencies to softmax and of the noise-score estimate to grad softmax_t "
            "(K = 5, N = 2e5)",
        ),
        "exact",
        lambda t: {"|frequency - softmax|": t.check("z3/freq_err"), "|estimate - grad softmax_t|": t.check("z3/grad_err")},
        "identities",
    ),
    Claim(
        "Z4",
        "Baselines reduce the estimator variance and b* = E[f ||u||^2] / E[||u||^2] gives the minimum.",
        "d = 16, N = 2e4: SUPPORTED if var(b = 0) > var(b = f(theta)) >= var(b*) - 3 s.e., and the argmin over a "
        "21-point baseline grid is the grid point nearest b*; REFUTED otherwise.",
        "exact",
        pz.check_z4,
        "baselines",
    ),
    Claim(
        "Z5",
        "Policy gradient (0/1 reward) and ZO (batch 0/1 accuracy) both optimise a non-differentiable metric.",
        "Per model: test accuracy minus the initial model's, paired over seeds, for pg_reinforce and zo_acc. SUPPORTED "
        "if both improve (one-sided paired t, Holm over models and methods, p < 0.01) in every model and every seed "
        "reaches chance + 50 pp (smoke, local; a diverged or failed seed does not) or the mean lies within 5 pp of "
        "ce_backprop's (full); REFUTED if either method's improvement has a 95% CI upper bound below 10 pp in any model; "
        "else INCONCLUSIVE. At least 3 ok seeds in every (model, method) cell; the runs left out are named.",
        "empirical",
        pz.check_z5,
        "final_accuracy",
        decides_from="local",
    ),
    Claim(
        "Z6",
        "PG is more query-efficient than ZO, increasingly so as d grows (a corollary of this specification).",
        "AUC of validation accuracy vs example-forwards (normalised to [0, 1]). SUPPORTED if AUC(pg) - AUC(zo_acc) > 0 "
        "in every model (paired t, Holm, p < 0.05) and the gap at the largest d exceeds that at the smallest (paired "
        "bootstrap CI of the difference excludes 0); REFUTED if zo_acc is significantly better at the largest d or the "
        "gap shrinks significantly; else INCONCLUSIVE. At least 3 seeds with both arms ok in every model (the runs left "
        "out are named); every model with runs counts, so a largest model without them decides nothing. Not run at smoke "
        "(one model).",
        "empirical",
        pz.check_z6,
        "efficiency_gap",
        decides_from="local",
    ),
    Claim(
        "Z-C1",
        "ZO on 0/1 accuracy with sigma = 1e-8 gives non-zero estimates (i.e. the metric leaks soft probabilities).",
        "Exactly zero on >= 99% of 200 draws, so it must FAIL, else INVALID.",
        "negative_control",
        pz.check_zc1,
    ),
    Claim(
        "Z-C2",
        "With B = 4, REINFORCE with a batch-mean baseline that includes the sample matches the exact gradient.",
        "Its expected shrinkage is 0.75x: it must differ by > 3 s.e. (FAIL), else INVALID; the leave-one-out mean must "
        "match, else the check itself is broken and the control reads PASS (INVALID).",
        "negative_control",
        pz.check_zc2,
    ),
    Claim(
        "Z-P1",
        "For the 0/1 reward the REINFORCE mean over 1e5 samples matches grad p(y_t | x).",
        Control(Exact(3.0, "|z| (REINFORCE mean - exact, in standard errors) of the 6 coordinates")),
        "positive_control",
        lambda t: t.check("zp1/max_z"),
    ),
    Claim(
        "Z-P2",
        "Directions regenerate exactly from their seed; +eps / -2 eps / +eps restores theta within rounding.",
        "Bitwise-equal regeneration; drift <= 1e-14 (float64) and <= 1e-5 (float32) at |theta| ~ 1. Must PASS, else INVALID.",
        "positive_control",
        pz.check_zp2,
    ),
)

FIGURES = (pzf.fig_identities, pzf.fig_variance, pzf.fig_baselines, pzf.fig_cosine, pzf.fig_curves, pzf.fig_gap, pzf.fig_final)

CLAIMED = StudyClaims("pg_vs_zo", ARTICLE, CLAIMS, FIGURES)
