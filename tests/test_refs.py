"""Names are slugs before they touch a path or a query; references parse strictly."""

import pytest

from aimass.errors import ErrorCode, InvalidName
from aimass.refs import Ref, parse_ref, validate_name

BAD_NAMES = [
    "",
    "..",
    "../etc",
    "a/b",
    "a\\b",
    "A",
    "-lead",
    ".hidden",
    "a..b",
    "x" * 64,
    "a\x00b",
    "émile",
    "a b",
    "%2e%2e",
    "a@b",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_names_are_refused_with_the_fix(name):
    with pytest.raises(InvalidName) as info:
        validate_name(name, kind="dataset")
    assert info.value.code == ErrorCode.INVALID_ARGUMENT
    assert "dataset name" in info.value.message
    assert "lower-case" in info.value.message


@pytest.mark.parametrize("name", ["a", "churn-model", "v1.2_final", "0abc", "x" * 63])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("m", Ref("m", alias="latest")),
        ("m@3", Ref("m", version=3)),
        ("m@production", Ref("m", alias="production")),
        ("m@latest", Ref("m", alias="latest")),
    ],
)
def test_parse_ref(text, expected):
    assert parse_ref(text) == expected


@pytest.mark.parametrize("text", ["m@0", "m@", "m@../x", "@3", "m@Prod", "../m@1"])
def test_bad_refs(text):
    with pytest.raises(InvalidName):
        parse_ref(text)
