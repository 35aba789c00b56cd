"""Check digits and plausibility checks that turn pattern matches into findings.

Pure functions, no regexes: a recognizer finds candidates, these decide. Each
is tested with valid and invalid check digits in ``tests/data/test_deidentify_checks.py``.
"""

from __future__ import annotations

import datetime as dt

__all__ = [
    "CN_ID_CHECK_CHARS",
    "IBAN_LENGTHS",
    "cn_id_check_char",
    "cn_id_valid",
    "iban_valid",
    "luhn_valid",
    "plausible_birth_date",
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
