"""The pipeline spec: named steps in a small DAG, checked in full before it is stored.

A spec is JSON::

    {"entry": "clean",                       # optional: the first step by default
     "steps": [
       {"name": "clean", "type": "deidentify", "mode": "mask", "next": "lang"},
       {"name": "lang", "type": "route", "routes": {"zh": "zh-clf", "en": "en-clf"},
        "default": "en-clf"},
       {"name": "zh-clf", "type": "model", "model": "zh-sentiment@production", "next": "gate"},
       {"name": "en-clf", "type": "model", "model": "en-sentiment@3", "next": "gate"},
       {"name": "gate", "type": "threshold", "min_score": 0.7, "fallback": "abstain"}]}

Step types are registered by name (:data:`STEP_TYPES`), each with its fields, the
steps it may lead to, whether it makes a prediction and whether it needs one.
:func:`check_spec` returns every problem at once, each naming the step, the value
and the fix, so one round trip shows all of them. Model references are pinned
(``NAME@ALIAS`` → ``NAME@VERSION`` with the bundle digest and labels) by the
workspace before :func:`check_labels` checks what needs the labels.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aimass.entities import ModelVersion
from aimass.errors import FailedPrecondition, InvalidArgument, InvalidName
from aimass.refs import validate_name
from aimass.serving.pipelines.steps import (
    ABSTAIN,
    LANGUAGES,
    LINK_FIELDS,
    MAX_STEPS,
    STEP_TYPES,
    StepType,
)

__all__ = [
    "ABSTAIN",
    "LANGUAGES",
    "MAX_STEPS",
    "STEP_TYPES",
    "StepType",
    "check_labels",
    "check_spec",
    "entry_of",
    "model_refs",
    "output_labels",
    "pinned_version",
    "topological_order",
]


def _fail(problems: list[str]) -> None:
    if problems:
        shown = problems[:20] + (
            [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
        )
        raise InvalidArgument(
            "the pipeline spec is not valid:\n- " + "\n- ".join(shown), problems=shown
        )


def entry_of(spec: dict[str, Any]) -> str:
    """The step every input starts at: ``entry``, else the first step."""
    return str(spec.get("entry") or spec["steps"][0]["name"])


def _shape_problems(spec: Any) -> list[str]:
    if not isinstance(spec, dict):
        return ["the spec must be a JSON object with 'steps' (and optionally 'entry')"]
    problems = [
        f"unknown top-level field {str(k)[:40]!r}; a spec has 'steps' and optionally 'entry'"
        for k in spec
        if k not in ("steps", "entry")
    ]
    steps = spec.get("steps")
    if not isinstance(steps, list) or not steps:
        return [*problems, "'steps' must be a non-empty list of steps"]
    if len(steps) > MAX_STEPS:
        problems.append(f"{len(steps)} steps; a pipeline has at most {MAX_STEPS}")
    return problems


def _step_problems(step: Any, index: int, seen: set[str]) -> list[str]:
    if not isinstance(step, dict):
        return [f"steps[{index}] must be an object with 'name' and 'type'"]
    name = str(step.get("name"))
    try:
        validate_name(step.get("name"), kind="pipeline step")  # type: ignore[arg-type]
    except InvalidName as exc:
        return [f"steps[{index}]: {exc.message}"]
    if name in seen:
        return [f"step {name!r} is defined twice; give each step its own name"]
    seen.add(name)
    given = step.get("type")
    kind = STEP_TYPES.get(given) if isinstance(given, str) else None
    if kind is None:
        return [
            f"step {name!r}: unknown type {str(step.get('type'))[:40]!r}; "
            f"types: {', '.join(sorted(STEP_TYPES))}"
        ]
    problems = [
        f"step {name!r}: unknown field {str(k)[:40]!r} for a {kind.name} step; "
        f"fields: {', '.join(sorted(kind.fields))}"
        for k in step
        if k not in kind.fields and k not in ("name", "type")
    ]
    problems += [
        f"step {name!r}: a {kind.name} step needs {field!r}"
        for field in sorted(kind.required - set(step))
    ]
    problems += [
        f"step {name!r}: {field} must be the name of a step, not {str(step[field])[:40]!r}"
        for field in LINK_FIELDS
        if field in step and not isinstance(step[field], str)
    ]
    return problems or kind.check(step)


def _steps(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in spec["steps"]}


def _edges(step: dict[str, Any]) -> list[tuple[str, str]]:
    return STEP_TYPES[step["type"]].edges(step)


def _link_problems(spec: dict[str, Any]) -> list[str]:
    steps = _steps(spec)
    known = ", ".join(steps)
    problems = [
        f"step {name!r}: {field} names {target[:63]!r}, which is not a step (steps: {known})"
        for name, step in steps.items()
        for field, target in _edges(step)
        if target not in steps
    ]
    entry = spec.get("entry")
    if entry is not None and (not isinstance(entry, str) or entry not in steps):
        problems.append(f"entry {str(entry)[:63]!r} is not a step (steps: {known})")
    return problems


def topological_order(spec: dict[str, Any]) -> list[str]:
    """The steps reachable from the entry, each after every step that leads to it.

    InvalidArgument naming the steps of a cycle, or the steps nothing reaches.
    """
    steps = _steps(spec)
    reachable = _reachable(steps, entry_of(spec))
    incoming = dict.fromkeys(reachable, 0)
    for name in reachable:
        for _, target in _edges(steps[name]):
            incoming[target] += 1
    ready = [name for name in steps if name in reachable and incoming[name] == 0]
    order = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for _, target in _edges(steps[name]):
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    problems = []
    if len(order) < len(reachable):
        looped = ", ".join(n for n in steps if n in reachable and n not in order)
        problems.append(
            f"the steps {looped} form a cycle; a pipeline is a DAG: point one of their "
            "next/routes/fallback fields at a later step"
        )
    unreached = [n for n in steps if n not in reachable]
    if unreached:
        problems.append(
            f"no path from the entry {entry_of(spec)!r} reaches the steps {', '.join(unreached)}; "
            "link them or remove them"
        )
    _fail(problems)
    return order


def _reachable(steps: dict[str, dict[str, Any]], entry: str) -> set[str]:
    seen, todo = set(), [entry]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [target for _, target in _edges(steps[name])]
    return seen


def _flow_problems(spec: dict[str, Any], order: list[str]) -> list[str]:
    """Steps that may run without a prediction they need, and ends without one."""
    steps = _steps(spec)
    # Whether some path reaches the step with no prediction made yet.
    bare = dict.fromkeys(order, False)
    bare[entry_of(spec)] = True
    problems = []
    for name in order:
        step = steps[name]
        kind = STEP_TYPES[step["type"]]
        if bare[name] and kind.needs_prediction:
            problems.append(
                f"step {name!r}: a {kind.name} step reads a prediction, but a path reaches it "
                "before any model or ensemble step; put a model step before it"
            )
        leaves_bare = bare[name] and not kind.produces
        for _, target in kind.edges(step):
            bare[target] = bare[target] or leaves_bare
        if "next" in kind.fields and "next" not in step and leaves_bare:
            problems.append(
                f"step {name!r}: the pipeline can end here without a prediction; add a model "
                "step on this path"
            )
    return problems


def check_spec(spec: Any) -> dict[str, Any]:
    """``spec`` if its shape, steps, links and flow are valid, else InvalidArgument listing
    every problem (labels are checked once models are pinned: :func:`check_labels`)."""
    problems = _shape_problems(spec)
    if problems:
        _fail(problems)
    seen: set[str] = set()
    for i, step in enumerate(spec["steps"]):
        problems += _step_problems(step, i, seen)
    _fail(problems)
    _fail(_link_problems(spec))
    _fail(_flow_problems(spec, topological_order(spec)))
    return spec


def model_refs(spec: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """``(step, reference)`` of every model a step runs, in step order."""
    for step in spec["steps"]:
        if step["type"] == "model":
            yield step, step["model"]
        elif step["type"] == "ensemble":
            for ref in step["models"]:
                yield step, ref


def _upstream_labels(spec: dict[str, Any], order: list[str]) -> dict[str, set[str]]:
    """Per step: every label a prediction reaching it may carry."""
    steps = _steps(spec)
    labels: dict[str, set[str]] = {name: set() for name in order}
    for name in order:
        step = steps[name]
        out = set(labels[name])
        if step["type"] == "model":
            out = set(step["pin"]["labels"])
        elif step["type"] == "ensemble":
            out = set(step["pins"][0]["labels"])
        elif step["type"] == "labels":
            out = {step["map"].get(label, label) for label in out}
        for _, target in _edges(step):
            labels[target] |= out
    return labels


def check_labels(spec: dict[str, Any]) -> None:
    """Once pinned: the models of an ensemble share one label set, and a labels step
    renames labels that can reach it. InvalidArgument listing every problem."""
    problems = []
    for step in spec["steps"]:
        if step["type"] != "ensemble":
            continue
        first = step["pins"][0]
        for other in step["pins"][1:]:
            if sorted(other["labels"]) != sorted(first["labels"]):
                problems.append(
                    f"step {step['name']!r}: an ensemble averages probabilities of the same "
                    f"labels, but {first['model']} has {sorted(first['labels'])} and "
                    f"{other['model']} has {sorted(other['labels'])}; use models trained on "
                    "the same labels"
                )
    upstream = _upstream_labels(spec, topological_order(spec))
    for step in spec["steps"]:
        if step["type"] == "labels":
            seen = upstream[step["name"]]
            problems += [
                f"step {step['name']!r}: map renames {label[:63]!r}, which no model before it "
                f"predicts (labels: {', '.join(sorted(seen))})"
                for label in step["map"]
                if label not in seen
            ]
    _fail(problems)


def output_labels(spec: dict[str, Any]) -> list[str]:
    """Every label a pinned spec can answer with, in the order its models list them, and
    ``abstain`` last when a threshold step can abstain (what an evaluation report of the
    pipeline scores against)."""
    steps = _steps(spec)
    order = topological_order(spec)
    reaching: dict[str, dict[str, None]] = {name: {} for name in order}
    answers: dict[str, None] = {}
    abstains = False
    for name in order:
        step = steps[name]
        out = dict(reaching[name])
        if step["type"] == "model":
            out = dict.fromkeys(step["pin"]["labels"])
        elif step["type"] == "ensemble":
            out = dict.fromkeys(step["pins"][0]["labels"])
        elif step["type"] == "labels":
            out = dict.fromkeys(step["map"].get(label, label) for label in out)
        for _, target in _edges(step):
            reaching[target].update(out)
        if step["type"] == "threshold" and step.get("fallback", ABSTAIN) == ABSTAIN:
            abstains = True
        leaves = "next" in STEP_TYPES[step["type"]].fields and "next" not in step
        if step["type"] == "route":
            leaves = "default" not in step and not set(LANGUAGES) <= set(step["routes"])
        if leaves:
            answers.update(out)
    return [*answers, *([ABSTAIN] if abstains else [])]


def pinned_version(pin: dict[str, Any], found: ModelVersion) -> ModelVersion:
    """``found`` (the version a pin names) if its bundle is still the pinned one, else
    FailedPrecondition: a deleted and re-made version number must not change a pipeline."""
    if found.digest != pin["digest"]:
        raise FailedPrecondition(
            f"model {pin['model']} is not the version this pipeline pinned (bundle "
            f"{found.digest[:12]}, pinned {pin['digest'][:12]}); create a new pipeline "
            "version to use it",
            model=pin["model"],
        )
    return found
