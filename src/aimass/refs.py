"""Names and references: the only way a user string reaches a path or a query.

A *name* is a slug (``^[a-z0-9][a-z0-9._-]{0,62}$``, no ``..``). A *reference*
is ``NAME``, ``NAME@VERSION`` (a positive integer), ``NAME@ALIAS`` (a slug that
is not all digits) or ``NAME@latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aimass.errors import InvalidName

__all__ = ["LATEST", "Ref", "parse_ref", "validate_name"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
LATEST = "latest"


def validate_name(value: str, *, kind: str = "name") -> str:
    """Return ``value`` if it is a valid slug, else raise :class:`InvalidName`.

    Args:
        value: The user-supplied name.
        kind: What the name is for (``dataset``, ``model``, ...), used in the message.
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        shown = repr(value)[:80]
        raise InvalidName(
            f"invalid {kind} name {shown}: use 1-63 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (for example 'churn-model')",
            kind=kind,
            value=shown,
        )
    return value


@dataclass(frozen=True)
class Ref:
    """A parsed reference to a versioned resource.

    Exactly one of ``version`` and ``alias`` is set; ``alias == "latest"`` means
    the newest version.
    """

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        return f"{self.name}@{self.alias}"


def parse_ref(text: str, *, kind: str = "model", default_alias: str = LATEST) -> Ref:
    """Parse ``NAME[@VERSION|@ALIAS]`` into a :class:`Ref`.

    Args:
        text: The reference as the user typed it.
        kind: What is referenced, for error messages.
        default_alias: Used when no ``@...`` part is given.
    """
    name, sep, selector = text.partition("@")
    validate_name(name, kind=kind)
    if not sep:
        return Ref(name=name, alias=default_alias)
    if selector.isdigit():
        version = int(selector)
        if version < 1:
            raise InvalidName(f"{kind} reference {text!r}: versions start at 1", value=text)
        return Ref(name=name, version=version)
    validate_name(selector, kind=f"{kind} alias")
    return Ref(name=name, alias=selector)
