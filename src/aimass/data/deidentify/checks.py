"""Check digits and plausibility checks that turn pattern matches into findings.

Pure functions, no regexes: a recognizer finds candidates, these decide. Each
is tested with valid and invalid check digits in ``tests/data/test_deidentify_checks.py``.
"""

from __future__ import annotations

import datetime as dt

__all__ = [
    "CN_ID_CHECK_CHARS",
    "CN_PLATE_PROVINCES",
    "IBAN_LENGTHS",
    "USCC_CHARS",
    "cn_id_check_char",
    "cn_id_valid",
    "cn_landline_valid",
    "cn_plate_valid",
    "hk_id_check_char",
    "hk_id_valid",
    "iban_valid",
    "luhn_valid",
    "org_code_check_char",
    "plausible_birth_date",
    "tw_id_check_digit",
    "tw_id_valid",
    "uscc_check_char",
    "uscc_valid",
]

# ISO 7064 MOD 11-2 (GB 11643-1999): weight of position i is 2^(17-i) mod 11;
# the check character is CN_ID_CHECK_CHARS[sum mod 11].
_CN_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
CN_ID_CHECK_CHARS = "10X98765432"
# First two digits: province-level division codes (GB/T 2260), incl. 71/81/82 and 91 (abroad).
# fmt: off
_CN_PROVINCES = frozenset((
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
    50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 91,
))
# fmt: on

# IBAN length per country (ISO 13616 registry, the countries that issue IBANs most often).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20,
    "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18,
    "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30,
    "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}  # fmt: skip


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check over a string of digits, as payment card numbers carry."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """ISO 13616 IBAN: known country length and ISO 7064 MOD 97-10 remainder 1."""
    iban = text.replace(" ", "").upper()
    if len(iban) < 15 or not iban.isalnum() or not iban[:2].isalpha() or not iban[2:4].isdigit():
        return False
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def cn_id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits of a resident ID."""
    total = sum(int(d) * w for d, w in zip(first17, _CN_ID_WEIGHTS, strict=True))
    return CN_ID_CHECK_CHARS[total % 11]


def plausible_birth_date(year: int, month: int, day: int, *, today: dt.date | None = None) -> bool:
    """A real calendar date between 1900-01-01 and today."""
    try:
        date = dt.date(year, month, day)
    except ValueError:
        return False
    return dt.date(1900, 1, 1) <= date <= (today or dt.date.today())


def cn_id_valid(text: str, *, today: dt.date | None = None) -> bool:
    """A mainland-China resident ID: 18 characters, province code, birth date, check character."""
    value = text.upper()
    if (
        len(value) != 18
        or not value[:17].isdigit()
        or not (value[17].isdigit() or value[17] == "X")
    ):
        return False
    if int(value[:2]) not in _CN_PROVINCES:
        return False
    year, month, day = int(value[6:10]), int(value[10:12]), int(value[12:14])
    if not plausible_birth_date(year, month, day, today=today):
        return False
    return cn_id_check_char(value[:17]) == value[17]


# -- Unified Social Credit Code (GB 32100-2015) ------------------------------------------
# 31 characters (no I, O, S, V, Z); weight of position i is 3^i mod 31; the check
# character makes the weighted sum a multiple of 31.
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))


def uscc_check_char(first17: str) -> str:
    """The mod-31 check character of the first 17 characters of a social credit code."""
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARS[(31 - total % 31) % 31]


_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def org_code_check_char(first8: str) -> str:
    """GB 11714 organisation code check: digits 0-9, letters A=10…Z=35, weights
    3 7 9 10 5 8 4 2; check 11 - sum mod 11, written ``X`` for 10 and ``0`` for 11."""
    total = sum(int(c, 36) * w for c, w in zip(first8, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def uscc_valid(text: str) -> bool:
    """An 18-character Unified Social Credit Code: registering authority (1-9, A, N, Y),
    entity type, a 6-digit division code, the embedded 9-character organisation code
    with its GB 11714 check, and the GB 32100 check character."""
    value = text.upper()
    if len(value) != 18 or any(c not in USCC_CHARS for c in value):
        return False
    if value[0] not in "123456789ANY" or not value[1].isdigit() or not value[2:8].isdigit():
        return False
    if org_code_check_char(value[8:16]) != value[16]:
        return False
    return uscc_check_char(value[:17]) == value[17]


# -- Hong Kong identity card -----------------------------------------------------------------


def hk_id_check_char(prefix: str, digits: str) -> str:
    """Mod-11 check of an HKID: letters A=10…Z=35 (a one-letter prefix gets a leading
    space worth 36), weights 9…2; 10 is written ``A``."""
    values = [36] * (2 - len(prefix)) + [ord(c) - ord("A") + 10 for c in prefix.upper()]
    values += [int(d) for d in digits]
    total = sum(v * w for v, w in zip(values, range(9, 1, -1), strict=True))
    check = (11 - total % 11) % 11
    return "A" if check == 10 else str(check)


def hk_id_valid(text: str) -> bool:
    """``A123456(7)`` / ``AB123456(A)``: one or two letters, six digits, the check in
    brackets (full-width or none also accepted)."""
    value = "".join(c for c in text.upper() if c.isalnum())
    if not 8 <= len(value) <= 9:
        return False
    prefix, digits, check = value[:-7], value[-7:-1], value[-1]
    if not (prefix.isascii() and prefix.isalpha() and digits.isdigit()):
        return False
    return hk_id_check_char(prefix, digits) == check


# -- Taiwan national identification number ------------------------------------------------
# The letter stands for a two-digit area code (A=10 … with I, O, W, X, Y, Z out of order).
_TW_LETTERS = "ABCDEFGHJKLMNPQRSTUVXYWZIO"


def tw_id_check_digit(letter: str, first8: str) -> str:
    """The check digit of a Taiwan ID: area code digits weighted 1, 9, then 8…1 on the
    eight digits; the check brings the sum to a multiple of 10."""
    area = _TW_LETTERS.index(letter.upper()) + 10
    total = area // 10 + (area % 10) * 9
    total += sum(int(d) * w for d, w in zip(first8, range(8, 0, -1), strict=True))
    return str((10 - total % 10) % 10)


def tw_id_valid(text: str) -> bool:
    """``A123456789``: an area letter, sex digit 1/2 (8/9 on resident certificates),
    eight more digits ending in the check digit."""
    value = text.upper()
    if len(value) != 10 or not ("A" <= value[0] <= "Z") or not value[1:].isdigit():
        return False
    if value[1] not in "1289":
        return False
    return tw_id_check_digit(value[0], value[1:9]) == value[9]


# -- mainland landlines and vehicle plates ------------------------------------------------


def cn_landline_valid(text: str) -> bool:
    """``010-12345678``, ``(0571) 8888 8888``: trunk 0, area code 10/2x with an 8-digit
    number or a 3-digit code (3-9xx) with a 7-8-digit number not starting 0 or 1."""
    digits = "".join(c for c in text if c.isdigit())
    if len(digits) < 10 or digits[0] != "0":
        return False
    two = (digits[1] == "1" and digits[2] == "0") or digits[1] == "2"
    code = 2 if two else 3
    if not two and digits[1] not in "3456789":
        return False
    number = digits[1 + code :]
    if two and len(number) != 8:
        return False
    return 7 <= len(number) <= 8 and number[0] not in "01"


# The province-level abbreviations that begin a mainland plate.
CN_PLATE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O: they read as 1 and 0


def cn_plate_valid(text: str) -> bool:
    """A mainland plate: province, an issuing-office letter, then five characters with at
    least three digits, or six for new-energy vehicles (``D``/``F``… then five, or five
    digits then ``D``/``F``)."""
    value = "".join(c for c in text.upper() if c.isalnum())
    if len(value) not in (7, 8) or value[0] not in CN_PLATE_PROVINCES:
        return False
    office, rest = value[1], value[2:]
    if office not in _PLATE_LETTERS or any(
        c not in _PLATE_LETTERS and not c.isdigit() for c in rest
    ):
        return False
    if len(rest) == 5:
        return sum(c.isdigit() for c in rest) >= 3
    small = (
        rest[0] in "ABCDEFGHJK"
        and rest[2:].isdigit()
        and (rest[1].isdigit() or rest[1] in _PLATE_LETTERS)
    )
    large = rest[:5].isdigit() and rest[5] in "DF"
    return small or large
