"""Running a pinned pipeline over a batch of inputs, step by step.

The steps run in topological order; each step takes every input that is at it
at once, so a model step makes one predict call for all of them (which the
server's micro-batcher may batch further with other callers). Model calls go
through ``predict``, a coroutine the caller supplies: the server passes the
served-model path (micro-batcher, runners, limits), the local client a loaded
predictor. Each input ends with a prediction, a ``trace`` of the steps it went
through and the step that decided it, or ``abstain`` with the reason.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimass.errors import FailedPrecondition
from aimass.serving.pipelines.spec import ABSTAIN, entry_of, topological_order

__all__ = [
    "Explain",
    "PipelineRun",
    "Predict",
    "detect_language",
    "pseudonym_key",
    "run_pipeline",
]

#: ``(pin, texts) -> predictions`` of one pinned model (``pin`` as stored in the spec).
Predict = Callable[[dict[str, Any], list[str]], Awaitable[list[dict[str, Any]]]]
#: ``(pin, texts, predictions, method) -> predictions with an explanation each``.
Explain = Callable[
    [dict[str, Any], list[str], list[dict[str, Any]], Any], Awaitable[list[dict[str, Any]]]
]

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_LETTER = re.compile(r"[^\W\d_]")


def detect_language(text: str, *, min_han_share: float = 0.3) -> str:
    """``zh`` when Han characters are at least ``min_han_share`` of the letters, ``en``
    when most letters are Latin, else ``other``: by script, not a language model (the
    same Han share ``aimass train`` uses to pick the Chinese recipe)."""
    letters = len(_LETTER.findall(text))
    if not letters:
        return "other"
    if len(_HAN.findall(text)) / letters >= min_han_share:
        return "zh"
    return "en" if len(_LATIN.findall(text)) / letters > 0.5 else "other"


@dataclass
class _Item:
    """One input on its way through the pipeline."""

    text: str
    at: str | None
    prediction: dict[str, Any] | None = None
    raw: dict[str, Any] | None = None  # the deciding model's own output
    decided_by: dict[str, Any] | None = None  # {"step", "model" | "models"}
    pin: dict[str, Any] | None = None  # the deciding model's pin (None for an ensemble)
    abstained: str | None = None
    trace: list[dict[str, Any]] = field(default_factory=list)

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.prediction or {})
        if self.abstained is not None:
            out["label"] = ABSTAIN
        out["abstained"] = self.abstained is not None
        if self.abstained is not None:
            out["reason"] = self.abstained
        out["decided_by"] = self.decided_by
        out["trace"] = self.trace
        return out


@dataclass
class PipelineRun:
    """What one run did: a result per input, and how many inputs each step saw.

    Attributes:
        results: Per input, in order: ``label``, ``score``, ``probabilities``,
            ``abstained`` (with a ``reason``), ``decided_by`` and the ``trace``.
        steps: Per step that ran: its name, type, the model(s) it ran, the inputs it saw.
    """

    results: list[dict[str, Any]]
    steps: list[dict[str, Any]]


@dataclass(frozen=True)
class _Run:
    """What every step of one run may use: the model path and the project's pseudonym key."""

    predict: Predict
    key: bytes | None


def _prediction(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: raw[k] for k in ("label", "score", "probabilities") if k in raw}


async def _model(step: dict[str, Any], items: list[_Item], run: _Run) -> None:
    pin = step["pin"]
    outputs = await run.predict(pin, [it.text for it in items])
    for item, raw in zip(items, outputs, strict=True):
        item.raw, item.pin = raw, pin
        item.prediction = _prediction(raw)
        item.decided_by = {"step": step["name"], "model": pin["model"]}
        item.trace.append(
            {
                "step": step["name"],
                "type": "model",
                "model": pin["model"],
                "label": raw.get("label"),
                "score": raw.get("score"),
            }
        )
        item.at = step.get("next")


async def _ensemble(step: dict[str, Any], items: list[_Item], run: _Run) -> None:
    pins = step["pins"]
    weights = step.get("weights") or [1.0] * len(pins)
    texts = [it.text for it in items]
    outputs = await asyncio.gather(*(run.predict(pin, texts) for pin in pins))
    labels = list(pins[0]["labels"])
    total = float(sum(weights))
    weighted = list(zip(weights, outputs, strict=True))
    for i, item in enumerate(items):
        averaged = {
            label: sum(w * out[i]["probabilities"][label] for w, out in weighted) / total
            for label in labels
        }
        best = max(labels, key=averaged.__getitem__)
        item.prediction = {"label": best, "score": averaged[best], "probabilities": averaged}
        item.raw, item.pin = None, None
        models = [pin["model"] for pin in pins]
        item.decided_by = {"step": step["name"], "models": models}
        item.trace.append(
            {
                "step": step["name"],
                "type": "ensemble",
                "models": models,
                "label": best,
                "score": averaged[best],
            }
        )
        item.at = step.get("next")


async def _deidentify(step: dict[str, Any], items: list[_Item], run: _Run) -> None:
    from aimass.data.deidentify import deidentify_texts

    mode = step.get("mode", "mask")
    key = _step_key(step, run.key) if mode == "pseudonymize" else None
    texts, _ = await asyncio.to_thread(
        deidentify_texts,
        [it.text for it in items],
        mode=mode,
        recognizers=step.get("recognizers"),
        key=key,
    )
    for item, text in zip(items, texts, strict=True):
        item.trace.append(
            {"step": step["name"], "type": "deidentify", "changed": text != item.text}
        )
        item.text = text
        item.at = step["next"]


def _step_key(step: dict[str, Any], key: bytes | None) -> bytes:
    """The project key for a pseudonymizing step: the very key pinned when the version was
    made, else pseudonyms would no longer match those its models were trained on."""
    from aimass.data.deidentify import key_fingerprint

    pinned = step.get("key_fingerprint")
    if key is None:
        raise FailedPrecondition(
            f"step {step['name']!r} pseudonymizes with the project's key, and this run was "
            "given none: create it with 'aimass pii key create --project PROJECT'"
        )
    if key_fingerprint(key) != pinned:
        raise FailedPrecondition(
            f"step {step['name']!r} pseudonymizes with the key {pinned}, but the project's "
            f"key is now {key_fingerprint(key)}: its pseudonyms would not match the ones "
            "this pipeline version was made for; create a new pipeline version",
            step=step["name"],
        )
    return key


async def _route(step: dict[str, Any], items: list[_Item], run: _Run) -> None:
    share = step.get("min_han_share", 0.3)
    for item in items:
        language = detect_language(item.text, min_han_share=share)
        target = step["routes"].get(language, step.get("default"))
        item.trace.append(
            {"step": step["name"], "type": "route", "language": language, "to": target}
        )
        item.at = target


async def _threshold(step: dict[str, Any], items: list[_Item], run: _Run) -> None:
    floor = step["min_score"]
    fallback = step.get("fallback", ABSTAIN)
    for item in items:
        assert item.prediction is not None  # check_spec: a prediction reaches every threshold
        score = item.prediction.get("score", 0.0)
        passed = score >= floor
        to = step.get("next") if passed else (None if fallback == ABSTAIN else fallback)
        item.trace.append(
            {
                "step": step["name"],
                "type": "threshold",
                "min_score": floor,
                "score": score,
                "passed": passed,
                "to": to if passed or fallback != ABSTAIN else ABSTAIN,
            }
        )
        if not passed and fallback == ABSTAIN:
            decided = (item.decided_by or {}).get("step")
            # No score in the reason: a key whose output policy hides scores reads it too.
            item.abstained = (
                f"the score of step {decided!r} is below {floor} at step {step['name']!r}"
            )
        item.at = to


async def _labels(step: dict[str, Any], items: list[_Item], run: _Run) -> None:
    mapping = step["map"]
    for item in items:
        assert item.prediction is not None
        before = item.prediction.get("label")
        item.prediction["label"] = mapping.get(before, before)
        probabilities = item.prediction.get("probabilities")
        if isinstance(probabilities, dict):
            renamed: dict[str, float] = {}
            for label, p in probabilities.items():
                key = mapping.get(label, label)
                renamed[key] = renamed.get(key, 0.0) + p  # two labels mapped to one: summed
            item.prediction["probabilities"] = renamed
            item.prediction["score"] = renamed[item.prediction["label"]]
        item.trace.append(
            {"step": step["name"], "type": "labels", "from": before, "to": item.prediction["label"]}
        )
        item.at = step.get("next")


_HANDLERS: dict[str, Callable[[dict[str, Any], list[_Item], _Run], Awaitable[None]]] = {
    "model": _model,
    "ensemble": _ensemble,
    "deidentify": _deidentify,
    "route": _route,
    "threshold": _threshold,
    "labels": _labels,
}


def _step_record(step: dict[str, Any], count: int) -> dict[str, Any]:
    record: dict[str, Any] = {"step": step["name"], "type": step["type"], "inputs": count}
    if step["type"] == "model":
        record["model"] = step["pin"]["model"]
    elif step["type"] == "ensemble":
        record["models"] = [pin["model"] for pin in step["pins"]]
    return record


async def run_pipeline(
    spec: dict[str, Any],
    texts: Sequence[str],
    *,
    predict: Predict,
    explain: Explain | None = None,
    method: Any = None,
    ran: list[dict[str, Any]] | None = None,
    key: bytes | None = None,
) -> PipelineRun:
    """Run a pinned, checked ``spec`` over ``texts``.

    Args:
        spec: The pinned spec of a pipeline version.
        texts: The inputs (already within the serving limits).
        predict: Runs one pinned model over texts.
        explain: With ``method``, explains each input's prediction with the model step
            that decided it (an ensemble's decision has no single model to explain:
            its ``explanation`` is ``None``).
        method: The explanation method (``True`` or a name), or ``None`` for none.
        ran: A list the steps are appended to as they finish (the caller audits them
            even when a later step fails).
        key: The pipeline's project key, for ``deidentify`` steps that pseudonymize
            (:func:`pseudonym_key` loads it when the spec needs it).
    """
    steps = {s["name"]: s for s in spec["steps"]}
    items = [_Item(text=t, at=entry_of(spec)) for t in texts]
    done = ran if ran is not None else []
    context = _Run(predict=predict, key=key)
    for name in topological_order(spec):
        here = [it for it in items if it.at == name]
        if not here:
            continue
        await _HANDLERS[steps[name]["type"]](steps[name], here, context)
        done.append(_step_record(steps[name], len(here)))
    results = [it.result() for it in items]
    if explain is not None and method:
        await _explain(items, results, explain, method)
    return PipelineRun(results=results, steps=done)


def pseudonym_key(spec: dict[str, Any], home: Path, project: str) -> bytes | None:
    """``project``'s pseudonymization key when a step of ``spec`` pseudonymizes, else ``None``
    (a pipeline that only masks needs no key, and must not fail for lack of one)."""
    from aimass.data.deidentify import load_project_key

    if any(s.get("mode") == "pseudonymize" for s in spec["steps"] if s["type"] == "deidentify"):
        return load_project_key(home, project)
    return None


async def _explain(
    items: list[_Item], results: list[dict[str, Any]], explain: Explain, method: Any
) -> None:
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        results[i]["explanation"] = None
        if item.pin is not None and item.raw is not None:
            groups.setdefault(item.pin["model"], []).append(i)
    for indexes in groups.values():
        pin = items[indexes[0]].pin
        assert pin is not None
        raws = [dict(items[i].raw or {}) for i in indexes]
        explained = await explain(pin, [items[i].text for i in indexes], raws, method)
        for i, out in zip(indexes, explained, strict=True):
            results[i]["explanation"] = out.get("explanation")
