"""The claims of study `weissi` with their pre-registered rules, the article and the figures.

Each claim names its measurement in `analysis/weissi.py`; `studies/weissi.py` hands these to the runner, and
`python -m analysis` reads them from here without importing the study (torch, Ray). W5-W7 and W-C1 are decided
by `analysis.rules`; the exact claims W1-W4 and W-P1 bound several quantities each, some from above and some from
below: `analysis.rules.Bounds`.
"""

from analysis import weissi as wa
from analysis.figures import weissi as waf
from analysis.rules import Bounds, Control, Exact, Superiority
from analysis.verdict import FAIL, Claim, StudyClaims

ARTICLE = 'L2正则没有想象那么好？可能是"权重尺度偏移"惹的祸 (is L2 not as good as we think?) https://kexue.fm/archives/7681'


W5 = Superiority("test acc(best WEISSI arm) - test acc(better of L2/WD; both chosen on validation), paired over seeds "
                 "per optimiser (and model/data at full)", delta=0.003)  # fmt: skip
W6 = Superiority("PGD accuracy (PGD-10 at eps 0.1 locally, PGD-20 at full) of the best WEISSI arm - the better L2/WD arm "
                 "(both chosen on validation accuracy; the input-gradient norm difference beside each cell), paired over "
                 "seeds")  # fmt: skip
W7 = Superiority(
    "test acc(wd_decoupled) - test acc(l2_coupled) in the Adam cells, paired over seeds (Holm over models at full)"
)

CLAIMS = (
    Claim(
        "W1",
        "A weight-scale shift with prod gamma = 1 leaves a biased ReLU net's outputs and WEISSI unchanged but changes L2.",
        Bounds(
            "20 random log-normal gamma vectors on a 64-128-128-10 net, float64",
            (("relative output change", "<", 1e-9), ("|delta WEISSI|", "<", 1e-9), ("|delta L2|", ">", 1e-6)),
        ),
        "exact",
        wa.w1,
        "invariance",
    ),
    Claim(
        "W2",
        "Balanced rescaling lowers the weight-only L2 to L (prod_l ||W_l||)^(2/L) without changing the function.",
        Bounds(
            "Balanced rescaling of the W1 net, float64",
            (
                ("relative error of the balanced L2 to the AM-GM bound", "<", 1e-9),
                ("balanced L2 / original L2", "<", 1),
                ("relative output change", "<", 1e-9),
            ),
        ),
        "exact",
        wa.w2,
        "orbit",
    ),
    Claim(
        "W3",
        "Gradient flow conserves D = ||W1||^2 + ||b1||^2 - ||W2||^2, also under WEISSI; L2 decays it as exp(-4 lambda t).",
        Bounds(
            "Full-batch GD on a 2-layer ReLU net, lr 1e-3, 20k steps (lr T = 20), lambda = 0.05, L2 penalty lambda "
            "sum ||.||^2 over all tensors",
            (
                ("|D_T/D_0 - 1| without a regulariser", "<", 1e-3),
                ("|D_T/D_0 - 1| with WEISSI", "<", 1e-3),
                ("|(D_T/D_0) / exp(-4 lambda lr T) - 1| with L2", "<", 0.05),
            ),
        ),
        "exact",
        wa.w3,
        "balance_dynamics",
    ),
    Claim(
        "W4",
        "SGD(weight_decay) and Adam(weight_decay) equal L2 in the loss; AdamW differs and is a decoupled update.",
        Bounds(
            "max |delta theta| over 50 steps on a fixed batch, float64, of SGD(weight_decay) vs SGD + L2 in the loss "
            "(momentum 0 and 0.9), Adam(weight_decay) vs Adam + L2, AdamW vs a hand-written decoupled step, and AdamW "
            "vs Adam + L2",
            (*((k.removeprefix("w4/"), "<", 1e-10) for k in wa.W4_SAME), ("adamw_vs_adam_l2", ">", 1e-6)),
        ),
        "exact",
        wa.w4,
        "optimiser_equivalence",
    ),
    Claim(
        "W5",
        "Tuned WEISSI generalises better than the better of tuned L2 and tuned weight decay on a homogeneous net.",
        W5,
        "empirical",
        lambda t: wa.versus(t, "test_acc", wa.WEISSI, wa.L2_WD, wa.homogeneous, W5.min_seeds),
        "isolation",
        decides_from="local",
    ),
    Claim(
        "W6",
        "WEISSI gives better adversarial accuracy and a smaller input-gradient norm than L2/WD.",
        W6,
        "empirical",
        lambda t: wa.versus(t, "pgd_acc", wa.WEISSI, wa.L2_WD, wa.homogeneous, W6.min_seeds, "test/input_grad_norm"),
        "robustness",
        decides_from="local",
    ),
    Claim(
        "W7",
        "AdamW beats Adam + L2 when both are tuned with equal budgets.",
        W7,
        "empirical",
        lambda t: wa.versus(
            t,
            "test_acc",
            ("wd_decoupled",),
            ("l2_coupled",),
            lambda c: c["optimizer"] == "adam" and wa.homogeneous(c),
            W7.min_seeds,
        ),
        "isolation",
        decides_from="local",
    ),
    Claim(
        "W-C1",
        "Scaling each bias by its own gamma (not the cumulative product) passes the W1 output-invariance test.",
        Control(Exact(1e-6, "relative output change under the naive bias rule (20 shifts)"), must=FAIL),
        "negative_control",
        lambda t: t.check("wc1/out_rel_diff"),
        "invariance",
    ),
    Claim(
        "W-P1",
        "With lambda1 = lambda2 = 0 WEISSI is 0, and its value equals a per-layer Python loop over the formula.",
        Control(
            Bounds(
                "WEISSI with lambda1 = lambda2 = 0, and against a per-layer Python loop",
                (("|WEISSI(0, 0)|", "==", 0), ("loop relative error", "<", 1e-12)),
            )
        ),
        "positive_control",
        wa.wp1,
    ),
    Claim(
        "W-D1",
        "On a BN ResNet-18 (WEISSI only on layers not followed by BN) WEISSI shows no advantage over L2/WD.",
        "Reported only (full budget), always INCONCLUSIVE: a significant win there would mean the effect does not come "
        f"from the invariance. The test: {wa.BN.text()}",
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
