"""The console's step editor: a pipeline spec as a table of steps, one row each.

A row has a name, a type, the model reference(s) it runs, the step it leads to
(``next``) and the type's other fields as ``KEY=VALUE`` options separated by
commas, lists space-separated::

    clean   deidentify                     next: clf    mode=mask, recognizers=email person
    lang    route                                       zh=zh-clf, en=en-clf, default=en-clf
    clf     ensemble   a@production b@1    next: gate   weights=2 1
    gate    threshold                                   min_score=0.7, fallback=abstain
    names   labels                                      pos=positive, neg=negative

:func:`spec_from_rows` turns the posted rows into the spec the API takes (the
API's checks then apply, as to a JSON spec); :func:`rows_of` shows a stored
spec as rows, for a new version made from it. Only the row's own shape is
checked here (an unknown option, a number that is not one); links, references
and everything else are the spec checker's.
"""

from __future__ import annotations

from typing import Any

from aimass.errors import InvalidArgument
from aimass.serving.pipelines.steps import LANGUAGES, MAX_STEPS, STEP_TYPES

__all__ = ["MIN_ROWS", "row_count", "rows_of", "spec_from_rows"]

MIN_ROWS = 4  # empty rows the editor offers at least
_ROW_FIELDS = ("name", "type", "models", "next", "options")
# Options of each type, and which of them are numbers or space-separated lists.
_OPTIONS: dict[str, tuple[str, ...]] = {
    "model": (),
    "ensemble": ("weights",),
    "deidentify": ("mode", "recognizers"),
    "route": (*LANGUAGES, "default", "min_han_share"),
    "threshold": ("min_score", "fallback"),
    "labels": (),  # any OLD=NEW pair: the label map
}
_NUMBERS = frozenset({"min_score", "min_han_share"})
_NUMBER_LISTS = frozenset({"weights"})
_LISTS = frozenset({"recognizers"})


def row_count(steps: int, asked: int | None = None) -> int:
    """Rows to show: the steps there are and two empty ones (at least ``MIN_ROWS``), or
    the number asked for, never more than a pipeline may have."""
    return max(MIN_ROWS, min(asked or steps + 2, MAX_STEPS), steps)


def rows_of(spec: dict[str, Any]) -> list[dict[str, str]]:
    """The editor's rows of an (editable, unpinned) spec: one per step."""
    rows = []
    for step in spec.get("steps", []):
        kind = str(step.get("type", ""))
        models = step.get("models") if kind == "ensemble" else [step.get("model", "")]
        options: list[tuple[str, Any]] = []
        if kind == "route":
            options += list((step.get("routes") or {}).items())
        if kind == "labels":
            options += list((step.get("map") or {}).items())
        options += [(key, step[key]) for key in _OPTIONS.get(kind, ()) if key in step]
        rows.append(
            {
                "name": str(step.get("name", "")),
                "type": kind,
                "models": " ".join(str(m) for m in models or [] if m),
                "next": str(step.get("next", "")),
                "options": ", ".join(f"{key}={_shown(value)}" for key, value in options),
            }
        )
    return rows


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def spec_from_rows(fields: dict[str, str]) -> dict[str, Any]:
    """The spec of the posted rows (``step{i}_name``, ``step{i}_type``, ...); rows
    without a name are left out, and a form with none is refused."""
    steps = []
    for index in range(MAX_STEPS):
        row = {key: fields.get(f"step{index}_{key}", "").strip() for key in _ROW_FIELDS}
        if row["name"]:
            steps.append(_step(row))
    if not steps:
        raise InvalidArgument(
            "the pipeline has no steps: give each step a name and a type in the table "
            "(or write the spec as JSON)",
            field="steps",
        )
    return {"steps": steps}


def _step(row: dict[str, str]) -> dict[str, Any]:
    name, kind = row["name"], row["type"]
    if kind not in STEP_TYPES:
        raise InvalidArgument(
            f"step {name!r}: type {kind!r} is not one of {', '.join(STEP_TYPES)}", field="steps"
        )
    step: dict[str, Any] = {"name": name, "type": kind}
    models = row["models"].replace(",", " ").split()
    if kind == "model":
        if len(models) != 1:
            raise InvalidArgument(
                f"step {name!r}: a model step runs one model reference (NAME@ALIAS or "
                f"NAME@VERSION), not {len(models)}; for several use an ensemble step",
                field="steps",
            )
        step["model"] = models[0]
    elif kind == "ensemble":
        step["models"] = models
    elif models:
        raise InvalidArgument(
            f"step {name!r}: a {kind} step runs no model; clear its models cell", field="steps"
        )
    if row["next"]:
        step["next"] = row["next"]
    for key, value in _options(name, kind, row["options"]):
        if kind == "labels":
            step.setdefault("map", {})[key] = value
        elif kind == "route" and key in LANGUAGES:
            step.setdefault("routes", {})[key] = value
        else:
            step[key] = _typed(name, key, value)
    return step


def _options(name: str, kind: str, text: str) -> list[tuple[str, str]]:
    """``KEY=VALUE`` pairs of an options cell, each key one the type takes."""
    pairs = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = (s.strip() for s in part.partition("="))
        allowed = _OPTIONS[kind]
        if not sep or not key or not value:
            raise InvalidArgument(
                f"step {name!r}: option {part!r} is not KEY=VALUE (options are separated "
                "by commas, e.g. min_score=0.7, fallback=abstain)",
                field="steps",
            )
        if kind != "labels" and key not in allowed:
            takes = ", ".join(allowed) if allowed else "none"
            raise InvalidArgument(
                f"step {name!r}: a {kind} step has no option {key!r} (it takes: {takes})",
                field="steps",
            )
        pairs.append((key, value))
    return pairs


def _typed(name: str, key: str, value: str) -> Any:
    """An option's value as the spec holds it: a number, a list, or the text."""
    try:
        if key in _NUMBERS:
            return float(value)
        if key in _NUMBER_LISTS:
            return [float(v) for v in value.split()]
    except ValueError:
        raise InvalidArgument(
            f"step {name!r}: {key} {value!r} is not a number"
            + (" (space-separated numbers, e.g. weights=2 1)" if key in _NUMBER_LISTS else ""),
            field="steps",
        ) from None
    return value.split() if key in _LISTS else value
