"""The engine: modes, overlaps, reports, keys, the NER-model adapter, offline Presidio."""

import os
import re
import socket
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aimass.data.deidentify import (
    Deidentifier,
    ModelNerRecognizer,
    create_project_key,
    deidentify_texts,
    list_recognizers,
    load_project_key,
    scrub,
)
from aimass.data.deidentify.checks import cn_id_check_char
from aimass.errors import AlreadyExists, FailedPrecondition, InvalidArgument

PATTERNS = [n for n in list_recognizers() if n not in ("presidio-en", "lac-zh")]
KEY = bytes(range(32))


class GazetteerNer:
    """A real, tiny NER model: exact matches from a list of names (the NerModel contract)."""

    def __init__(self, names):
        self.names = names
        self.calls = 0

    def predict(self, texts):
        self.calls += 1
        out = []
        for text in texts:
            ents = []
            for name, label in self.names.items():
                for m in re.finditer(re.escape(name), text):
                    ents.append(
                        {
                            "label": label,
                            "start": m.start(),
                            "end": m.end(),
                            "text": name,
                            "score": 0.99,
                        }
                    )
            out.append({"entities": ents})
        return out


# -- generated PII for property tests ---------------------------------------------------

digits = st.text("0123456789", min_size=1, max_size=1)


@st.composite
def cn_ids(draw):
    province = draw(st.sampled_from(["11", "31", "44", "65"]))
    year = draw(st.integers(1930, 2005))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, 28))
    seq = draw(st.integers(0, 999))
    first = f"{province}0105{year}{month:02d}{day:02d}{seq:03d}"
    return first + cn_id_check_char(first)


@st.composite
def cards(draw):
    body = "4" + "".join(draw(st.lists(digits, min_size=14, max_size=14)))
    for check in "0123456789":
        from aimass.data.deidentify.checks import luhn_valid

        if luhn_valid(body + check):
            return body + check
    raise AssertionError


mobiles = st.builds(
    lambda p, rest: f"1{p}{rest:08d}",
    st.sampled_from(["38", "39", "86", "99"]),
    st.integers(0, 99_999_999),
)
emails = st.builds(
    lambda u, d: f"{u}@{d}.com",
    st.from_regex(r"[a-z]{1,8}(\.[a-z]{1,5})?", fullmatch=True),
    st.from_regex(r"[a-z]{2,10}", fullmatch=True),
)
entities = st.one_of(cn_ids(), cards(), mobiles, emails)
fillers = st.sampled_from(["联系", " call ", "，", " id: ", "。", " and ", "电话", " "])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.tuples(fillers, entities), min_size=1, max_size=4),
    mode=st.sampled_from(["mask", "redact", "pseudonymize"]),
)
def test_deidentified_text_never_contains_an_original_entity(parts, mode):
    text = "".join(f + e for f, e in parts)
    [out], report = deidentify_texts([text], mode=mode, recognizers=PATTERNS, key=KEY)
    for _filler, entity in parts:
        assert entity not in out
        assert entity not in str(report.to_dict())


def test_modes():
    text = "write to ann@example.org or ann@example.org, or bob@example.org"
    masked, _ = deidentify_texts([text], mode="mask", recognizers=["email"])
    assert masked == ["write to <EMAIL_ADDRESS> or <EMAIL_ADDRESS>, or <EMAIL_ADDRESS>"]
    redacted, _ = deidentify_texts([text], mode="redact", recognizers=["email"])
    assert redacted == ["write to or , or "]
    [pseudo], report = deidentify_texts([text], mode="pseudonymize", recognizers=["email"], key=KEY)
    tokens = re.findall(r"<EMAIL_ADDRESS_[0-9a-f]{10}>", pseudo)
    assert len(tokens) == 3 and tokens[0] == tokens[1] != tokens[2]
    assert report.key_id and report.key_id not in KEY.hex()


def test_pseudonyms_are_consistent_across_texts_and_formats_and_keyed():
    texts = [
        "电话13812345678",
        "call +86 138 1234 5678 please",
        "ANN@EXAMPLE.ORG",
        "ann@example.org",
    ]
    out, _ = deidentify_texts(texts, mode="pseudonymize", recognizers=PATTERNS, key=KEY)
    phone = re.findall(r"<PHONE_NUMBER_\w+>", out[0])
    assert phone and phone == re.findall(r"<PHONE_NUMBER_\w+>", out[1])
    assert out[2] == out[3]
    other, _ = deidentify_texts(texts, mode="pseudonymize", recognizers=PATTERNS, key=b"x" * 32)
    assert other[0] != out[0], "another project's key gives other pseudonyms"


def test_pseudonymize_without_a_key_is_a_clear_error():
    with pytest.raises(FailedPrecondition, match="aimass pii key create"):
        Deidentifier(["email"], mode="pseudonymize")


def test_bad_mode_and_recognizer_names():
    with pytest.raises(InvalidArgument, match="modes: mask, redact, pseudonymize"):
        Deidentifier(["email"], mode="hash")
    with pytest.raises(InvalidArgument, match=r"recognizers: .*email"):
        Deidentifier(["passport"])


def test_overlapping_findings_keep_the_best():
    # An 18-digit resident ID passes no Luhn here, but a card-like 16-digit tail must not split it.
    text = "id 11010519491231002X end"
    out, report = deidentify_texts([text], recognizers=PATTERNS)
    assert out == ["id <CN_RESIDENT_ID> end"]
    assert report.counts == {"CN_RESIDENT_ID": 1}


def test_report_counts_and_examples_hold_no_raw_values():
    texts = ["ann@example.org called 13812345678", "nothing here", "bob@example.org"]
    _, report = deidentify_texts(texts, recognizers=PATTERNS)
    data = report.to_dict()
    assert data["texts"] == 3 and data["texts_changed"] == 2
    assert data["counts"] == {"EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1}
    assert data["by_recognizer"]["email"] == 2
    assert "ann@example.org" not in str(data) and "<EMAIL_ADDRESS>" in data["examples"][0]


def test_project_keys(tmp_path):
    with pytest.raises(FailedPrecondition, match="pii key create --project p1"):
        load_project_key(tmp_path, "p1")
    path = create_project_key(tmp_path, "p1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(load_project_key(tmp_path, "p1")) == 32
    with pytest.raises(AlreadyExists):
        create_project_key(tmp_path, "p1")
    os.chmod(path, 0o644)
    with pytest.raises(FailedPrecondition, match="chmod 600"):
        load_project_key(tmp_path, "p1")
    with pytest.raises(InvalidArgument):
        create_project_key(tmp_path, "../escape")


def test_ner_model_adapter_maps_labels_and_batches():
    model = GazetteerNer({"张伟": "nr", "北京": "ns", "新华社": "nt", "Zhang": "PER"})
    ner = ModelNerRecognizer(model, ref="zh-ner@1", batch_size=2)
    engine = Deidentifier([ner, "cn-mobile"], mode="mask")
    out = engine.apply(
        [
            "张伟在北京的新华社工作，电话13812345678。",
            "Zhang is not written in Chinese here",
            "没有实体",
            "北京",
        ]
    )
    assert out[0] == "<PERSON>在<LOCATION>的<ORGANIZATION>工作，电话<PHONE_NUMBER>。"
    assert out[1] == "Zhang is not written in Chinese here", (
        "English text is not sent to a zh model"
    )
    assert out[3] == "<LOCATION>"
    assert model.calls == 2
    assert engine.report.recognizers[0]["model"] == "zh-ner@1"


def test_ner_model_adapter_refuses_offsets_that_do_not_match():
    class Broken:
        def predict(self, texts):
            return [
                {"entities": [{"label": "PER", "start": 0, "end": 2, "text": "xx", "score": 1}]}
                for _ in texts
            ]

    with pytest.raises(InvalidArgument, match="does not match the text"):
        Deidentifier([ModelNerRecognizer(Broken(), ref="b@1")]).apply(["张伟"])
    with pytest.raises(InvalidArgument, match="no predict"):
        ModelNerRecognizer(object(), ref="x@1")


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_english_names_places_and_orgs_offline(no_network):
    text = (
        "Barack Obama met Angela Merkel in Berlin on behalf of Microsoft; mail obama@example.com."
    )
    out = scrub(text)
    assert "Obama" not in out and "Merkel" not in out and "Berlin" not in out
    assert "<PERSON>" in out and "<LOCATION>" in out and "<EMAIL_ADDRESS>" in out
    assert "Microsoft" not in out


def test_english_ner_does_not_run_on_chinese_text():
    engine = Deidentifier(["presidio-en"])
    assert engine.apply(["张伟在北京工作。"]) == ["张伟在北京工作。"]


def test_token_lists_are_read_as_the_text_they_spell():
    from aimass.data.deidentify.engine import join_tokens

    assert join_tokens(["Call", "Ann", "."]) == ("Call Ann .", [(0, 4), (5, 8), (9, 10)])
    text, offsets = join_tokens(list("张伟说"))
    assert text == "张伟说" and offsets == [(0, 1), (1, 2), (2, 3)]
    # Word-level Chinese next to English: no space on the Chinese side.
    text, _ = join_tokens(["请", "发", "邮件", "ann@example.org", "to", "Bob"])
    assert text == "请发邮件ann@example.org to Bob"


def test_a_pseudonymized_tokens_name_gets_the_name_s_pseudonym_on_each_token():
    engine = Deidentifier(["email"], mode="pseudonymize", key=b"k" * 32)
    [text] = engine.apply(["write to ann@example.org"])
    [tokens] = engine.apply_tokens([["write", "to", "ann@example.org", "now"]])
    assert tokens[:2] == ["write", "to"] and tokens[3] == "now"
    assert tokens[2] == text.split()[-1]  # the same pseudonym as in running text
    assert engine.report.texts == 2 and engine.report.counts == {"EMAIL_ADDRESS": 2}
