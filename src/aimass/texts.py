"""Text hygiene where text enters aimass: lone UTF-16 surrogates are refused.

JSON may carry ``"\\ud800"``, and Python decodes it to a ``str`` holding an
unpaired surrogate, which no UTF-8 encoder, tokenizer or database accepts.
Left in, it fails far from where it entered, as a 500; checked here, it is a
400 that names the input and the character position.
"""

from __future__ import annotations

import json
import re

from aimass.errors import InvalidArgument

__all__ = ["check_json_unicode", "check_unicode", "find_surrogate"]

_SURROGATE = re.compile("[\ud800-\udfff]")
# A JSON escape of a surrogate (high or low): only a body holding one can decode to a lone
# surrogate, so only such bodies are walked (emoji sent as escaped pairs among them).
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def find_surrogate(text: str) -> int | None:
    """The position of the first lone surrogate in ``text``, or ``None`` when it has none."""
    found = _SURROGATE.search(text)
    return None if found is None else found.start()


def check_unicode(text: str, *, what: str, **details: object) -> str:
    """``text`` unchanged, or InvalidArgument naming ``what`` and the bad position.

    Args:
        text: The text to check.
        what: How the message names it (``input 3``, ``the prompt``, ``line 12 field 'text'``).
        **details: Extra error details (``index``, ``line``, ``field``).
    """
    position = find_surrogate(text)
    if position is None:
        return text
    code = ord(text[position])
    raise InvalidArgument(
        f"{what} holds an unpaired UTF-16 surrogate (U+{code:04X}) at character {position}, "
        "which is not valid Unicode; send the text as valid UTF-8 (a surrogate must come in a "
        "high/low pair, e.g. '\\ud83d\\ude00' for one emoji)",
        position=position,
        **details,
    )


def _walk(value: object, path: str) -> tuple[str, str, str] | None:
    """``(how to name it, its path, the text)`` of the first string with a lone surrogate."""
    if isinstance(value, str):
        return None if find_surrogate(value) is None else (f"request field {path!r}", path, value)
    if isinstance(value, dict):
        items: list[tuple[object, str]] = []
        for key, item in value.items():
            if isinstance(key, str) and find_surrogate(key) is not None:
                return (f"a key of {path or 'the request body'}", path, key)
            items.append((item, f"{path}.{key}" if path else str(key)))
    elif isinstance(value, list):
        items = [(item, f"{path}[{i}]") for i, item in enumerate(value)]
    else:
        return None
    for item, where in items:
        found = _walk(item, where)
        if found is not None:
            return found
    return None


def check_json_unicode(body: bytes) -> None:
    """InvalidArgument when a JSON body decodes to a string with a lone surrogate.

    Cheap for nearly every body: the body is parsed (a second time) only when it holds
    a ``\\uD800``-``\\uDFFF`` escape. A body that is not valid JSON is left to the route.
    """
    if _ESCAPED_SURROGATE.search(body) is None:
        return
    try:
        value = json.loads(body)
    except ValueError:
        return
    found = _walk(value, "")
    if found is not None:
        what, path, text = found
        check_unicode(text, what=what, field=path)
