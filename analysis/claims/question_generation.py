"""The claims of study `question_generation` with their pre-registered rules, the article and the figures.

Each claim names its check in `analysis/question_generation.py`; `studies/question_generation.py` hands these to the runner,
and `python -m analysis` reads them from here without importing the study (torch, Ray).
"""

from analysis import question_generation as qa
from analysis.figures import question_generation as qaf
from analysis.verdict import Claim, StudyClaims

ARTICLE = "学会提问的BERT：端到端地从篇章中构建问答对 (a BERT that learns to ask) https://kexue.fm/archives/7630"

CLAIMS = (
    Claim(
        "Q1",
        "A BERT + UniLM seq2seq model produces valid QA pairs end to end, with no rule-based answer picking.",
        "Oracle validity (local) of the AQ models under Su's decoding (sampled answer, greedy question): SUPPORTED if "
        "the lower end of the 95% hierarchical bootstrap CI (test passages nested in seeds) is >= 0.60; REFUTED if "
        "the upper end is < 0.60; else INCONCLUSIVE. At smoke reported only.",
        "empirical",
        qa.check_q1,
        "pareto",
    ),
    Claim(
        "Q2",
        "Generating the answer first and then the question (AQ) works better than question first (QA).",
        "Delta = validity(AQ) - validity(QA) under Su's decoding, paired by test passage within seed, hierarchical "
        "bootstrap: SUPPORTED if Delta >= +0.02 and the 95% CI excludes 0 (Holm across Q2-Q4); REFUTED if the CI's "
        "upper end is < +0.02; else INCONCLUSIVE. Diagnostic: teacher-forced joint NLL per target token of the gold "
        "pair, AQ vs QA. At smoke reported only.",
        "empirical",
        qa.check_q2,
        "order_effect",
    ),
    Claim(
        "Q3",
        "A sampled answer with a greedy question is more reliable than sampling both and more diverse than greedy both.",
        "AQ models: SUPPORTED if validity(Su) >= validity(sample_both) + 0.02 and coverage(Su) >= coverage(greedy_both) "
        "+ 0.10, both paired differences with 95% CIs excluding 0 (Holm across Q2-Q4); REFUTED if validity(Su) is "
        "significantly below sample_both's or coverage(Su) significantly below greedy_both's; else INCONCLUSIVE. At "
        "smoke reported only.",
        "empirical",
        qa.check_q3,
        "pareto",
    ),
    Claim(
        "Q4",
        "Unconstrained answers are sometimes not passage spans, and a span constraint helps.",
        "AQ models under Su's decoding: SUPPORTED if the span rate's 95% CI upper end is < 0.95 and constraining "
        "answers to passage spans raises validity (paired CI excludes 0, Holm across Q2-Q4); REFUTED if the span "
        "rate's CI lower end is >= 0.95 or the constraint significantly lowers validity; else INCONCLUSIVE. Needs "
        "the span-constrained decoding (local, full).",
        "empirical",
        qa.check_q4,
        "span_constraint",
    ),
    Claim(
        "Q5",
        "The quality depends on BERT's pre-trained weights.",
        "Round-trip EM(pretrained) - EM(random init) >= 10 points with the CI excluding 0: SUPPORTED; REFUTED if the "
        "CI's upper end is < 10 points. Full budget only; INCONCLUSIVE (not_run_at_budget) otherwise.",
        "empirical",
        qa.check_q5,
        "pretraining",
    ),
    Claim(
        "Q-C1",
        "A fully bidirectional target mask is a valid seq2seq model.",
        "Must FAIL: in float64 some target output depends on a later target input (d logit_t / d e_t' != 0, t' > t) "
        "while the UniLM mask gives exactly 0; from local on also its teacher-forced target NLL is below the UniLM AQ "
        "model's and its sampled validity is <= 0.5 x the UniLM model's (it copies the visible next token and "
        "generates garbage). Otherwise the leak test or the oracle is blind and the study is INVALID.",
        "negative_control",
        qa.check_qc1,
        "controls",
    ),
    Claim(
        "Q-C2",
        "The UniLM mask needs no key-padding term.",
        "Must FAIL: without the key-padding term some real output depends on a padded input (float64 gradient > "
        "1e-12), while the UniLM mask with it gives exactly 0.",
        "negative_control",
        qa.check_qc2,
        "controls",
    ),
)

_FIGS = (qaf.fig_pareto, qaf.fig_order_effect, qaf.fig_training, qaf.fig_controls, qaf.fig_span_constraint, qaf.fig_diversity,
         qaf.fig_pretraining)  # fmt: skip
FIGURES = (*map(qa.one_language, _FIGS), *(qa.for_language(fig, data) for data in qa.REAL_QA for fig in _FIGS))

CLAIMED = StudyClaims("question_generation", ARTICLE, CLAIMS, FIGURES)
