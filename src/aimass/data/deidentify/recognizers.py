"""Recognizers registered by name: each finds one kind of PII and validates what it finds.

A pattern recognizer proposes candidates with a regular expression and keeps a
candidate only if its ``validate`` accepts it (check digits, calendar dates,
address syntax): a bare regex would mask every 16-digit order number as a card.
Boundaries are look-arounds, not ``\\b``, because Chinese text has no spaces
and CJK characters count as word characters.
"""

from __future__ import annotations

import ipaddress
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

from aimass.data.deidentify.checks import (
    cn_id_valid,
    iban_valid,
    luhn_valid,
    plausible_birth_date,
)
from aimass.errors import InvalidArgument

__all__ = [
    "CN_MOBILE_PREFIXES",
    "PatternRecognizer",
    "Recognizer",
    "Span",
    "create_recognizer",
    "list_recognizers",
    "register_recognizer",
]


@dataclass(frozen=True)
class Span:
    """One finding: ``text[start:end]`` is an ``entity`` (e.g. ``PERSON``), with a score."""

    entity: str
    start: int
    end: int
    score: float
    recognizer: str

    def __len__(self) -> int:
        return self.end - self.start


class Recognizer(ABC):
    """Finds one or more entity types in text.

    Attributes:
        name: Registry name (``email``, ``cn-resident-id``, ...).
        entities: Entity types it reports.
        languages: Languages it understands; ``None`` means any script. The engine
            sends a ``zh`` recognizer the Han runs of a text and an ``en`` one the
            stretches between them.
    """

    name: ClassVar[str]
    entities: ClassVar[tuple[str, ...]]
    languages: tuple[str, ...] | None = None

    @abstractmethod
    def find(self, text: str) -> list[Span]:
        """Every finding in ``text``."""

    def find_batch(self, texts: Sequence[str]) -> list[list[Span]]:
        """Findings per text; model-backed recognizers override this to batch."""
        return [self.find(t) for t in texts]

    def describe(self) -> dict[str, object]:
        """What it is, for reports."""
        return {"name": self.name, "entities": list(self.entities)}


class PatternRecognizer(Recognizer):
    """A compiled pattern proposes candidates; :meth:`validate` decides."""

    pattern: ClassVar[re.Pattern[str]]
    score: ClassVar[float] = 0.9

    def validate(self, candidate: str) -> bool:
        """Whether the matched text really is the entity (default: yes)."""
        return True

    def trim(self, match: re.Match[str]) -> tuple[int, int]:
        """The span to report for a match (default: the whole match)."""
        return match.span()

    def find(self, text: str) -> list[Span]:
        found = []
        for match in self.pattern.finditer(text):
            start, end = self.trim(match)
            if end > start and self.validate(text[start:end]):
                found.append(Span(self.entities[0], start, end, self.score, self.name))
        return found


_RECOGNIZERS: dict[str, Callable[[], Recognizer]] = {}


def register_recognizer(
    name: str, factory: Callable[[], Recognizer] | None = None, *, force: bool = False
) -> Callable[..., object]:
    """Register a recognizer factory (a class works) under ``name``; usable as a decorator."""

    def add(f: Callable[[], Recognizer]) -> Callable[[], Recognizer]:
        if name in _RECOGNIZERS and not force:
            raise InvalidArgument(f"recognizer {name!r} is registered already")
        _RECOGNIZERS[name] = f
        return f

    return add(factory) if factory is not None else add


def create_recognizer(name: str) -> Recognizer:
    """A new recognizer ``name``; the error lists the registered names."""
    _load_builtin()
    try:
        factory = _RECOGNIZERS[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown PII recognizer {name!r}; recognizers: {', '.join(sorted(_RECOGNIZERS))}",
            recognizer=name,
        ) from None
    return factory()


def list_recognizers() -> list[str]:
    """Every registered recognizer name, sorted."""
    _load_builtin()
    return sorted(_RECOGNIZERS)


def _load_builtin() -> None:
    # Importing registers them: Presidio, LAC, the Chinese identifiers.
    from aimass.data.deidentify import cn, lac, nlp  # noqa: F401


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


# -- e-mail ----------------------------------------------------------------------

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@register_recognizer("email")
class EmailRecognizer(PatternRecognizer):
    """RFC 5321 sizes, dot-atom local part, a domain of valid labels and an alphabetic TLD.

    No public-suffix lookup: Presidio's e-mail recognizer calls ``tldextract``,
    which fetches the suffix list over the network.
    """

    name = "email"
    entities = ("EMAIL_ADDRESS",)
    pattern = re.compile(
        r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
        r"@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
    )
    score = 0.95

    def validate(self, candidate: str) -> bool:
        local, _, domain = candidate.rpartition("@")
        labels = domain.split(".")
        return (
            0 < len(local) <= 64
            and len(candidate) <= 254
            and len(labels) >= 2
            and all(_LABEL.match(label) for label in labels)
            and labels[-1].isalpha()
            and 2 <= len(labels[-1]) <= 24
        )


# -- phone numbers ---------------------------------------------------------------------

# fmt: off
CN_MOBILE_PREFIXES = frozenset((
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 145, 147, 149, 150, 151, 152, 153, 155,
    156, 157, 158, 159, 162, 165, 166, 167, 170, 171, 172, 173, 175, 176, 177, 178, 180, 181,
    182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193, 195, 196, 197, 198, 199,
))
# fmt: on


@register_recognizer("cn-mobile")
class ChinaMobileRecognizer(PatternRecognizer):
    """Mainland-China mobile numbers: 11 digits with an allocated 13x-19x prefix (+86 optional)."""

    name = "cn-mobile"
    entities = ("PHONE_NUMBER",)
    pattern = re.compile(r"(?<![\d+])(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)")
    score = 0.9

    def validate(self, candidate: str) -> bool:
        digits = _digits(candidate)
        national = digits[2:] if len(digits) == 13 and digits.startswith("86") else digits
        return len(national) == 11 and int(national[:3]) in CN_MOBILE_PREFIXES


@register_recognizer("phone")
class PhoneRecognizer(Recognizer):
    """International (``+CC ...``) and national numbers of common regions, validated
    against Google's libphonenumber metadata (number length and allocated ranges).

    Args:
        regions: Regions whose national formats (without ``+``) are recognised.
    """

    name = "phone"
    entities = ("PHONE_NUMBER",)

    def __init__(self, regions: Iterable[str] = ("US", "GB", "CN", "DE", "FR", "IN")) -> None:
        self.regions = tuple(regions)
        try:
            import phonenumbers
        except ImportError as exc:  # pragma: no cover - depends on the install
            from aimass.errors import MissingExtra

            raise MissingExtra(
                "the phone recognizer needs phonenumbers: pip install 'aimass[privacy]'"
            ) from exc
        self._pn = phonenumbers

    def find(self, text: str) -> list[Span]:
        pn = self._pn
        found: dict[tuple[int, int], Span] = {}
        for region in self.regions:
            for match in pn.PhoneNumberMatcher(text, region, leniency=pn.Leniency.VALID):
                key = (match.start, match.end)
                found.setdefault(key, Span("PHONE_NUMBER", *key, 0.85, self.name))
        return list(found.values())


# -- identity and payment numbers ----------------------------------------------------


@register_recognizer("cn-resident-id")
class ChinaResidentIdRecognizer(PatternRecognizer):
    """18-character resident ID: province code, a real birth date and the MOD 11-2 check."""

    name = "cn-resident-id"
    entities = ("CN_RESIDENT_ID",)
    pattern = re.compile(r"(?<![0-9A-Za-z])[1-9]\d{16}[\dXx](?![0-9A-Za-z])")
    score = 0.98

    def validate(self, candidate: str) -> bool:
        return cn_id_valid(candidate)


@register_recognizer("bank-card")
class BankCardRecognizer(PatternRecognizer):
    """13-19 digit card numbers (spaces or dashes allowed) passing the Luhn check."""

    name = "bank-card"
    entities = ("BANK_CARD",)
    pattern = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
    score = 0.9

    def validate(self, candidate: str) -> bool:
        digits = _digits(candidate)
        # Issuer prefixes start 2-6 (Mastercard 2-series, Amex 3, Visa 4, MC 5, UnionPay/
        # Discover 6); one repeated digit is a placeholder, not a card.
        return digits[0] in "23456" and len(set(digits)) > 1 and luhn_valid(digits)


@register_recognizer("iban")
class IbanRecognizer(PatternRecognizer):
    """IBANs with the country's registered length and the MOD 97 check."""

    name = "iban"
    entities = ("IBAN_CODE",)
    pattern = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
    score = 0.95

    def trim(self, match: re.Match[str]) -> tuple[int, int]:
        start, end = match.span()
        # A greedy match may swallow the next word: shorten to the registered length.
        from aimass.data.deidentify.checks import IBAN_LENGTHS

        want = IBAN_LENGTHS.get(match.group()[:2])
        if want is None:
            return start, end
        count, pos = 0, start
        text = match.string
        while pos < end and count < want:
            count += text[pos] != " "
            pos += 1
        return start, pos

    def validate(self, candidate: str) -> bool:
        return iban_valid(candidate)


# -- network -------------------------------------------------------------------------------


@register_recognizer("ip-address")
class IpAddressRecognizer(Recognizer):
    """IPv4 and IPv6 addresses, parsed by :mod:`ipaddress` (no 999.1.1.1, no '12:30')."""

    name = "ip-address"
    entities = ("IP_ADDRESS",)
    _v4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.]|\.\d)")
    _v6 = re.compile(
        r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f.]{0,15}(?![0-9A-Fa-f:])"
    )

    def find(self, text: str) -> list[Span]:
        found = []
        for pattern, parse in (
            (self._v4, ipaddress.IPv4Address),
            (self._v6, ipaddress.IPv6Address),
        ):
            for match in pattern.finditer(text):
                candidate = match.group()
                if candidate.count(":") < 2 and parse is ipaddress.IPv6Address:
                    continue
                try:
                    parse(candidate)
                except ValueError:
                    continue
                found.append(Span("IP_ADDRESS", *match.span(), 0.9, self.name))
        return found


@register_recognizer("url")
class UrlRecognizer(PatternRecognizer):
    """``http(s)``/``ftp`` URLs and ``www.`` hosts with a valid host name."""

    name = "url"
    entities = ("URL",)
    pattern = re.compile(r"(?:\b(?:https?|ftp)://|(?<![\w.])www\.)[^\s<>\"'，。、；）》]+", re.I)
    score = 0.85

    def trim(self, match: re.Match[str]) -> tuple[int, int]:
        start, end = match.span()
        while end > start and match.string[end - 1] in ".,;:!?)]}'\"":
            end -= 1
        return start, end

    def validate(self, candidate: str) -> bool:
        url = candidate if "://" in candidate else f"http://{candidate}"
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            return False
        labels = host.split(".")
        try:
            ipaddress.ip_address(host)
            return True
        except ValueError:
            pass
        return len(labels) >= 2 and all(_LABEL.match(x) for x in labels) and labels[-1].isalpha()


# -- dates of birth -----------------------------------------------------------------------

_MONTHS = {
    name: i + 1
    for i, names in enumerate(
        [
            ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"),
            ("may",), ("june", "jun"), ("july", "jul"), ("august", "aug"),
            ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for name in names
}  # fmt: skip
_MONTH = r"(?P<mon>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_BIRTH_CONTEXT = re.compile(
    r"(born|birth|\bdob\b|d\.o\.b|date of birth|birthday|出生|生日|生于)", re.IGNORECASE
)


@register_recognizer("date-of-birth")
class DateOfBirthRecognizer(Recognizer):
    """Full dates (day, month, year) that could be a birth date, in common formats.

    ``1990-05-17``, ``17/05/1990``, ``05/17/1990``, ``17.05.1990``,
    ``May 17, 1990``, ``17 May 1990``, ``1990年5月17日``. A real calendar date
    between 1900 and today; every such date is reported (any full date next to a
    person may be one), with a higher score when a birth keyword precedes it.
    """

    name = "date-of-birth"
    entities = ("DATE_OF_BIRTH",)
    _d = r"(?P<d>[0-3]?\d)"
    _m = r"(?P<m>[01]?\d)"
    _y = r"(?P<y>(?:19|20)\d{2})"
    _patterns = (
        re.compile(rf"(?<!\d){_y}[-/.]{_m}[-/.]{_d}(?!\d)"),
        re.compile(rf"(?<!\d)(?P<a>[0-3]?\d)[/.-](?P<b>[0-3]?\d)[/.-]{_y}(?!\d)"),
        re.compile(rf"(?<![A-Za-z]){_MONTH}\s+{_d}(?:st|nd|rd|th)?,?\s+{_y}(?!\d)", re.I),
        re.compile(rf"(?<!\d){_d}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+{_y}(?!\d)", re.I),
        re.compile(rf"{_y}\s*年\s*{_m}\s*月\s*{_d}\s*[日号]"),
    )

    def _valid(self, match: re.Match[str]) -> bool:
        groups = match.groupdict()
        year = int(groups["y"])
        if groups.get("a") is not None:
            a, b = int(groups["a"]), int(groups["b"])
            # 05/06/1990 is ambiguous (day/month or month/day): a date either way counts.
            return plausible_birth_date(year, b, a) or plausible_birth_date(year, a, b)
        month = _MONTHS[groups["mon"].lower()] if groups.get("mon") else int(groups["m"])
        return plausible_birth_date(year, month, int(groups["d"]))

    def find(self, text: str) -> list[Span]:
        found: dict[tuple[int, int], Span] = {}
        for pattern in self._patterns:
            for match in pattern.finditer(text):
                if not self._valid(match):
                    continue
                context = text[max(0, match.start() - 40) : match.start()]
                score = 0.95 if _BIRTH_CONTEXT.search(context) else 0.6
                found.setdefault(
                    match.span(), Span("DATE_OF_BIRTH", *match.span(), score, self.name)
                )
        return list(found.values())
