"""The console's comparison of two versions of a model, side by side.

What changed between the versions — data, base, every training setting, the privacy
record — and what it did to every metric, with the difference. Settings that are the
same in both are listed apart, folded, so the page leads with what differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from aimass.entities import ModelVersion
from aimass.errors import InvalidArgument, NotFound
from aimass.server.console._render import guard, page, principal, state
from aimass.server.console.urls import PREFIX

__all__ = ["Comparison", "compare_versions", "router"]

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Comparison:
    """Two versions side by side.

    Attributes:
        record: ``(what, a, b)`` rows of where each came from (dataset, base, job, ...).
        metrics: ``(split, metric, a, b, b - a)``; a side without the number is ``None``.
        changed: ``(setting, a, b)`` for the training settings that differ.
        same: ``(setting, value)`` for those that do not.
        privacy: ``(field, a, b)`` of the privacy records (empty when neither has one).
    """

    record: list[tuple[str, str, str]]
    metrics: list[tuple[str, str, float | None, float | None, float | None]]
    changed: list[tuple[str, str, str]]
    same: list[tuple[str, str]]
    privacy: list[tuple[str, str, str]]


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _numbers(version: ModelVersion) -> dict[tuple[str, str], float]:
    return {
        (split, metric): float(value)
        for split, values in version.metrics.items()
        if isinstance(values, dict)
        for metric, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def compare_versions(a: ModelVersion, b: ModelVersion) -> Comparison:
    """What differs between versions ``a`` and ``b`` of one model (see :class:`Comparison`)."""
    record = [
        ("task", a.task, b.task),
        ("aliases", ", ".join(a.aliases) or "-", ", ".join(b.aliases) or "-"),
        ("created", f"{a.created_at:%Y-%m-%d %H:%M}", f"{b.created_at:%Y-%m-%d %H:%M}"),
        ("dataset", a.lineage.dataset or "-", b.lineage.dataset or "-"),
        ("dataset digest", a.lineage.dataset_digest[:12], b.lineage.dataset_digest[:12]),
        ("base", a.lineage.base or "-", b.lineage.base or "-"),
        ("job", a.lineage.job_id or "-", b.lineage.job_id or "-"),
        ("aimass", a.lineage.code_version, b.lineage.code_version),
        ("bundle digest", a.digest[:12], b.digest[:12]),
    ]
    first, second = _numbers(a), _numbers(b)
    order = {"test": 0, "validation": 1}
    keys = sorted(set(first) | set(second), key=lambda k: (order.get(k[0], 2), k))
    metrics = [
        (
            split,
            metric,
            first.get((split, metric)),
            second.get((split, metric)),
            second[(split, metric)] - first[(split, metric)]
            if (split, metric) in first and (split, metric) in second
            else None,
        )
        for split, metric in keys
    ]
    changed, same = [], []
    for setting in sorted(set(a.lineage.config) | set(b.lineage.config)):
        left, right = a.lineage.config.get(setting), b.lineage.config.get(setting)
        if left == right:
            same.append((setting, _shown(left)))
        else:
            changed.append((setting, _shown(left), _shown(right)))
    privacy_a, privacy_b = a.privacy or {}, b.privacy or {}
    privacy = [
        (field, _shown(privacy_a.get(field)), _shown(privacy_b.get(field)))
        for field in sorted(set(privacy_a) | set(privacy_b))
        if not isinstance(privacy_a.get(field, privacy_b.get(field)), dict | list)
    ]
    return Comparison(record, metrics, changed, same, privacy)


@router.get(PREFIX + "/p/{project}/models/{name}/compare", name="console.compare_models")
@guard
async def compare(
    request: Request, project: str, name: str, a: int | None = None, b: int | None = None
) -> Response:
    """Versions ``a`` and ``b`` of a model side by side (default: the two newest)."""
    principal(request).require("read", project=project)
    ws = state(request).workspace
    versions = await run_in_threadpool(ws.models.versions, name, project=project)
    if not versions:
        raise NotFound(f"model {name!r} does not exist in project {project!r}")
    if len(versions) < 2:
        raise InvalidArgument(f"model {name!r} has one version; there is nothing to compare")
    by_number = {v.version: v for v in versions}
    a = versions[-2].version if a is None else a
    b = versions[-1].version if b is None else b
    for chosen in (a, b):
        if chosen not in by_number:
            raise NotFound(
                f"model {name!r} has no version {chosen}; versions: "
                + ", ".join(str(v) for v in by_number)
            )
    return page(
        request,
        "model_compare.html",
        project=project,
        name=name,
        versions=versions,
        a=by_number[a],
        b=by_number[b],
        diff=compare_versions(by_number[a], by_number[b]),
    )
