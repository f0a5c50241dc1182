"""BLEU-4, ROUGE-L and METEOR through their libraries, checked against hand-computed values."""

import pytest

pytest.importorskip("nltk")
pytest.importorskip("rouge_score")

from core import text_metrics as tm  # noqa: E402


class NoSynonyms:
    """A WordNet stand-in without synonyms: METEOR then matches exact words and Porter stems only."""

    @staticmethod
    def synsets(*args, **kwargs):
        return []


def test_bleu4_by_hand():
    # p1 = 5/6, p2 = 3/5, p3 = 2/4, p4 = 1/3, equal lengths (no brevity penalty).
    want = (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert tm.bleu4([["the cat sat on a mat"]], ["the cat sat on the mat"]) == pytest.approx(want)
    assert tm.bleu4([["a b c d e", "the cat sat on the mat"]], ["the cat sat on the mat"]) == pytest.approx(1.0)
    assert tm.bleu4([["w x y z"]], ["a b c d"]) == 0.0


def test_rouge_l_by_hand():
    # LCS = "the cat sat on mat" (5 of 6 words each side): F = 5/6; the best reference counts.
    assert tm.rouge_l([["the cat sat on a mat"]], ["the cat sat on the mat"]) == pytest.approx(5 / 6)
    assert tm.rouge_l([["x y", "the cat sat on the mat"]], ["the cat sat on the mat"]) == pytest.approx(1.0)
    # Characters (Chinese pieces decode with spaces) are kept, not dropped as non-Latin.
    assert tm.rouge_l([["北 京 在 哪 里"]], ["北 京 在 哪"]) == pytest.approx(2 * 1.0 * 0.8 / 1.8)


def test_meteor_exact_and_stem_matches():
    same = tm.meteor([["where was he born"]], ["where was he born"], NoSynonyms())
    assert same == pytest.approx(1 - 0.5 * (1 / 4) ** 3)  # one chunk of 4 matches: fragmentation penalty only
    stem = tm.meteor([["where was he born"]], ["where was he borns"], NoSynonyms())
    assert stem == pytest.approx(same)  # "borns" matches "born" by its Porter stem
    assert tm.meteor([["a b"]], ["c d"], NoSynonyms()) == 0.0


def test_wordnet_reader_names_the_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="nltk.downloader"):
        tm.wordnet_reader(tmp_path)
