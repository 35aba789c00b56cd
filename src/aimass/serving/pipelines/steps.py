"""The step types of a pipeline, registered by name, each with its fields, links and checks.

A step type says which fields a step may carry and must carry, which steps it may
lead to (its edges), whether it leaves a prediction on the input and whether it
needs one, and what is wrong with its own fields. :mod:`.spec` checks a whole
spec with them; :mod:`.engine` runs the steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

from aimass.errors import InvalidName
from aimass.refs import parse_ref

__all__ = [
    "ABSTAIN",
    "DEID_MODES",
    "LANGUAGES",
    "LINK_FIELDS",
    "MAX_STEPS",
    "STEP_TYPES",
    "StepType",
]

MAX_STEPS = 32
ABSTAIN = "abstain"
#: What a ``route`` step can tell apart (by script: Han vs Latin letters), and ``default``.
LANGUAGES = ("zh", "en", "other")
DEID_MODES = ("mask", "redact", "pseudonymize")
#: Fields that name another step: each must be a string when present.
LINK_FIELDS = ("next", "default", "fallback")


@dataclass(frozen=True)
class StepType:
    """One kind of step.

    Attributes:
        name: The ``type`` value in a spec.
        fields: Every field it may carry besides ``name`` and ``type``.
        required: The fields it must carry.
        produces: It leaves a prediction (label, score, probabilities) on the input.
        needs_prediction: It reads the prediction an earlier step left.
        check: Problems with the step's own fields (not its links).
        edges: ``(field, step name)`` of every step it may lead to.
    """

    name: str
    fields: frozenset[str]
    required: frozenset[str]
    produces: bool
    needs_prediction: bool
    check: Callable[[dict[str, Any]], list[str]]
    edges: Callable[[dict[str, Any]], list[tuple[str, str]]]


STEP_TYPES: dict[str, StepType] = {}


def _register(step_type: StepType) -> None:
    STEP_TYPES[step_type.name] = step_type


def _next(step: dict[str, Any]) -> list[tuple[str, str]]:
    target = step.get("next")
    return [("next", target)] if isinstance(target, str) else []


def _route_edges(step: dict[str, Any]) -> list[tuple[str, str]]:
    routes: dict[str, Any] = step["routes"] if isinstance(step.get("routes"), dict) else {}
    found = [(f"routes.{k}", v) for k, v in sorted(routes.items()) if isinstance(v, str)]
    if isinstance(step.get("default"), str):
        found.append(("default", step["default"]))
    return found


def _threshold_edges(step: dict[str, Any]) -> list[tuple[str, str]]:
    found = _next(step)
    fallback = step.get("fallback", ABSTAIN)
    if isinstance(fallback, str) and fallback != ABSTAIN:
        found.append(("fallback", fallback))
    return found


def _where(step: dict[str, Any]) -> str:
    return f"step {str(step.get('name'))[:63]!r}"


def _check_ref(step: dict[str, Any], field: str, value: Any) -> list[str]:
    if not isinstance(value, str):
        return [f"{_where(step)}: {field} must be a model reference such as 'sentiment@production'"]
    try:
        parse_ref(value, kind="model")
    except InvalidName as exc:
        return [f"{_where(step)}: {field} {value[:127]!r} is not a model reference: {exc.message}"]
    return []


def _check_model(step: dict[str, Any]) -> list[str]:
    return _check_ref(step, "model", step.get("model"))


def _check_ensemble(step: dict[str, Any]) -> list[str]:
    models = step.get("models")
    if not isinstance(models, list) or len(models) < 2:
        return [f"{_where(step)}: models must list at least two model references to average"]
    problems = [p for i, ref in enumerate(models) for p in _check_ref(step, f"models[{i}]", ref)]
    # Versions of one model may be averaged (a retrained version with the one before);
    # the same reference twice may not, and pinning refuses two that resolve to one version.
    if len({str(m) for m in models}) != len(models) and not problems:
        problems.append(f"{_where(step)}: models {models} lists a reference twice; list each once")
    weights = step.get("weights")
    if weights is not None:
        ok = isinstance(weights, list) and len(weights) == len(models)
        if not ok or not all(_number(w) and w > 0 for w in weights):
            problems.append(
                f"{_where(step)}: weights {str(weights)[:100]} must be {len(models)} positive "
                "numbers, one per model (or leave weights out for a plain average)"
            )
    return problems


def _check_deidentify(step: dict[str, Any]) -> list[str]:
    from aimass.data.deidentify import list_recognizers

    problems = []
    mode = step.get("mode", "mask")
    if mode not in DEID_MODES:
        problems.append(
            f"{_where(step)}: mode {str(mode)[:40]!r} is not one of {', '.join(DEID_MODES)}"
        )
    names = step.get("recognizers")
    if names is not None:
        known = list_recognizers()
        if not isinstance(names, list) or not names:
            problems.append(f"{_where(step)}: recognizers must be a non-empty list of names")
        else:
            problems += [
                f"{_where(step)}: unknown recognizer {str(n)[:63]!r}; known: {', '.join(known)}"
                for n in names
                if n not in known
            ]
    return problems


def _check_route(step: dict[str, Any]) -> list[str]:
    routes = step.get("routes")
    ok = isinstance(routes, dict) and routes and all(isinstance(v, str) for v in routes.values())
    if not ok:
        return [f"{_where(step)}: routes must map languages ({', '.join(LANGUAGES)}) to step names"]
    assert isinstance(routes, dict)
    problems = [
        f"{_where(step)}: route key {str(k)[:20]!r} is not a language this step detects; "
        f"use {', '.join(LANGUAGES)} (and 'default' for the rest)"
        for k in routes
        if k not in LANGUAGES
    ]
    if "default" not in step and set(routes) != set(LANGUAGES):
        missing = ", ".join(lang for lang in LANGUAGES if lang not in routes)
        problems.append(
            f"{_where(step)}: inputs detected as {missing} have nowhere to go; add "
            "'default': STEP (or a route for each)"
        )
    share = step.get("min_han_share", 0.3)
    if not _number(share) or not 0 < share <= 1:
        problems.append(f"{_where(step)}: min_han_share {share!r} must be a number in (0, 1]")
    return problems


def _check_threshold(step: dict[str, Any]) -> list[str]:
    score = step.get("min_score")
    if not _number(score) or not 0 <= score <= 1:
        return [f"{_where(step)}: min_score {str(score)[:40]} must be a number from 0 to 1"]
    return []


def _check_labels_step(step: dict[str, Any]) -> list[str]:
    mapping = step.get("map")
    if not isinstance(mapping, dict) or not mapping:
        return [f"{_where(step)}: map must rename labels, e.g. {{'pos': 'positive'}}"]
    if not all(isinstance(v, str) and v for v in mapping.values()):
        return [f"{_where(step)}: map must rename labels, e.g. {{'pos': 'positive'}}"]
    return []


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


_register(
    StepType(
        name="model",
        fields=frozenset({"model", "next", "pin"}),
        required=frozenset({"model"}),
        produces=True,
        needs_prediction=False,
        check=_check_model,
        edges=_next,
    )
)
_register(
    StepType(
        name="ensemble",
        fields=frozenset({"models", "weights", "next", "pins"}),
        required=frozenset({"models"}),
        produces=True,
        needs_prediction=False,
        check=_check_ensemble,
        edges=_next,
    )
)
_register(
    StepType(
        name="deidentify",
        fields=frozenset({"mode", "recognizers", "next", "key_fingerprint"}),
        required=frozenset({"next"}),
        produces=False,
        needs_prediction=False,
        check=_check_deidentify,
        edges=_next,
    )
)
_register(
    StepType(
        name="route",
        fields=frozenset({"routes", "default", "min_han_share"}),
        required=frozenset({"routes"}),
        produces=False,
        needs_prediction=False,
        check=_check_route,
        edges=_route_edges,
    )
)
_register(
    StepType(
        name="threshold",
        fields=frozenset({"min_score", "fallback", "next"}),
        required=frozenset({"min_score"}),
        produces=False,
        needs_prediction=True,
        check=_check_threshold,
        edges=_threshold_edges,
    )
)
_register(
    StepType(
        name="labels",
        fields=frozenset({"map", "next"}),
        required=frozenset({"map"}),
        produces=False,
        needs_prediction=True,
        check=_check_labels_step,
        edges=_next,
    )
)
