"""Output policies: how much of a prediction a key is shown (a defence against extraction).

A model's full output (every class probability to 7 digits) is what an attacker
needs to train a copy of it from queries. A key may carry a policy that cuts the
output down, applied by the server to every prediction it returns to that key::

    labels          the label only: no score, no probabilities
    top_k=N         the N most probable labels with their scores
    round=D         every score rounded to D decimals

Parts combine with commas (``top_k=1,round=2``; ``labels,round=1``). A policy
string is stored in its canonical order (``labels``/``top_k``, then ``round``).

What each part does per output kind:

- classification (``label``, ``score``, ``probabilities``): as above.
- token classification (``entities``): ``labels`` drops each entity's score;
  ``round`` rounds it; ``top_k`` has nothing to cut (each entity has one label).
- fill-mask (``masks`` with ``candidates``): ``labels`` keeps the best token
  without its score, ``top_k`` the N best; ``round`` rounds the scores.
- regression (``value``): the value *is* the score, so ``labels`` or ``top_k``
  alone refuse a regression model (403); with ``round=D`` the value is served
  rounded to D decimals.
- generated text has no scores: no policy changes it.

A ``labels`` key is also refused explanations: attributions show how the model
weighs each word, which is the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aimass.errors import InvalidArgument, PermissionDenied

__all__ = ["OutputPolicy", "parse_policy"]

_MAX_TOP_K = 1000
_MAX_DECIMALS = 10
_FULL = ("", "full", "none")


@dataclass(frozen=True)
class OutputPolicy:
    """A parsed policy (see the module docstring).

    Attributes:
        labels: Labels only, no scores.
        top_k: Only the ``top_k`` most probable labels (``None``: all).
        decimals: Round scores to this many decimals (``None``: not rounded).
    """

    labels: bool = False
    top_k: int | None = None
    decimals: int | None = None

    @property
    def is_full(self) -> bool:
        """Nothing is cut: the results are served as the model made them."""
        return not self.labels and self.top_k is None and self.decimals is None

    def __str__(self) -> str:
        parts = ["labels"] if self.labels else []
        if self.top_k is not None:
            parts.append(f"top_k={self.top_k}")
        if self.decimals is not None:
            parts.append(f"round={self.decimals}")
        return ",".join(parts)

    def check_explain(self, key_id: str | None) -> None:
        """PermissionDenied when this policy forbids explanations (``labels``)."""
        if self.labels:
            raise PermissionDenied(
                f"API key {key_id} has the output policy {str(self)!r}, which refuses "
                "explanations (attributions reveal how the model weighs each input); ask "
                "without 'explain', or ask an admin to change the key's output policy",
                policy=str(self),
            )

    def check_task(self, task: str, key_id: str | None) -> None:
        """PermissionDenied for a regression model under ``labels``/``top_k`` without ``round``."""
        if task == "regression" and (self.labels or self.top_k) and self.decimals is None:
            raise PermissionDenied(
                f"API key {key_id} has the output policy {str(self)!r}, which hides scores; "
                "a regression model's output is a score, so it is not served to this key. "
                "Add 'round=D' to the key's policy to serve rounded values",
                policy=str(self),
            )

    def apply(self, results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The results as this policy shows them (new dicts; the inputs are not changed)."""
        return [self._one(result) for result in results]

    def _one(self, result: dict[str, Any]) -> dict[str, Any]:
        out = dict(result)
        if "value" in out and isinstance(out["value"], float):
            out["value"] = self._round(out["value"])
        if self.labels:
            out.pop("score", None)
            out.pop("probabilities", None)
        else:
            if "score" in out:
                out["score"] = self._round(out["score"])
            if isinstance(out.get("probabilities"), dict):
                out["probabilities"] = self._probabilities(out["probabilities"])
        if isinstance(out.get("entities"), list):
            out["entities"] = [self._scored(e) for e in out["entities"]]
        if isinstance(out.get("masks"), list):
            out["masks"] = [self._mask(m) for m in out["masks"]]
        return out

    def _round(self, value: Any) -> Any:
        if self.decimals is None or not isinstance(value, float):
            return value
        return round(value, self.decimals)

    def _probabilities(self, probabilities: dict[str, Any]) -> dict[str, Any]:
        ranked = sorted(probabilities.items(), key=lambda item: item[1], reverse=True)
        if self.top_k is not None:
            ranked = ranked[: self.top_k]
        return {label: self._round(p) for label, p in ranked}

    def _scored(self, item: Any) -> Any:
        if not isinstance(item, dict) or "score" not in item:
            return item
        out = dict(item)
        if self.labels:
            del out["score"]
        else:
            out["score"] = self._round(out["score"])
        return out

    def _mask(self, mask: Any) -> Any:
        if not isinstance(mask, dict) or not isinstance(mask.get("candidates"), list):
            return mask
        candidates = mask["candidates"]
        keep = 1 if self.labels else self.top_k
        if keep is not None:
            candidates = candidates[:keep]
        return {**mask, "candidates": [self._scored(c) for c in candidates]}


FULL = OutputPolicy()


def parse_policy(text: str | None) -> OutputPolicy:
    """The policy ``text`` names (``None``, ``""`` or ``full``: everything shown).

    Raises InvalidArgument naming the part that is wrong and the accepted forms.
    """
    if text is None or text.strip().lower() in _FULL:
        return FULL
    return _parse(text.strip().lower())


@lru_cache(maxsize=256)
def _parse(text: str) -> OutputPolicy:
    labels, top_k, decimals = False, None, None
    for part in (p.strip() for p in text.split(",")):
        name, eq, value = part.partition("=")
        if part == "labels":
            labels = True
        elif name in ("top_k", "round") and eq:
            number = _number(part, value, most=_MAX_TOP_K if name == "top_k" else _MAX_DECIMALS)
            if name == "top_k":
                top_k = number
            else:
                decimals = number
        else:
            raise InvalidArgument(
                f"output policy part {part[:40]!r} is not known; write 'labels', 'top_k=N' "
                "or 'round=D', combined with commas (e.g. 'top_k=1,round=2'), or 'full'",
                policy=text[:80],
            )
    if labels and top_k is not None:
        raise InvalidArgument(
            f"output policy {text[:80]!r} asks for labels only and top_k together; "
            "'labels' already hides every score: keep one of them",
            policy=text[:80],
        )
    return OutputPolicy(labels=labels, top_k=top_k, decimals=decimals)


def _number(part: str, value: str, *, most: int) -> int:
    least = 1 if part.startswith("top_k") else 0
    if not value.isdigit() or not least <= int(value) <= most:
        raise InvalidArgument(
            f"output policy part {part[:40]!r} needs a whole number from {least} to {most}",
            policy=part[:40],
        )
    return int(value)
