"""Text generation: ``POST .../models/{ref}:generate``, whole or as server-sent events.

The request is checked, the version resolved and the model loaded, and the first
event generated, all before a byte of the response is sent: any error up to
there is the usual JSON error with its status. After that the stream is::

    event: token
    data: {"text": "Hel"}

    event: done
    data: {"done": true, "text": "...", "finish_reason": "stop", "usage": {...}, "timing": {...}}

and a failure half-way is one ``event: error`` whose data is the error object of
the JSON errors (``code``, ``type``, ``message``, ``details``, ``request_id``),
also written to the audit log as the request's failure.
Generation runs where the version's predictions run (its runner processes, or
this process when ``AIMASS_SERVE_RUNNERS=0``), so one copy of the model serves
both. Reading the events is blocking: a worker thread hands each one to the event
loop as it arrives, and when the client goes away the stream is closed, which
cancels the generation in the runner within one token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from aimass.entities import ModelVersion
from aimass.errors import AimassError, Internal
from aimass.schemas import ErrorBody, GenerateRequest, GenerateResponse
from aimass.server.deps import PredictProject, PrincipalDep, StateDep
from aimass.server.middleware import request_record
from aimass.server.quotas import charge
from aimass.server.state import ServerState

__all__ = ["router"]

log = logging.getLogger("aimass.server")

# What nginx logs for a client that closed the connection before the answer.
CLIENT_CLOSED = 499
# The generation default (GenerationPredictor.generate_stream), unless the deployment caps lower.
DEFAULT_MAX_NEW_TOKENS = 128

router = APIRouter(prefix="/v1/projects/{project}/models", tags=["predict"])

_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The generation (JSON), or with `stream: true` / `Accept: "
        "text/event-stream` server-sent events `token`, then `done` (or `error`).",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    422: {"model": ErrorBody, "description": "The model does not generate text."},
}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _wants_stream(request: Request, body: GenerateRequest) -> bool:
    return body.stream or "text/event-stream" in request.headers.get("accept", "")


class _EventStream(StreamingResponse):
    """A streaming response that always closes its event source when it ends.

    Whether the client went away (the send fails, or the disconnect listener
    cancels the stream) or the stream finished, the body iterator is closed,
    which closes the generator in its ``finally``.
    """

    #: Awaited once the stream has ended (gives back the caller's generate slot).
    on_close: Callable[[], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except ClientDisconnect:
            pass  # nobody is left to answer; the generator is closed below
        finally:
            with anyio.CancelScope(shield=True):
                # The body is the async generator ``_events``; starlette types it AsyncIterable.
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
                if self.on_close is not None:
                    await self.on_close()


class _Decoding:
    """The rest of a generation, decoded in a worker thread and handed to the event loop.

    The worker does not wait for the loop per token (one thread-safe hand-off per
    event), so decoding runs ahead of sending instead of pausing for a loop round
    trip per token, which on a busy machine costs a scheduler slice each; it waits
    only when ``BUFFERED`` events are unread (a slow client). :meth:`aclose`
    stops it within one token and closes the generator in the worker's thread.
    """

    BUFFERED = 32
    _END = object()

    def __init__(self, source: Iterator[dict[str, Any]]) -> None:
        self._source = source
        self._loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._stop = threading.Event()
        self._free = threading.Semaphore(self.BUFFERED)
        self._worker = asyncio.ensure_future(run_in_threadpool(self._run))

    def _hand(self, item: Any) -> None:
        self._loop.call_soon_threadsafe(self._events.put_nowait, item)

    def _room(self) -> bool:
        # Back-pressure: a slow reader holds the worker once BUFFERED events wait.
        while not self._free.acquire(timeout=0.1):
            if self._stop.is_set():
                return False
        return not self._stop.is_set()

    def _run(self) -> None:
        try:
            for event in self._source:
                self._hand(event)
                if not self._room():
                    break
        except Exception as exc:
            self._hand(exc)
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()  # GeneratorExit inside the decoding loop
            self._hand(self._END)

    async def next(self) -> dict[str, Any] | None:
        """The next event (``None`` after the last); a failure in the worker is raised here."""
        item = await self._events.get()
        self._free.release()
        if isinstance(item, Exception):
            raise item
        return None if item is self._END else item

    async def aclose(self) -> None:
        """Stop decoding and wait until the generator is closed (also when cancelled)."""
        self._stop.set()
        with anyio.CancelScope(shield=True):
            await self._worker


async def _events(
    request: Request,
    state: ServerState,
    version: ModelVersion,
    first: dict[str, Any],
    rest: _Decoding,
) -> AsyncIterator[bytes]:
    event: dict[str, Any] | None = first
    try:
        while event is not None:
            if event.get("done"):
                state.metrics.on_generated(version.project, version.name, event)
                yield _event("done", event)
                return
            yield _event("token", event)
            event = await rest.next()
    except Exception as exc:
        request_id = request.state.request_id
        error = exc if isinstance(exc, AimassError) else None
        if error is None:
            log.exception("generation failed mid-stream", extra={"request_id": request_id})
            error = Internal(f"internal error; quote request id {request_id} to the operator")
        await _audit_failure(request, state, str(error.code))
        yield _event("error", {**error.to_dict(), "request_id": request_id})
    finally:
        # Completion, failure and disconnect alike stop the worker.
        await rest.aclose()


async def _final(request: Request, first: dict[str, Any], rest: _Decoding) -> dict[str, Any] | None:
    """The final event of a generation, or ``None`` once the client has gone away."""
    event: dict[str, Any] | None = first
    try:
        while event is not None and not event.get("done"):
            if await request.is_disconnected():
                return None
            event = await rest.next()
        return event
    finally:
        await rest.aclose()


async def _audit_failure(request: Request, state: ServerState, code: str) -> None:
    record = request_record(
        request.scope, 200, await request.body(), outcome=code, details={"phase": "stream"}
    )
    try:
        await asyncio.wrap_future(state.workspace.audit.writer.submit(record))
    except Exception:
        log.exception("audit write failed", extra={"request_id": record.request_id})


@router.post(
    "/{ref}:generate",
    name="models.generate",
    response_model=GenerateResponse,
    responses=_STREAM_DOC,
)
async def generate(
    ref: str,
    body: GenerateRequest,
    request: Request,
    project: PredictProject,
    principal: PrincipalDep,
    state: StateDep,
) -> Any:
    """Generate text from a prompt with a causal-LM or seq2seq ``NAME@VERSION``/``NAME@ALIAS``.

    Same keys, scopes (``predict``), limits and audit as predict; the prompt itself is
    never logged, only the SHA-256 of the request body. A stream holds one of the key's
    ``AIMASS_MAX_STREAMS_PER_KEY`` slots until it ends; a call spends one input of the
    key's query budget (generated text has no scores: output policies leave it alone).
    """
    options = body.options()
    options.setdefault("max_new_tokens", min(DEFAULT_MAX_NEW_TOKENS, state.settings.max_new_tokens))
    state.workspace.serving.check_generation(body.prompt, options)
    slot = principal.key_id or principal.actor
    await state.throttle.run(state.throttle.acquire_stream, slot, "generate")
    released = False

    async def release() -> None:
        nonlocal released
        if not released:
            released = True
            await state.throttle.give_back(slot, "generate")

    try:
        await charge(state, principal, 1)  # a prompt is one input of the key's query budget
        response = await _generate(ref, body, request, project, state, options)
    except BaseException:
        await release()
        raise
    if isinstance(response, _EventStream):
        response.on_close = release  # the slot is held until the stream ends
    else:
        await release()
    return response


async def _generate(
    ref: str,
    body: GenerateRequest,
    request: Request,
    project: str,
    state: ServerState,
    options: dict[str, Any],
) -> Any:
    version = await state.resolve(ref, project)
    backend = await state.backend(version)  # runners, or this process: the predict path
    headers = {"x-aimass-model": version.name, "x-aimass-version": str(version.version)}
    source = backend.generate_stream(body.prompt, options)
    # The first event runs the prompt checks and the prefill: errors there are still JSON.
    first = await run_in_threadpool(next, source, None)
    assert first is not None, "generate_stream always ends with a final event"
    rest = _Decoding(source)
    if _wants_stream(request, body):
        return _EventStream(
            _events(request, state, version, first, rest),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"},
        )
    final = await _final(request, first, rest)
    if final is None:
        return Response(status_code=CLIENT_CLOSED)
    state.metrics.on_generated(project, version.name, final)
    result = GenerateResponse(**{k: v for k, v in final.items() if k != "done"})
    return JSONResponse(result.model_dump(mode="json"), headers=headers)
