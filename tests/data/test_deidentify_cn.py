"""Chinese identifiers: check characters against slow, obvious oracles, and each recognizer."""

import pytest

from aimass.data.deidentify import create_recognizer, deidentify_texts
from aimass.data.deidentify.checks import (
    cn_landline_valid,
    cn_plate_valid,
    hk_id_check_char,
    hk_id_valid,
    tw_id_check_digit,
    tw_id_valid,
    uscc_check_char,
    uscc_valid,
)


def found(name, text):
    return [text[s.start : s.end] for s in create_recognizer(name).find(text)]


# -- oracles, written from the standards' tables, not from checks.py -------------------------

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100-2015 table: no I O S V Z
USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def uscc_oracle(first17):
    total = 0
    for ch, weight in zip(first17, USCC_WEIGHTS, strict=True):
        total += USCC_ALPHABET.index(ch) * weight
    check = 31 - total % 31
    return USCC_ALPHABET[0 if check == 31 else check]


def org_oracle(first8):
    """GB 11714: 0-9 then A=10 … Z=35, weights 3 7 9 10 5 8 4 2, 11 - sum mod 11."""
    values = {**{str(d): d for d in range(10)}, **{chr(65 + i): 10 + i for i in range(26)}}
    total = sum(values[c] * w for c, w in zip(first8, [3, 7, 9, 10, 5, 8, 4, 2], strict=True))
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def uscc_body(head8, org8):
    return head8 + org8 + org_oracle(org8)


def hk_oracle(prefix, digits):
    letters = {chr(ord("A") + i): 10 + i for i in range(26)}
    values = ([36] if len(prefix) == 1 else []) + [letters[c] for c in prefix]
    values += [int(d) for d in digits]
    weights = [9, 8, 7, 6, 5, 4, 3, 2]
    remainder = sum(v * w for v, w in zip(values, weights, strict=True)) % 11
    if remainder == 0:
        return "0"
    return "A" if 11 - remainder == 10 else str(11 - remainder)


TW_AREA = dict(zip("ABCDEFGHJKLMNPQRSTUVXYWZIO", range(10, 36), strict=True))


def tw_oracle(letter, first8):
    area = TW_AREA[letter]
    weights = [1, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    values = [area // 10, area % 10] + [int(d) for d in first8]
    total = sum(v * w for v, w in zip(values, weights, strict=True))
    return str((10 - total % 10) % 10)


def wrong(value, alphabet="0123456789"):
    return next(c for c in alphabet if c != value)


# -- Unified Social Credit Code ------------------------------------------------------------


@pytest.mark.parametrize(
    "first17",
    [
        "91350100M000100Y4",  # the standard's published example
        uscc_body("91110108", "55138508"),
        uscc_body("12100000", "40000076"),
        uscc_body("52440300", "MJL13924"),
        uscc_body("Y1310115", "0000000X"),
    ],
)
def test_uscc_check_char(first17):
    code = first17 + uscc_oracle(first17)
    assert uscc_check_char(first17) == code[-1]
    assert uscc_valid(code) and uscc_valid(code.lower())
    assert not uscc_valid(first17 + wrong(code[-1], USCC_ALPHABET))


def test_uscc_needs_the_embedded_organisation_code_check():
    first17 = uscc_body("91110108", "55138508")
    bad17 = first17[:-1] + wrong(first17[-1], "0123456789X")
    assert not uscc_valid(bad17 + uscc_oracle(bad17)), "right mod-31 check, wrong GB 11714 check"


def test_uscc_refuses_bad_structure():
    assert uscc_valid("91350100M000100Y43")  # the standard's published example
    assert not uscc_valid("91350100M000100Y4")  # 17 characters
    assert not uscc_valid("9135010OM000100Y43")  # O is not in the alphabet
    body = "Z1350100M000100Y4"  # Z is no registering authority
    assert not uscc_valid(body + uscc_oracle(body.replace("Z", "Y")))


# -- Hong Kong identity card -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "digits"),
    [("A", "123456"), ("G", "987650"), ("XA", "000001"), ("C", "668668"), ("Z", "683365")],
)
def test_hk_id_check_char(prefix, digits):
    check = hk_oracle(prefix, digits)
    assert hk_id_check_char(prefix, digits) == check
    for written in (
        f"{prefix}{digits}({check})",
        f"{prefix}{digits}（{check}）",
        prefix + digits + check,
    ):
        assert hk_id_valid(written), written
    assert not hk_id_valid(f"{prefix}{digits}({wrong(check, '0123456789A')})")


def test_hk_id_known_example_and_shape():
    assert hk_id_valid("A123456(3)")
    assert not hk_id_valid("A12345(3)") and not hk_id_valid("1123456(3)")


# -- Taiwan ID ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first9", ["A12345678", "F22222222", "Z10000000", "O29999999", "W18765432"]
)
def test_tw_id_check_digit(first9):
    check = tw_oracle(first9[0], first9[1:])
    assert tw_id_check_digit(first9[0], first9[1:]) == check
    assert tw_id_valid(first9 + check)
    assert not tw_id_valid(first9 + wrong(check))


def test_tw_id_known_example_and_shape():
    assert tw_id_valid("A123456789")
    assert not tw_id_valid("A323456789"), "the sex digit is 1 or 2 (8/9 for residents)"
    assert not tw_id_valid("1123456789")


# -- landlines and plates -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("valid", "invalid"),
    [
        ("010-62345678", "010-12345678"),  # numbers never start with 1
        ("(021) 6234 5678", "(021) 623 4567"),  # 2-digit codes take 8 digits
        ("0571-8888888", "0171-8888888"),  # 3-digit codes start 3-9
        ("0755 23456789", "0755 0345678"),
    ],
)
def test_landline(valid, invalid):
    assert cn_landline_valid(valid) and not cn_landline_valid(invalid)


@pytest.mark.parametrize(
    ("valid", "invalid"),
    [
        ("京A12345", "京I12345"),  # no I or O
        ("粤B·D12345", "粤B·X12345"),  # small new-energy: D/F… then digits
        ("沪A12345F", "沪A12345X"),  # large new-energy: five digits then D/F
        ("川AB1234", "川ABCDE1"),  # at least three digits
        ("苏E5F678", "港A12345"),  # 港 is not a province abbreviation
    ],
)
def test_plate(valid, invalid):
    assert cn_plate_valid(valid) and not cn_plate_valid(invalid)


# -- recognizers in text ----------------------------------------------------------------------


def _uscc():
    first17 = uscc_body("91110108", "55138508")
    return first17 + uscc_oracle(first17)


@pytest.mark.parametrize(
    ("name", "valid", "invalid"),
    [
        ("cn-credit-code", f"统一社会信用代码{_uscc()}。", f"统一社会信用代码{_uscc()[:-1]}0。"),
        ("hk-id", "身份證 A123456(3) 已核對", "身份證 A123456(4) 已核對"),
        ("tw-id", "身分證字號A123456789，", "身分證字號A123456788，"),
        ("cn-passport", "护照号码E12345678，", "订单号E12345678，"),
        ("cn-passport", "passport no. EA1234567", "part EA1234567"),
        ("cn-landline", "座机：010-62345678。", "订单01062345678。"),
        ("cn-landline", "tel (0571) 8888 8888", "tel (0171) 8888 8888"),
        ("cn-plate", "车牌号京A12345，", "车牌号京A1234，"),
        ("cn-plate", "plate 粤B·D12345 parked", "plate 粤B·X12345 parked"),
    ],
)
def test_recognizers_accept_valid_and_refuse_invalid(name, valid, invalid):
    assert len(found(name, valid)) == 1, valid
    assert found(name, invalid) == [], invalid


def test_spans_cover_exactly_the_identifier():
    assert found("hk-id", "证件A123456(3)号") == ["A123456(3)"]
    assert found("cn-plate", "停在沪A12345F旁") == ["沪A12345F"]
    assert found("cn-landline", "电话（010）62345678转") == ["（010）62345678"]


def test_the_identifiers_are_removed_by_default_and_look_alikes_kept():
    text = f"公司{_uscc()}，联系人证件A123456(3)，台胞证A123456789，护照G12345678，座机020-82345678，车牌浙A12345。"
    look_alikes = (
        f"订单{_uscc()[:-1]}0，编号A123456(4)，A123456788，G12345678，020-12345678，浙A1234。"
    )
    [out, kept], report = deidentify_texts(
        [text, look_alikes],
        recognizers=["cn-credit-code", "hk-id", "tw-id", "cn-passport", "cn-landline", "cn-plate"],
    )
    for secret in [_uscc(), "A123456(3)", "A123456789", "G12345678", "82345678", "浙A12345"]:
        assert secret not in out, secret
    assert kept == look_alikes
    assert report.counts == {
        "CN_CREDIT_CODE": 1,
        "HK_ID": 1,
        "TW_ID": 1,
        "PASSPORT": 1,
        "PHONE_NUMBER": 1,
        "VEHICLE_PLATE": 1,
    }
