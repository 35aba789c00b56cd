"""One error shape for every failure: ``{"error": {"code", "type", "message", "details"}}``.

Codes map to statuses through :data:`aimass.errors.HTTP_STATUS` only; FastAPI's
own validation and routing errors are translated into the same tree.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from aimass.errors import (
    AimassError,
    Internal,
    InvalidArgument,
    MethodNotAllowed,
    NotFound,
    RateLimited,
)

__all__ = ["error_response", "install_error_handlers"]

log = logging.getLogger("aimass.server")


def error_response(exc: AimassError, request_id: str | None = None) -> JSONResponse:
    """The JSON response for ``exc``, with the status its code maps to."""
    body = {"error": {**exc.to_dict(), "request_id": request_id}}
    headers = {"x-request-id": request_id} if request_id else None
    if exc.http_status == 401:
        headers = {**(headers or {}), "www-authenticate": "Bearer"}
    if isinstance(exc, RateLimited):
        headers = {**(headers or {}), "retry-after": str(exc.retry_after)}
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


def _request_id(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id")


def _remember(request: Request, exc: AimassError) -> None:
    # The audit middleware records the code as the outcome (and skips the refusals of a
    # rate limit: their decision is audited once, server/throttle.py).
    state = request.scope.setdefault("state", {})
    state["error_code"] = str(exc.code)
    state["throttled"] = isinstance(exc, RateLimited)


async def _aimass(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AimassError)
    _remember(request, exc)
    if exc.http_status == 500:
        # An Internal raised on purpose is still a bug to find: log where it came from.
        log.error(
            "internal error",
            exc_info=exc,
            extra={"request_id": _request_id(request), "path": request.url.path[:200]},
        )
    return error_response(exc, _request_id(request))


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems: list[dict[str, Any]] = [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()[:20]
    ]
    first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"]) or "request"
    error = InvalidArgument(f"{where}: {first['msg']}", problems=problems)
    _remember(request, error)
    return error_response(error, _request_id(request))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    error: AimassError
    if exc.status_code == 404:
        error = NotFound(f"no such endpoint: {request.method} {request.url.path[:200]}")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path[:200]}")
    elif exc.status_code < 500:
        error = InvalidArgument(str(exc.detail))
    else:
        error = Internal(str(exc.detail))
    _remember(request, error)
    return error_response(error, _request_id(request))


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(AimassError, _aimass)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
