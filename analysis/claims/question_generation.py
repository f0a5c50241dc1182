"""The claims of study `question_generation` with their pre-registered rules, the article and the figures.

Each claim names its check in `analysis/question_generation.py`; `studies/question_generation.py` hands these to the runner,
and `python -m analysis` reads them from here without importing the study (torch, Ray). Q1, Q2, Q5 and Q-C2 are
decided by rule objects held in that module (its checks call them, per language); Q3, Q4 and Q-C1 are composite
text rules whose thresholds are that module's constants.
"""

from analysis import question_generation as qa
from analysis.figures import question_generation as qaf
from analysis.stats import ALPHA
from analysis.verdict import Claim, StudyClaims

ARTICLE = "学会提问的BERT：端到端地从篇章中构建问答对 (a BERT that learns to ask) https://kexue.fm/archives/7630"

_PAIRED = (
    f"paired by test passage within seed (95% hierarchical bootstrap interval, two-sided bootstrap p Holm-adjusted across "
    f"the four tests of Q2-Q4, a test without {qa.MIN_SEEDS} seeds counting as p = 1), at least {qa.MIN_SEEDS} seeds per "
    "compared arm"
)

CLAIMS = (
    Claim(
        "Q1",
        "A BERT + UniLM seq2seq model produces valid QA pairs end to end, with no rule-based answer picking.",
        qa.Q1,
        "empirical",
        qa.check_q1,
        "pareto",
        decides_from="local",
    ),
    Claim(
        "Q2",
        "Generating the answer first and then the question (AQ) works better than question first (QA).",
        qa.Q2,
        "empirical",
        qa.check_q2,
        "order_effect",
        decides_from="local",
    ),
    Claim(
        "Q3",
        "A sampled answer with a greedy question is more reliable than sampling both and more diverse than greedy both.",
        f"AQ models, differences {_PAIRED}: SUPPORTED if validity(Su) - validity(sample_both) >= {qa.VALIDITY_GAIN:g} and "
        f"coverage(Su) - coverage(beam_both) >= {qa.COVERAGE_GAIN:g} (greedy_both below full), each with its interval above "
        f"0 and Holm p < {ALPHA:g}; REFUTED if either difference is significantly below 0 (interval below 0, Holm p < "
        f"{ALPHA:g}); else INCONCLUSIVE.",
        "empirical",
        qa.check_q3,
        "pareto",
        decides_from="local",
    ),
    Claim(
        "Q4",
        "Unconstrained answers are sometimes not passage spans, and a span constraint helps.",
        f"AQ models under Su's decoding, {_PAIRED}: SUPPORTED if the span rate's 95% hierarchical bootstrap interval ends "
        f"below {qa.SPAN_RATE:g} and constraining answers to passage spans raises validity (interval above 0, Holm p < "
        f"{ALPHA:g}); REFUTED if the span rate's interval starts at or above {qa.SPAN_RATE:g} or the constraint "
        "significantly lowers validity; else INCONCLUSIVE. Needs the span-constrained decoding (local, full).",
        "empirical",
        qa.check_q4,
        "span_constraint",
        decides_from="local",
    ),
    Claim(
        "Q5",
        "The quality depends on BERT's pre-trained weights.",
        qa.Q5,
        "empirical",
        qa.check_q5,
        "pretraining",
        decides_from="full",
    ),
    Claim(
        "Q-C1",
        "A fully bidirectional target mask is a valid seq2seq model.",
        f"Must FAIL: in float64 some target output depends on a later target input (d logit_t / d e_t' > {qa.LEAK_TOL:g}, "
        f"t' > t) while the UniLM mask gives <= {qa.LEAK_TOL:g}; from local on also its validation teacher-forced target "
        "NLL at its own training step (seed 0) is below the UniLM AQ seed-0 model's and its sampled validity is <= "
        f"{qa.GARBAGE:g} x the UniLM model's (it copies the visible next token and generates garbage). Otherwise the leak "
        "test or the oracle is blind and the study is INVALID.",
        "negative_control",
        qa.check_qc1,
        "controls",
    ),
    Claim(
        "Q-C2",
        "The UniLM mask needs no key-padding term.",
        qa.QC2,
        "negative_control",
        qa.check_qc2,
        "controls",
    ),
)

_FIGS = (qaf.fig_pareto, qaf.fig_order_effect, qaf.fig_training, qaf.fig_controls, qaf.fig_span_constraint, qaf.fig_diversity,
         qaf.fig_pretraining)  # fmt: skip
FIGURES = (*map(qaf.one_language, _FIGS), *(qaf.for_language(fig, data) for data in qa.REAL_QA for fig in _FIGS))

CLAIMED = StudyClaims("question_generation", ARTICLE, CLAIMS, FIGURES)
