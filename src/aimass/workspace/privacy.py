"""De-identification options of the workspace, and the de-identifier they build.

It composes data (the recognizers) and serving (a NER model's predictor), so it
lives here, in the local composition root. The membership-inference audit is a
job kind: :mod:`aimass.jobs.audit`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aimass.data.deidentify import Deidentifier
    from aimass.workspace import Workspace

__all__ = ["DeidentifyOptions", "build_deidentifier"]


@dataclass(frozen=True)
class DeidentifyOptions:
    """De-identification on import.

    Attributes:
        mode: ``mask``, ``redact`` or ``pseudonymize`` (needs the project's key).
        fields: Extra fields to clean besides the text field.
        recognizers: Recognizer names (default: all built-in).
        ner_model: A registered NER model (``NAME@VERSION``) run besides the recognizers
            (Chinese names are found without one, by the built-in ``lac-zh``).
    """

    mode: str
    fields: tuple[str, ...] = ()
    recognizers: tuple[str, ...] | None = None
    ner_model: str | None = None

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any] | None) -> DeidentifyOptions | None:
        """Options from the wire/CLI fields (``mode``, ``fields``, ``recognizers``,
        ``ner_model``); ``None`` when not asked for."""
        if not fields:
            return None
        recognizers = fields.get("recognizers")
        return cls(
            mode=fields["mode"],
            fields=tuple(fields.get("fields") or ()),
            recognizers=tuple(recognizers) if recognizers else None,
            ner_model=fields.get("ner_model"),
        )


def build_deidentifier(ws: Workspace, options: DeidentifyOptions, *, project: str) -> Deidentifier:
    """A de-identifier with the project's key and, when named, its NER model loaded."""
    from aimass.data.deidentify import (
        DEFAULT_RECOGNIZERS,
        Deidentifier,
        ModelNerRecognizer,
        create_recognizer,
        load_project_key,
    )

    key = load_project_key(ws.settings.home, project) if options.mode == "pseudonymize" else None
    recognizers: list[Any] = [
        create_recognizer(n) for n in (options.recognizers or DEFAULT_RECOGNIZERS)
    ]
    if options.ner_model:
        model = ws.serving.load(options.ner_model, project=project)
        recognizers.append(ModelNerRecognizer(model, ref=options.ner_model))
    return Deidentifier(recognizers, mode=options.mode, key=key)
