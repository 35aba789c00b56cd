"""Check digits with valid and invalid values, and each recognizer on both."""

import datetime as dt

import pytest

from aimass.data.deidentify import create_recognizer
from aimass.data.deidentify.checks import (
    cn_id_check_char,
    cn_id_valid,
    iban_valid,
    luhn_valid,
    plausible_birth_date,
)


def found(name, text):
    return [text[s.start : s.end] for s in create_recognizer(name).find(text)]


def cn_id(first17):
    return first17 + cn_id_check_char(first17)


def flip_last(value):
    last = value[-1]
    return value[:-1] + ("0" if last != "0" else "1")


@pytest.mark.parametrize(
    "card", ["4111111111111111", "5500005555555559", "378282246310005", "6212345678901232"]
)
def test_luhn(card):
    assert luhn_valid(card)
    assert not luhn_valid(flip_last(card))


@pytest.mark.parametrize(
    "iban", ["GB82WEST12345698765432", "DE89370400440532013000", "FR1420041010050500013M02606"]
)
def test_iban(iban):
    assert iban_valid(iban)
    assert iban_valid(" ".join(iban[i : i + 4] for i in range(0, len(iban), 4)))
    assert not iban_valid(iban[:-1] + ("1" if iban[-1] != "1" else "2"))
    assert not iban_valid(iban + "0"), "wrong length for the country"


def test_cn_id_iso7064_check_digit():
    assert cn_id_valid("11010519491231002X")  # the GB 11643 worked example
    assert cn_id_check_char("11010519491231002") == "X"
    assert not cn_id_valid("110105194912310021")
    assert cn_id_valid("11010519491231002x"), "lower-case x is the same check character"


@pytest.mark.parametrize(
    ("first17", "reason"),
    [
        ("11010519491331002", "month 13"),
        ("11010519490230002", "30 February"),
        ("11010518991231002", "born before 1900"),
        ("99010519491231002", "no such province"),
    ],
)
def test_cn_id_refuses_implausible_numbers_even_with_a_right_check_digit(first17, reason):
    assert not cn_id_valid(cn_id(first17)), reason


def test_cn_id_refuses_future_birth_dates():
    today = dt.date(2024, 1, 1)
    assert not cn_id_valid(cn_id("11010520300101002"), today=today)
    assert plausible_birth_date(2000, 2, 29) and not plausible_birth_date(1900, 2, 29)


@pytest.mark.parametrize(
    ("name", "valid", "invalid"),
    [
        ("bank-card", "pay with 4111 1111 1111 1111 today", "pay with 4111 1111 1111 1112 today"),
        ("bank-card", "卡号6212345678901232。", "卡号6212345678901233。"),
        ("iban", "IBAN DE89 3704 0044 0532 0130 00 ok", "IBAN DE89 3704 0044 0532 0130 01 ok"),
        ("cn-resident-id", "身份证11010519491231002X号", "身份证110105194912310021号"),
        ("cn-mobile", "电话13812345678。", "电话12812345678。"),
        ("cn-mobile", "call +86 138 1234 5678", "call 1381234567"),
        ("phone", "call +1 415-555-2671 now", "call +1 415-555-26 now"),
        ("phone", "ring 020 7946 0958", "ring 020 7946"),
        ("email", "mail ann.lee@example.co.uk!", "mail ann.lee@example.c0m!"),
        ("ip-address", "from 10.0.12.7 today", "from 10.0.12.700 today"),
        ("ip-address", "host 2001:db8::8a2e:370:7334 up", "at 12:30:45 up"),
        ("url", "see https://example.org/a?b=1.", "see https://exa_mple/a."),
        ("date-of-birth", "born 1990-05-17 here", "born 1990-13-17 here"),
        ("date-of-birth", "DOB: 31/12/1985", "DOB: 31/13/1985"),
        ("date-of-birth", "born May 17, 1990", "born May 32, 1990"),
        ("date-of-birth", "出生于1990年5月17日", "出生于1990年2月30日"),
    ],
)
def test_recognizers_accept_valid_and_refuse_invalid(name, valid, invalid):
    assert len(found(name, valid)) == 1, valid
    assert found(name, invalid) == [], invalid


def test_spans_cover_exactly_the_entity():
    assert found("cn-mobile", "电话13812345678。") == ["13812345678"]
    assert found("url", "(see https://example.org/a).") == ["https://example.org/a"]
    assert found("iban", "IBAN GB82 WEST 1234 5698 7654 32 Thanks") == [
        "GB82 WEST 1234 5698 7654 32"
    ]
    assert found("cn-resident-id", "号码11010519491231002X。") == ["11010519491231002X"]


def test_birth_context_raises_the_score():
    recognizer = create_recognizer("date-of-birth")
    [plain] = recognizer.find("meeting on 1990-05-17")
    [born] = recognizer.find("she was born on 1990-05-17")
    assert born.score > plain.score >= 0.5
