"""Output policies cut every kind of prediction as documented (aimass.serving.policy)."""

from __future__ import annotations

import pytest

from aimass.errors import InvalidArgument, PermissionDenied
from aimass.serving.policy import parse_policy

CLASSIFIED = {
    "label": "pos",
    "score": 0.912345,
    "probabilities": {"neg": 0.087655, "pos": 0.912345},
}


def test_parse_gives_a_canonical_string():
    assert str(parse_policy(" Round=2 , top_k=1")) == "top_k=1,round=2"
    assert str(parse_policy("labels,round=1")) == "labels,round=1"
    for full in (None, "", "full", "none"):
        assert parse_policy(full).is_full


@pytest.mark.parametrize(
    "text", ["top_k=0", "round=11", "round=-1", "top_k=x", "scores", "labels,top_k=1"]
)
def test_bad_policies_are_refused(text):
    with pytest.raises(InvalidArgument):
        parse_policy(text)


def test_classification():
    assert parse_policy("labels").apply([CLASSIFIED]) == [{"label": "pos"}]
    assert parse_policy("top_k=1,round=2").apply([CLASSIFIED]) == [
        {"label": "pos", "score": 0.91, "probabilities": {"pos": 0.91}}
    ]
    assert CLASSIFIED["score"] == 0.912345, "the input is not changed"


def test_regression_is_rounded_or_refused():
    assert parse_policy("round=1").apply([{"value": 3.14159}]) == [{"value": 3.1}]
    assert parse_policy("labels,round=0").apply([{"value": 3.6}]) == [{"value": 4.0}]
    parse_policy("labels,round=1").check_task("regression", "k1")
    with pytest.raises(PermissionDenied, match="round=D"):
        parse_policy("labels").check_task("regression", "k1")
    with pytest.raises(PermissionDenied):
        parse_policy("top_k=2").check_task("regression", "k1")
    parse_policy("labels").check_task("classification", "k1")


def test_entities_and_masks():
    ner = {"entities": [{"label": "PER", "start": 0, "end": 3, "text": "Ann", "score": 0.97777}]}
    assert parse_policy("labels").apply([ner])[0]["entities"][0] == {
        "label": "PER",
        "start": 0,
        "end": 3,
        "text": "Ann",
    }
    assert parse_policy("round=2").apply([ner])[0]["entities"][0]["score"] == 0.98
    masks = {
        "masks": [
            {"start": 4, "candidates": [{"token": "a", "score": 0.6}, {"token": "b", "score": 0.3}]}
        ]
    }
    assert parse_policy("labels").apply([masks])[0]["masks"][0]["candidates"] == [{"token": "a"}]
    assert len(parse_policy("top_k=1").apply([masks])[0]["masks"][0]["candidates"]) == 1


def test_labels_refuses_explanations_naming_the_policy():
    with pytest.raises(PermissionDenied, match="'labels'"):
        parse_policy("labels").check_explain("k1")
    parse_policy("top_k=1").check_explain("k1")
