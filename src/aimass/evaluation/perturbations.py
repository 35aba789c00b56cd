"""Text perturbations for robustness checks, registered by name.

Each perturbation changes texts the way real inputs differ from clean test
data, at stated *strengths* (the meaning of a strength is part of each
perturbation's description). Every change is seeded per text — by the report
seed, the perturbation, the strength and the row's position in the sample —
so a report is reproducible.

* ``typos``: a fraction of the Latin-script words (2+ letters) get one
  character edit — swap two neighbours, delete, insert or substitute a
  keyboard neighbour (the offline edits of DeepWordBug, Gao et al. 2018).
* ``word-drop``: a fraction of the words is deleted (at least one word is kept).
* ``casing``: a fraction of the words is upper-cased (1.0 = the whole text).
* ``whitespace``: a fraction of the gaps between words, and the two ends, get
  extra spaces, tabs or newlines.
* ``pii-masking``: personal data found by the de-identification engine is
  replaced by placeholders (needs the engine; see :class:`PiiMasking`).
"""

from __future__ import annotations

import re
import zlib
from abc import ABC
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

from aimass.errors import InvalidArgument

__all__ = [
    "MaskFunction",
    "Perturbation",
    "PiiMasking",
    "get_perturbation",
    "list_perturbations",
    "register_perturbation",
]

MaskFunction = Callable[[Sequence[str]], list[str]]

_WORD = re.compile(r"\S+")
_LATIN_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ]{2,}")
_KEYBOARD = [
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
]


def _neighbours() -> dict[str, str]:
    pos = {ch: (r, c) for r, row in enumerate(_KEYBOARD) for c, ch in enumerate(row)}
    out = {}
    for ch, (r, c) in pos.items():
        near = [
            other
            for other, (r2, c2) in pos.items()
            if other != ch and abs(r - r2) <= 1 and abs(c - c2) <= 1
        ]
        out[ch] = "".join(sorted(near))
    return out


_NEIGHBOURS = _neighbours()


class Perturbation(ABC):
    """A seeded text perturbation. Subclasses set the class attributes and :meth:`perturb_one`."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: Strengths a report runs by default.
    strengths: ClassVar[tuple[float, ...]]
    #: What a strength means, for the report.
    strength_meaning: ClassVar[str]
    #: Whether the whitespace-separated words stay the same in number and order (only
    #: their characters may change), so word-level gold labels still line up.
    keeps_words: ClassVar[bool] = False

    def perturb(self, texts: Sequence[str], *, strength: float, seed: int) -> list[str]:
        """Perturb every text; text ``i``'s randomness depends only on (seed, name, strength, i)."""
        if not 0.0 < strength <= 1.0:
            raise InvalidArgument(f"perturbation strength must be in (0, 1], got {strength}")
        return [
            self.perturb_one(text, strength, self._rng(seed, strength, i))
            for i, text in enumerate(texts)
        ]

    def _rng(self, seed: int, strength: float, index: int) -> np.random.Generator:
        key = [seed, zlib.crc32(self.name.encode()), round(strength * 1_000_000), index]
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))

    def perturb_one(self, text: str, strength: float, rng: np.random.Generator) -> str:
        """Perturb one text (never returns an empty or blank string)."""
        raise NotImplementedError

    @staticmethod
    def _choose(rng: np.random.Generator, n: int, strength: float) -> list[int]:
        """``ceil(strength · n)`` distinct indices out of ``n`` (at least one when n > 0)."""
        if n == 0:
            return []
        k = min(n, max(1, int(np.ceil(strength * n - 1e-9))))
        return sorted(rng.choice(n, size=k, replace=False).tolist())

    @classmethod
    def _rewrite(
        cls,
        text: str,
        pattern: re.Pattern[str],
        strength: float,
        rng: np.random.Generator,
        change: Callable[[str], str],
    ) -> str:
        """``text`` with ``change`` applied to a ``strength`` share of the ``pattern`` matches."""
        matches = list(pattern.finditer(text))
        chosen = set(cls._choose(rng, len(matches), strength))
        out, pos = [], 0
        for i, match in enumerate(matches):
            if i in chosen:
                out.append(text[pos : match.start()] + change(match.group()))
                pos = match.end()
        out.append(text[pos:])
        return "".join(out)


class Typos(Perturbation):
    name = "typos"
    description = "one character edit (swap, delete, insert, keyboard substitution) per chosen word"
    strengths = (0.1, 0.3)
    strength_meaning = "fraction of Latin-script words (2+ letters) with one typo"
    keeps_words = True

    def perturb_one(self, text: str, strength: float, rng: np.random.Generator) -> str:
        return self._rewrite(text, _LATIN_WORD, strength, rng, lambda word: self._edit(word, rng))

    @staticmethod
    def _edit(word: str, rng: np.random.Generator) -> str:
        op = int(rng.integers(4))
        i = int(rng.integers(len(word)))
        if op == 0:  # swap with the next character
            i = min(i, len(word) - 2)
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        if op == 1:  # delete
            return word[:i] + word[i + 1 :]
        near = _NEIGHBOURS.get(word[i].lower()) or "etaoin"
        ch = near[int(rng.integers(len(near)))]
        ch = ch.upper() if word[i].isupper() else ch
        if op == 2:  # insert a neighbour of this key before it
            return word[:i] + ch + word[i:]
        return word[:i] + ch + word[i + 1 :]  # substitute


class WordDrop(Perturbation):
    name = "word-drop"
    description = "delete whole words (at least one word is kept)"
    strengths = (0.1, 0.3)
    strength_meaning = "fraction of words deleted"

    def perturb_one(self, text: str, strength: float, rng: np.random.Generator) -> str:
        words = _WORD.findall(text)
        if len(words) < 2:
            return text
        drop = set(self._choose(rng, len(words), strength))
        if len(drop) == len(words):
            drop.discard(int(rng.integers(len(words))))
        return " ".join(w for i, w in enumerate(words) if i not in drop)


class Casing(Perturbation):
    name = "casing"
    description = "upper-case whole words"
    strengths = (0.5, 1.0)
    strength_meaning = "fraction of words upper-cased (1.0 = the whole text)"
    keeps_words = True

    def perturb_one(self, text: str, strength: float, rng: np.random.Generator) -> str:
        if strength >= 1.0:
            return text.upper()
        return self._rewrite(text, _WORD, strength, rng, str.upper)


class Whitespace(Perturbation):
    name = "whitespace"
    description = "extra spaces, tabs and newlines between words and at both ends"
    strengths = (0.5, 1.0)
    strength_meaning = "fraction of word gaps (and the two ends) that get extra whitespace"
    _RUNS = (" ", "  ", "\t", "\n", " \t", "\n\n", "   ")
    keeps_words = True

    def perturb_one(self, text: str, strength: float, rng: np.random.Generator) -> str:
        words = _WORD.findall(text)
        slots = len(words) + 1  # before each word, and after the last
        chosen = set(self._choose(rng, slots, strength))
        parts = []
        for i in range(slots):
            extra = self._RUNS[int(rng.integers(len(self._RUNS)))] if i in chosen else ""
            gap = "" if i in (0, slots - 1) else " "
            parts.append(gap + extra)
            if i < len(words):
                parts.append(words[i])
        return "".join(parts)


class PiiMasking(Perturbation):
    """Replace personal data by placeholders with the de-identification engine.

    Args:
        mask: Texts → masked texts. ``None`` uses the platform's engine
            (``aimass.data.deidentify``, every built-in recognizer, mask mode).
    """

    name = "pii-masking"
    description = "personal data (names, e-mails, phone numbers, ...) replaced by placeholders"
    strengths = (1.0,)
    strength_meaning = "1.0 = every entity the de-identification engine finds is masked"

    def __init__(self, mask: MaskFunction | None = None) -> None:
        self._mask = mask

    def perturb(self, texts: Sequence[str], *, strength: float, seed: int) -> list[str]:
        if strength != 1.0:
            raise InvalidArgument("pii-masking has one strength: 1.0 (mask every entity found)")
        masked = list((self._mask or platform_masker())(list(texts)))
        if len(masked) != len(texts):
            raise InvalidArgument(
                f"the masking function returned {len(masked)} texts for {len(texts)}"
            )
        # A text that was all personal data must still be a text the model can score.
        return [m if m.strip() else "[MASKED]" for m in masked]

    def perturb_one(self, text: str, strength: float, rng: np.random.Generator) -> str:
        return self.perturb([text], strength=strength, seed=0)[0]


def platform_masker() -> MaskFunction:
    """The de-identification engine's masking function (every built-in recognizer)."""
    from aimass.data.deidentify import deidentify_texts

    def mask(texts: Sequence[str]) -> list[str]:
        return deidentify_texts(texts, mode="mask")[0]

    return mask


_PERTURBATIONS: dict[str, Perturbation] = {}


def register_perturbation(perturbation: Perturbation, *, force: bool = False) -> Perturbation:
    """Register ``perturbation`` under its name (``force`` replaces)."""
    if perturbation.name in _PERTURBATIONS and not force:
        raise InvalidArgument(f"perturbation {perturbation.name!r} is registered already")
    _PERTURBATIONS[perturbation.name] = perturbation
    return perturbation


def get_perturbation(name: str) -> Perturbation:
    """The perturbation ``name``; the error lists the registered ones."""
    try:
        return _PERTURBATIONS[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown perturbation {name!r}; perturbations: {', '.join(_PERTURBATIONS)}",
            perturbation=name,
        ) from None


def list_perturbations() -> list[Perturbation]:
    """Every registered perturbation, in registration order."""
    return list(_PERTURBATIONS.values())


for _builtin in (Typos(), WordDrop(), Casing(), Whitespace(), PiiMasking()):
    register_perturbation(_builtin)
