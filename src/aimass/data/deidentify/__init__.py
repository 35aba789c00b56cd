"""PII de-identification: validated recognizers, three modes, a report per run.

Plain-function API (also for the service, to keep raw text out of logs)::

    from aimass.data.deidentify import deidentify_texts, scrub

    scrub("mail me at ann@example.org")            # '<EMAIL_ADDRESS>' in place of the address
    texts, report = deidentify_texts(rows, mode="pseudonymize", key=project_key)

Recognizers are registered by name (``list_recognizers()``); the engine and
modes are in :mod:`aimass.data.deidentify.engine`. By default English names go
to Presidio and Chinese names to Baidu LAC (``lac-zh``), each on its own script
runs of a text; nothing needs training.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from aimass.data.deidentify.engine import (
    DEFAULT_RECOGNIZERS,
    MODES,
    Deidentifier,
    DeidReport,
    deidentify_records,
    key_fingerprint,
    resolve_overlaps,
    script_runs,
)
from aimass.data.deidentify.keys import create_project_key, load_project_key, project_key_path
from aimass.data.deidentify.lac import LacRecognizer
from aimass.data.deidentify.nlp import ModelNerRecognizer, NerModel, PresidioNerRecognizer
from aimass.data.deidentify.recognizers import (
    PatternRecognizer,
    Recognizer,
    Span,
    create_recognizer,
    list_recognizers,
    register_recognizer,
)

__all__ = [
    "DEFAULT_RECOGNIZERS",
    "MODES",
    "DeidReport",
    "Deidentifier",
    "LacRecognizer",
    "ModelNerRecognizer",
    "NerModel",
    "PatternRecognizer",
    "PresidioNerRecognizer",
    "Recognizer",
    "Span",
    "create_project_key",
    "create_recognizer",
    "deidentify_records",
    "deidentify_texts",
    "key_fingerprint",
    "list_recognizers",
    "load_project_key",
    "project_key_path",
    "register_recognizer",
    "resolve_overlaps",
    "script_runs",
    "scrub",
]


@functools.lru_cache(maxsize=8)
def _shared(names: tuple[str, ...]) -> tuple[Recognizer, ...]:
    # Recognizers are stateless after loading (spaCy loads once); share them.
    return tuple(create_recognizer(n) for n in names)


def deidentify_texts(
    texts: Sequence[str],
    *,
    mode: str = "mask",
    recognizers: Sequence[str] | None = None,
    key: bytes | None = None,
) -> tuple[list[str], DeidReport]:
    """De-identify ``texts`` with shared recognizers; returns the texts and the report."""
    names = tuple(recognizers) if recognizers is not None else DEFAULT_RECOGNIZERS
    engine = Deidentifier(list(_shared(names)), mode=mode, key=key)
    return engine.apply(texts), engine.report


def scrub(text: str, *, recognizers: Sequence[str] | None = None) -> str:
    """``text`` with every finding masked (``<EMAIL_ADDRESS>``): for logs and audit records."""
    return deidentify_texts([text], mode="mask", recognizers=recognizers)[0][0]
