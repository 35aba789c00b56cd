"""Console pages that act: jobs (live), training, the playground, the audit log, keys."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from aimass.errors import InvalidArgument, PermissionDenied
from aimass.schemas import JobOut
from aimass.server.console import train_form
from aimass.server.console._render import (
    HEADERS,
    form,
    form_body,
    guard,
    page,
    principal,
    require_csrf,
    state,
)
from aimass.server.console.urls import PREFIX

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

SCOPES = ("read", "predict", "data:write", "train", "models:write", "admin")
EVENT_SECONDS = 1.0  # how often a job's page hears from the server while it runs
AUDIT_ROWS = 200  # events the audit page shows at once


@router.get(PREFIX + "/p/{project}/jobs/{job_id}", name="console.job")
@guard
async def job(request: Request, project: str, job_id: str) -> Response:
    """A job: status, progress, metrics and logs, updated live while it runs."""
    principal(request).require("read", project=project)
    ws = state(request).workspace
    found = await run_in_threadpool(ws.jobs.get, job_id, project=project)
    logs = await run_in_threadpool(ws.jobs.logs, job_id, project=project)
    can_cancel = principal(request).can("train", project=project)
    metrics = {k: v for k, v in found.metrics.items() if k != "curve"}  # the chart shows it
    return page(
        request,
        "job.html",
        project=project,
        job=found,
        logs=logs,
        metrics=metrics,
        can_cancel=can_cancel,
    )


@router.get(PREFIX + "/p/{project}/jobs/{job_id}/status", name="console.job_status")
@guard
async def job_status(request: Request, project: str, job_id: str, after: int = 0) -> Response:
    """The job and its log lines after ``after``, as JSON."""
    principal(request).require("read", project=project)
    body = await _job_update(state(request).workspace, project, job_id, after)
    return JSONResponse(body, headers=HEADERS)


@router.get(PREFIX + "/p/{project}/jobs/{job_id}/events", name="console.job_events")
@guard
async def job_events(request: Request, project: str, job_id: str, after: int = 0) -> Response:
    """Server-sent events for the job page: the job and its new log lines about once a
    second while it changes, until it has finished (or the page goes away)."""
    principal(request).require("read", project=project)
    ws = state(request).workspace
    first = await _job_update(ws, project, job_id, after)  # a wrong id is a 404 page here

    async def events() -> AsyncIterator[bytes]:
        update, seen, last = first, after, ""
        while True:
            text = json.dumps(update)
            if text != last:
                yield f"data: {text}\n\n".encode()
                last = text
            if update["job"]["finished"] or await request.is_disconnected():
                return
            await asyncio.sleep(EVENT_SECONDS)
            seen = max([seen, *(line["seq"] for line in update["logs"])])
            update = await _job_update(ws, project, job_id, seen)

    headers = {**HEADERS, "x-accel-buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


async def _job_update(ws: Any, project: str, job_id: str, after: int) -> dict[str, Any]:
    found = await run_in_threadpool(ws.jobs.get, job_id, project=project)
    lines = await run_in_threadpool(ws.jobs.logs, job_id, project=project, after=after)
    out = JobOut.from_entity(found)
    return {
        "job": {**out.model_dump(mode="json"), "finished": out.finished},
        "logs": [
            {"seq": line.seq, "text": f"{line.time:%H:%M:%S} {line.message}"} for line in lines
        ],
    }


@router.post(PREFIX + "/p/{project}/jobs/{job_id}/cancel", name="console.cancel_job")
@guard
async def cancel_job(request: Request, project: str, job_id: str) -> Response:
    """Cancel a queued or running job."""
    principal(request).require("train", project=project)
    require_csrf(request, await form(request))
    await run_in_threadpool(state(request).workspace.jobs.cancel, job_id, project=project)
    return RedirectResponse(f"{PREFIX}/p/{project}/jobs/{job_id}", status_code=303)


@router.get(PREFIX + "/p/{project}/train", name="console.train_page")
@guard
async def train_page(request: Request, project: str) -> Response:
    """The training form (needs the train scope)."""
    principal(request).require("train", project=project)
    ws = state(request).workspace
    datasets = await run_in_threadpool(ws.datasets.list, project=project)
    bases = await run_in_threadpool(ws.bases.list, project=project)
    models = await run_in_threadpool(ws.models.list, project=project)
    from aimass.training.tasks import list_tasks

    tasks = sorted(list_tasks(), key=lambda t: t.name != "classification")
    return page(
        request,
        "train.html",
        project=project,
        datasets=datasets,
        bases=bases,
        tasks=tasks,
        task_options=train_form.task_options(),
        models=models,
    )


@router.post(PREFIX + "/p/{project}/train", name="console.train")
@guard
async def train(request: Request, project: str) -> Response:
    """Queue a training job from the form; the browser follows it on the job's page."""
    from aimass.jobs.train import TrainSpec

    me = principal(request)
    fields = await form(request)
    require_csrf(request, fields)
    me.require("train", project=project, model=fields.get("model") or None)
    config, privacy = train_form.parse(fields)
    alias = fields.get("alias") or None
    ws = state(request).workspace
    if alias:
        ws.models.check_alias_move(me, project, fields.get("model", ""), alias)
    spec = TrainSpec(
        dataset=fields.get("dataset", ""),
        base=fields.get("base") or None,
        model=fields.get("model", ""),
        config=config,
        alias=alias,
        privacy=privacy,
    )
    submitted = await run_in_threadpool(ws.jobs.submit_training, spec, project=project)
    return RedirectResponse(f"{PREFIX}/p/{project}/jobs/{submitted.id}", status_code=303)


@router.get(PREFIX + "/p/{project}/playground", name="console.playground")
@guard
async def playground(request: Request, project: str) -> Response:
    """Try a model: predictions, with per-word explanation highlighting."""
    principal(request).require("read", project=project)
    models = await run_in_threadpool(state(request).workspace.models.list, project=project)
    return page(request, "playground.html", project=project, models=models, results=None)


@router.post(PREFIX + "/p/{project}/playground", name="console.predict")
@guard
async def predict(request: Request, project: str) -> Response:
    """Predict the posted texts with the chosen model: the API's own predict call (input
    limits, stream slots, the key's query budget and output policy, micro-batching,
    explanations in the version's runner), reached with the session instead of a key."""
    from aimass.schemas import PredictRequest
    from aimass.server.routes.models import predict as predict_route

    me = principal(request)
    fields = await form(request)
    require_csrf(request, fields)
    ref = fields.get("model", "")
    me.require("predict", project=project, model=ref.partition("@")[0] or None)
    app = state(request)
    texts = [line.strip() for line in fields.get("texts", "").splitlines() if line.strip()]
    explain = fields.get("explain") or None
    body = form_body(PredictRequest, "prediction", inputs=texts, explain=explain)
    answer = await predict_route(ref, body, project, me, app)
    models = await run_in_threadpool(app.workspace.models.list, project=project)
    rows = [
        (text, result, _highlights(result))
        for text, result in zip(texts, answer.predictions, strict=True)
    ]
    return page(
        request,
        "playground.html",
        project=project,
        models=models,
        results=rows,
        chosen=ref,
        texts=fields.get("texts", ""),
        explain=explain,
        answer=answer,
    )


@router.post(PREFIX + "/p/{project}/generate", name="console.generate")
@guard
async def generate(request: Request, project: str) -> Response:
    """Generate from the posted prompt, streamed as server-sent events to the page's script:
    the API's own generate call (limits, stream slots, query budget, audit and the
    version's runner), reached with the session instead of a key."""
    from aimass.schemas import GenerateRequest
    from aimass.server.routes.generate import generate as generate_route

    me = principal(request)
    fields = await form(request)
    require_csrf(request, fields)
    ref = fields.get("model", "")
    me.require("predict", project=project, model=ref.partition("@")[0] or None)
    body = form_body(
        GenerateRequest,
        "generation",
        prompt=fields.get("prompt", ""),
        max_new_tokens=fields.get("max_new_tokens") or 64,
        temperature=fields.get("temperature") or 0,
        stream=True,
    )
    response: Response = await generate_route(ref, body, request, project, me, state(request))
    return response


@router.get(PREFIX + "/audit", name="console.audit")
@guard
async def audit(
    request: Request,
    project: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    resource: str | None = None,
    since: str | None = None,
    until: str | None = None,
    before: int | None = None,
) -> Response:
    """The audit log, newest first (the last 1,000 events of the project and action
    asked for, then filtered by actor, resource and time; an all-projects admin key)."""
    _require_global_admin(principal(request))
    start, end = _moment(since, "since"), _moment(until, "until")
    found = await run_in_threadpool(
        state(request).workspace.audit.list,
        project=project or None,
        action=action or None,
        before=before,
        limit=1000,
    )
    found = [
        e
        for e in found
        if (not actor or actor in e.actor)
        and (not resource or resource in e.resource)
        and (start is None or e.time >= start)
        and (end is None or e.time <= end)
    ][:AUDIT_ROWS]
    filters = {
        "project": project or "",
        "action": action or "",
        "actor": actor or "",
        "resource": resource or "",
        "since": since or "",
        "until": until or "",
    }
    return page(request, "audit.html", events=found, filters=filters, verified=None)


def _moment(text: str | None, field: str) -> datetime | None:
    """A filter's time: ISO 8601 (``2026-12-01`` or ``2026-12-01T09:30``), UTC if unzoned."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            f"{field} {text[:40]!r} is not a date or time; use 2026-12-01 or 2026-12-01T09:30",
            field=field,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.post(PREFIX + "/audit/verify", name="console.verify_audit")
@guard
async def verify_audit(request: Request) -> Response:
    """Recompute the hash chain and show the result."""
    _require_global_admin(principal(request))
    require_csrf(request, await form(request))
    result = await run_in_threadpool(state(request).workspace.audit.verify)
    filters = dict.fromkeys(("project", "action", "actor", "resource", "since", "until"), "")
    return page(request, "audit.html", events=[], filters=filters, verified=result)


@router.get(PREFIX + "/p/{project}/keys", name="console.keys")
@guard
async def keys(request: Request, project: str) -> Response:
    """The project's keys (admin scope)."""
    principal(request).require("admin", project=project)
    found = await run_in_threadpool(state(request).workspace.keys.list, project=project)
    return page(request, "keys.html", project=project, keys=found, scopes=SCOPES, created=None)


@router.post(PREFIX + "/p/{project}/keys", name="console.create_key")
@guard
async def create_key(request: Request, project: str) -> Response:
    """Create a key; its secret is shown on this page once and never again."""
    me = principal(request)
    me.require("admin", project=project)
    fields = await form(request)
    require_csrf(request, fields)
    chosen = [s for s in SCOPES if fields.get(f"scope_{s}")]
    days = fields.get("expires_in_days", "").strip()
    ws = state(request).workspace
    record, secret = await run_in_threadpool(
        lambda: ws.keys.create(
            fields.get("name", "").strip(),
            project=project,
            scopes=chosen,
            expires_in_days=float(days) if days else None,
            created_by=me.actor,
        )
    )
    found = await run_in_threadpool(ws.keys.list, project=project)
    created = {"record": record, "secret": secret}
    return page(request, "keys.html", project=project, keys=found, scopes=SCOPES, created=created)


@router.post(PREFIX + "/p/{project}/keys/{key_id}/revoke", name="console.revoke_key")
@guard
async def revoke_key(request: Request, project: str, key_id: str) -> Response:
    """Revoke a key (refused from its next request on)."""
    principal(request).require("admin", project=project)
    require_csrf(request, await form(request))
    await run_in_threadpool(state(request).workspace.keys.revoke, key_id, project=project)
    return RedirectResponse(f"{PREFIX}/p/{project}/keys", status_code=303)


def _require_global_admin(me: Any) -> None:
    if not me.is_global_admin:
        raise PermissionDenied("the audit log is for an all-projects admin key")


def _highlights(result: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The explained text, highlighted: one ``(caption, pieces)`` per explanation (a
    classifier's one, uncaptioned; a tagger's one per entity, captioned with it; a
    masked LM's one per mask, captioned with its fill; a causal LM's one, captioned
    with the text it generated)."""
    explanation = result.get("explanation")
    if not isinstance(explanation, dict):
        return []
    text = str(explanation.get("text", ""))
    if "entities" in explanation:
        caption = (
            "{text} → {label}"
            if "masks" in result
            else "→ {label}"
            if "generated_text" in result
            else "{label}: {text}"
        )
        return [
            (caption.format(**e), _pieces(text, e.get("words") or []))
            for e in explanation.get("entities") or []
            if isinstance(e, dict)
        ]
    return [("", _pieces(text, explanation.get("words") or []))]


def _pieces(text: str, words: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``text`` as ``(piece, css class)``: ``pos3`` .. ``neg3`` by the words' weights."""
    top = max((abs(float(w.get("score", 0))) for w in words), default=0.0) or 1.0
    pieces, at = [], 0
    for word in words:
        start, end = int(word.get("start", at)), int(word.get("end", at))
        if start > at:
            pieces.append((text[at:start], ""))
        score = float(word.get("score", 0)) / top
        level = min(3, int(abs(score) * 3.999))
        pieces.append(
            (text[start:end], f"{'pos' if score >= 0 else 'neg'}{level}" if level else "")
        )
        at = end
    if at < len(text):
        pieces.append((text[at:], ""))
    return pieces
