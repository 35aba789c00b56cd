"""Identifiers of mainland China, Hong Kong and Taiwan that records leak besides the resident ID.

Each is validated by its check character where it has one (in
:mod:`aimass.data.deidentify.checks`). Mainland passport numbers have none, so
``cn-passport`` reports one only with a passport word (护照, 護照, passport)
within :data:`PASSPORT_CONTEXT_CHARS` characters before or after it; landlines
need a separator (``-``, a space or brackets) after the area code, so that bare
11-12 digit order numbers are not taken for phones.
"""

from __future__ import annotations

import re

from aimass.data.deidentify.checks import (
    CN_PLATE_PROVINCES,
    cn_landline_valid,
    cn_plate_valid,
    hk_id_valid,
    tw_id_valid,
    uscc_valid,
)
from aimass.data.deidentify.recognizers import PatternRecognizer, Span, register_recognizer

__all__ = [
    "PASSPORT_CONTEXT_CHARS",
    "ChinaCreditCodeRecognizer",
    "ChinaLandlineRecognizer",
    "ChinaPassportRecognizer",
    "ChinaPlateRecognizer",
    "HongKongIdRecognizer",
    "TaiwanIdRecognizer",
]

PASSPORT_CONTEXT_CHARS = 30
_PASSPORT_WORDS = re.compile(r"护照|護照|passport", re.IGNORECASE)


@register_recognizer("cn-credit-code")
class ChinaCreditCodeRecognizer(PatternRecognizer):
    """Unified Social Credit Code of a company or organisation (GB 32100-2015, mod 31)."""

    name = "cn-credit-code"
    entities = ("CN_CREDIT_CODE",)
    pattern = re.compile(
        r"(?<![0-9A-Za-z])[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}(?![0-9A-Za-z])"
    )
    # Below the resident ID (0.98): an 18-digit ID may pass the mod-31 check by chance.
    score = 0.95

    def validate(self, candidate: str) -> bool:
        return uscc_valid(candidate)


@register_recognizer("hk-id")
class HongKongIdRecognizer(PatternRecognizer):
    """Hong Kong identity card ``A123456(7)`` (mod 11, check ``0``-``9`` or ``A``)."""

    name = "hk-id"
    entities = ("HK_ID",)
    pattern = re.compile(
        r"(?<![0-9A-Za-z])[A-Z]{1,2}\d{6}(?:[(（][0-9A][)）]|[0-9A](?![0-9A-Za-z]))"
    )
    score = 0.95

    def validate(self, candidate: str) -> bool:
        return hk_id_valid(candidate)


@register_recognizer("tw-id")
class TaiwanIdRecognizer(PatternRecognizer):
    """Taiwan national ID ``A123456789`` (area letter, weighted mod-10 check digit)."""

    name = "tw-id"
    entities = ("TW_ID",)
    pattern = re.compile(r"(?<![0-9A-Za-z])[A-Z][1289]\d{8}(?![0-9A-Za-z])")
    score = 0.95

    def validate(self, candidate: str) -> bool:
        return tw_id_valid(candidate)


@register_recognizer("cn-passport")
class ChinaPassportRecognizer(PatternRecognizer):
    """Mainland passport ``E12345678`` / ``G12345678`` / ``EA1234567``, next to a passport word.

    No check digit exists, so the context word is what tells it from a product code.
    """

    name = "cn-passport"
    entities = ("PASSPORT",)
    pattern = re.compile(r"(?<![0-9A-Za-z])(?:[EG]\d{8}|E[A-HJ-NP-Z]\d{7})(?![0-9A-Za-z])")
    score = 0.9

    def find(self, text: str) -> list[Span]:
        found = []
        for match in self.pattern.finditer(text):
            start, end = match.span()
            near = text[max(0, start - PASSPORT_CONTEXT_CHARS) : end + PASSPORT_CONTEXT_CHARS]
            if _PASSPORT_WORDS.search(near):
                found.append(Span(self.entities[0], start, end, self.score, self.name))
        return found


@register_recognizer("cn-landline")
class ChinaLandlineRecognizer(PatternRecognizer):
    """Mainland landlines ``010-12345678``, ``(0571) 8888 8888``, ``0755 2345678``."""

    name = "cn-landline"
    entities = ("PHONE_NUMBER",)
    pattern = re.compile(
        r"(?<![\d+\-])(?:[(（]0\d{2,3}[)）][ -]?|0\d{2,3}[ -])\d{3,4}[ -]?\d{4}(?![\d-])"
    )
    score = 0.9

    def validate(self, candidate: str) -> bool:
        return cn_landline_valid(candidate)


@register_recognizer("cn-plate")
class ChinaPlateRecognizer(PatternRecognizer):
    """Mainland vehicle plates ``京A12345``, ``粤B·D12345`` (new energy), ``沪A 1234F``."""

    name = "cn-plate"
    entities = ("VEHICLE_PLATE",)
    pattern = re.compile(
        rf"[{CN_PLATE_PROVINCES}][A-HJ-NP-Z][ ·・-]?[0-9A-HJ-NP-Z]{{5,6}}(?![0-9A-Za-z])"
    )
    score = 0.9

    def validate(self, candidate: str) -> bool:
        return cn_plate_valid(candidate)
