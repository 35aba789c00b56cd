"""The JSON schema of an evaluation report (``report.json``), and its validator.

Every report is validated against this schema before it is stored, so a
program reading ``report.json`` can rely on it. The schema is versioned with
``format_version``; fields are only ever added within a version (so the
``verdict`` of the report and of each section, added after the first reports were
stored, is optional here: older documents without it still validate).
"""

from __future__ import annotations

from typing import Any

from aimass.errors import Internal, MissingExtra
from aimass.evaluation._schema_parts import (
    _CALIBRATION,
    _CLASSIFICATION_FAIRNESS,
    _CLASSIFICATION_QUALITY,
    _ENTITY_FAIRNESS,
    _ENTITY_QUALITY,
    _EXPLANATIONS,
    _LM_FAIRNESS,
    _LM_QUALITY,
    _PRIVACY,
    _REGRESSION_FAIRNESS,
    _REGRESSION_QUALITY,
    _RESOURCES,
    _ROBUSTNESS,
    _SAMPLES,
    _STR,
    _VERDICT,
    _obj,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "REPORT_SCHEMA", "validate_report"]

FORMAT = "aimass.evaluation-report"
FORMAT_VERSION = 1


def _section(data: dict[str, Any]) -> dict[str, Any]:
    """A section envelope; ``data`` must match only when the section ran."""
    return {
        "type": "object",
        "required": ["key", "title", "status", "reason", "data", "figures", "notes"],
        "properties": {
            "key": _STR,
            "title": _STR,
            "status": {"enum": ["ok", "skipped", "not-applicable"]},
            "reason": {"type": ["string", "null"]},
            "data": {"type": "object"},
            "figures": {"type": "array", "items": _STR},
            "notes": {"type": "array", "items": _STR},
            "verdict": _VERDICT,
        },
        "if": {"properties": {"status": {"const": "ok"}}},
        "then": {"properties": {"data": data}},
        "else": {"properties": {"reason": _STR, "data": {"maxProperties": 0}}},
    }


REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "aimass evaluation report",
    "type": "object",
    "required": [
        "format",
        "format_version",
        "created_at",
        "aimass_version",
        "model",
        "dataset",
        "options",
        "summary",
        "sections",
        "timings",
    ],
    "properties": {
        "format": {"const": FORMAT},
        "format_version": {"const": FORMAT_VERSION},
        "created_at": {"type": "string", "format": "date-time"},
        "aimass_version": _STR,
        "model": _obj(
            {
                "name": _STR,
                "version": {"type": "integer", "minimum": 1},
                "digest": _STR,
                "task": {
                    "enum": [
                        "classification",
                        "regression",
                        "token-classification",
                        "masked-lm",
                        "causal-lm",
                        "seq2seq",
                    ]
                },
                "architecture": _STR,
                "labels": {"type": "array", "items": _STR},
            }
        ),
        "dataset": _obj(
            {
                "name": _STR,
                "version": {"type": "integer", "minimum": 1},
                "digest": _STR,
                "split": {"enum": ["train", "validation", "test"]},
                "rows": {"type": "integer", "minimum": 1},
                "group_field": {"type": ["string", "null"]},
            },
            {"kind": {"enum": ["text", "tokens", "pairs"]}},
        ),
        "options": {"type": "object"},
        "verdict": _VERDICT,
        "summary": {
            "type": "object",
            "additionalProperties": {"type": ["number", "string", "null"]},
        },
        "timings": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
        "sections": {
            "type": "object",
            "required": [
                "quality",
                "fairness",
                "robustness",
                "explanations",
                "resources",
                "privacy",
            ],
            "properties": {
                "quality": _section(
                    {
                        "oneOf": [
                            _CLASSIFICATION_QUALITY,
                            _REGRESSION_QUALITY,
                            _LM_QUALITY,
                            _ENTITY_QUALITY,
                        ]
                    }
                ),
                "samples": _section(_SAMPLES),
                "calibration": _section(_CALIBRATION),
                "fairness": _section(
                    {
                        "oneOf": [
                            _CLASSIFICATION_FAIRNESS,
                            _REGRESSION_FAIRNESS,
                            _LM_FAIRNESS,
                            _ENTITY_FAIRNESS,
                        ]
                    }
                ),
                "robustness": _section(_ROBUSTNESS),
                "explanations": _section(_EXPLANATIONS),
                "resources": _section(_RESOURCES),
                "privacy": _section(_PRIVACY),
            },
            "additionalProperties": _section({"type": "object"}),
        },
    },
}


def validate_report(document: dict[str, Any]) -> None:
    """Raise :class:`~aimass.errors.Internal` when ``document`` does not match the schema."""
    try:
        import jsonschema
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingExtra("report validation needs: pip install 'aimass[explain]'") from exc
    validator = jsonschema.Draft202012Validator(
        REPORT_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        raise Internal(
            f"the evaluation report does not match its schema at {where}: {first.message[:300]} "
            f"({len(errors)} problem(s)); this is a bug in aimass",
            path=where,
        )
