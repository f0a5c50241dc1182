"""Answer-aware question generation scores (spec 02, section 5.3): BLEU-4, METEOR and ROUGE-L of generated
questions against the gold questions for the same answer, by the libraries that define them (full budget only).

- `bleu4`: corpus BLEU-4 (nltk's `corpus_bleu`, uniform weights, no smoothing), several references per question.
- `rouge_l`: ROUGE-L F-measure (Google's `rouge-score`), the best over the references, averaged.
- `meteor`: METEOR (nltk's `meteor_score`: exact, Porter-stem and WordNet-synonym matches), averaged. It needs
  WordNet in nltk's layout (`wordnet_reader`); English only.

Texts are word pieces decoded with spaces between words (`core.data.squad.WordPiece.decode`), so they are split on
whitespace: words in English, characters in Chinese. These are the usual QG metrics, but published numbers (Du
et al., UniLM) come from the coco-caption scripts, whose METEOR (the Java 1.5 jar) and ROUGE-L (beta 1.2) differ
in detail; they are sanity checks of the p(q | p, a) half, not claims.
"""

from pathlib import Path


def bleu4(references: list[list[str]], hypotheses: list[str]) -> float:
    """Corpus BLEU-4 of `hypotheses[i]` against `references[i]` (one or more strings)."""
    from nltk.translate.bleu_score import corpus_bleu

    return float(corpus_bleu([[r.split() for r in refs] for refs in references], [h.split() for h in hypotheses]))


class _Whitespace:
    """rouge-score's tokenizer interface over whitespace (its default drops every non-Latin character)."""

    @staticmethod
    def tokenize(text: str) -> list[str]:
        return text.lower().split()


def rouge_l(references: list[list[str]], hypotheses: list[str]) -> float:
    """Mean over questions of the best ROUGE-L F-measure against any of its references."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Whitespace())
    scores = [max(scorer.score(r, h)["rougeL"].fmeasure for r in refs) for refs, h in zip(references, hypotheses, strict=True)]
    return sum(scores) / len(scores)


def meteor(references: list[list[str]], hypotheses: list[str], wordnet) -> float:
    """Mean sentence METEOR (nltk) with the given WordNet reader (`wordnet_reader`)."""
    from nltk.translate.meteor_score import meteor_score

    scores = [
        meteor_score([r.split() for r in refs], h.split(), wordnet=wordnet)
        for refs, h in zip(references, hypotheses, strict=True)
    ]
    return sum(scores) / len(scores)


def wordnet_reader(root: Path):
    """nltk's WordNet reader over `root/corpora/wordnet` (put there by `python -m nltk.downloader -d root wordnet`)."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    folder = Path(root) / "corpora" / "wordnet"
    if not (folder / "lexnames").exists():
        raise FileNotFoundError(f"{folder / 'lexnames'} is missing: run python -m nltk.downloader -d {root} wordnet")
    return WordNetCorpusReader(str(folder), None)
