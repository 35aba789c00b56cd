"""Durations as people type them (``90s``, ``30m``, ``1h``, ``7d``): a light module, so the
CLI parses one without loading the store."""

from __future__ import annotations

import re

from aimass.errors import InvalidArgument

__all__ = ["parse_duration"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, *, what: str = "--older-than") -> float:
    """Seconds in ``90``, ``90s``, ``30m``, ``1h`` or ``7d`` (``what`` names the field in
    the error)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise InvalidArgument(
            f"{what} {text!r} is not a duration: write a number with an optional unit, "
            "s, m, h or d (90s, 30m, 1h, 7d)",
            value=text,
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
