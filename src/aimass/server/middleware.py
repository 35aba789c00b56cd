"""The request pipeline every call goes through, as one plain ASGI middleware.

In order: a request id; the ``Host`` and ``Origin`` checks (DNS rebinding and
cross-site requests from browsers); JSON-only bodies (any other content type,
pickle included, is a 415 before anything parses it); authentication from the
headers alone (a body sent to an authenticated route without a valid key is
never read, a client that keeps failing is throttled, and each key's request
rate is counted); the body-size limit, applied while the body streams in
(small until the key checks out); a JSON body whose text holds a lone UTF-16
surrogate is a 400 naming the field; then the app, with unhandled exceptions
turned into a 500 that names the request id (and logged with its traceback);
the web console's paths (``/`` and ``/console/...``) take form bodies and a session
cookie in place of JSON and a key (:mod:`aimass.server.console`), under the same
host, origin, body-size and audit rules;
then, before the response leaves, the audit record (every state change and
every predict call, plus refused requests and the reads a route marks, such as
an export) and the request metrics.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aimass.errors import (
    AimassError,
    Internal,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    UnsupportedMediaType,
)
from aimass.server.console.session import COOKIE as SESSION_COOKIE
from aimass.server.console.urls import is_console_path
from aimass.server.errors import error_response
from aimass.server.metrics_access import METRICS_PATH, MetricsGuard
from aimass.server.state import ServerState
from aimass.server.throttle import client_address
from aimass.store import AuditRecord
from aimass.texts import check_json_unicode
from aimass.workspace.access import parse_key
from aimass.workspace.audit import input_hash

__all__ = ["RequestPipeline", "request_record"]

log = logging.getLogger("aimass.server")

_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_SAFE = {"GET", "HEAD", "OPTIONS"}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _has_body(headers: dict[str, str]) -> bool:
    return headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers


JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def _check_body_type(headers: dict[str, str], wanted: str, what: str) -> None:
    """415 unless a request with a body declares ``wanted`` (pickle and every other type
    is refused before anything parses it)."""
    declared = headers.get("content-type")
    if declared is None and not _has_body(headers):
        return
    if (declared or "").split(";", 1)[0].strip().lower() != wanted:
        raise UnsupportedMediaType(
            f"{what}, got {(declared or 'none')[:100]!r}",
            content_type=(declared or "")[:100],
        )


def _cookie(headers: dict[str, str], name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _hostname(host: str) -> str:
    if host.startswith("["):  # [::1]:8600
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class RequestPipeline:
    """Guards, body limit, error safety net, audit and metrics (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, *, state: ServerState, public_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.state = state
        settings = state.settings
        self.allowed_hosts = _LOOPBACK | {h.lower() for h in settings.allowed_hosts}
        self.allowed_origins = set(settings.allowed_origins)
        self.max_body = settings.max_body_bytes
        self.max_anonymous_body = min(settings.max_anonymous_body_bytes, self.max_body)
        self.public_paths = public_paths
        self.metrics_guard = MetricsGuard(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = _headers(scope)
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        body = b""
        console = is_console_path(scope["path"])
        try:
            self._check_origin(headers)
            if console:  # the web console: forms and a session cookie, not JSON and keys
                _check_body_type(headers, FORM, f"console forms are {FORM}")
                limit = await self._authenticate_session(scope, headers)
            else:
                _check_body_type(
                    headers, JSON, f"request bodies must be JSON (Content-Type: {JSON})"
                )
                limit = await self._authenticate(scope, headers)
            body = await self._read_body(receive, headers, limit)
            check_json_unicode(body)
        except AimassError as exc:
            state["error_code"] = str(exc.code)
            state["throttled"] = isinstance(exc, RateLimited)
            await self._respond(scope, send, error_response(exc, request_id), body, started)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # the disconnect message
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        sent_start = False

        async def send_wrapper(message: Message) -> None:
            nonlocal sent_start
            if message["type"] == "http.response.start":
                sent_start = True
                message.setdefault("headers", [])
                message["headers"].append((b"x-request-id", request_id.encode()))
                await self._after(scope, message["status"], body, started)
            await send(message)

        try:
            await self.app(scope, replay, send_wrapper)
        except Exception:
            log.exception(
                "unhandled error",
                extra={"request_id": request_id, "path": scope["path"][:200]},
            )
            if sent_start:
                return
            error = Internal(f"internal error; quote request id {request_id} to the operator")
            state["error_code"] = str(error.code)
            await self._respond(scope, send, error_response(error, request_id), body, started)

    # -- guards ---------------------------------------------------------------------------

    def _check_origin(self, headers: dict[str, str]) -> None:
        host = headers.get("host", "")
        if "*" not in self.allowed_hosts and _hostname(host).lower() not in self.allowed_hosts:
            raise PermissionDenied(
                f"this server does not answer for host {host[:100]!r}; the operator can add it "
                "to AIMASS_ALLOWED_HOSTS",
                host=host[:100],
            )
        origin = headers.get("origin")
        if origin is None or origin in self.allowed_origins:
            return
        if origin in (f"http://{host}", f"https://{host}"):
            return  # the server's own pages
        raise PermissionDenied(
            f"requests from the web origin {origin[:100]!r} are refused; the operator can allow "
            "it in AIMASS_ALLOWED_ORIGINS",
            origin=origin[:100],
        )

    async def _authenticate_session(self, scope: Scope, headers: dict[str, str]) -> int:
        """A console request: the principal of its session cookie, if any (pages without
        one redirect to sign-in); the body limit is the anonymous one until signed in."""
        session = self.state.console_sessions.read(_cookie(headers, SESSION_COOKIE))
        if session is None:
            return self.max_anonymous_body
        try:
            principal = await run_in_threadpool(
                self.state.workspace.keys.principal_of, session.key_id
            )
        except Unauthenticated:
            return self.max_anonymous_body  # revoked or expired since: sign in again
        scope["state"]["principal"] = principal
        scope["state"]["session"] = session
        await self.state.workspace.limits.prefetch(f"key:{session.key_id}")
        await self.state.throttle.run(self.state.throttle.request, session.key_id)
        return self.max_body

    async def _authenticate(self, scope: Scope, headers: dict[str, str]) -> int:
        """Check the key from the headers alone; the body limit that applies after.

        No ``Authorization`` header: a public path reads a small body; any other
        path is refused at once when a body is coming (else the route answers 401
        or 404 itself). A malformed or wrong key is 401 and counted against the
        client address and the key id; a client past those counts is 429 before its
        key is even looked at. A valid key leaves its principal in the request state
        (the route dependencies use it) and raises the limit to ``max_body_bytes``.

        On a public path a key is optional: one that fails (counted all the same, so
        ``/metrics`` is no oracle for guessing keys) leaves the request anonymous.
        ``/metrics`` beyond loopback needs its token or a key (:class:`MetricsGuard`).
        """
        authorization = headers.get("authorization")
        if scope["path"] == METRICS_PATH:  # its own rule: server/metrics_access.py
            await self.metrics_guard.authenticate(
                scope, authorization, throttle=self.state.throttle, check_key=self._check_key
            )
            return self.max_anonymous_body
        public = scope["path"] in self.public_paths
        if authorization is None:
            if not public and _has_body(headers):
                # Counted like a wrong key: an address sending keyless bodies in a loop
                # is 429 past the limit, and is audited once per decision, not per body.
                throttle = self.state.throttle
                await throttle.run(throttle.refuse_credentialless, client_address(scope))
                raise Unauthenticated(
                    "this endpoint needs an API key: send 'Authorization: Bearer aimass_...' "
                    "(the request body is not read without one)"
                )
            return self.max_anonymous_body
        if not public:
            await self._check_key(scope, authorization)
            return self.max_body
        try:
            await self._check_key(scope, authorization)
        except (Unauthenticated, RateLimited):
            scope["state"].pop("principal", None)
        return self.max_anonymous_body

    async def _check_key(self, scope: Scope, authorization: str) -> None:
        """Authenticate ``authorization`` (throttled, counted); the principal into the state."""
        state = scope["state"]
        address = client_address(scope)
        scheme, _, key = authorization.strip().partition(" ")
        key = key.strip()
        key_id = parse_key(key) if scheme.lower() == "bearer" else None
        state["key_id"] = key_id
        throttle = self.state.throttle
        # A throttled address is refused before its key id costs a lookup; then the key's
        # stored limits, which the throttle reads on this loop (so do the route's predict
        # and stream slots), are cached from a worker thread.
        await throttle.run(throttle.check_auth, address, None)
        if key_id is not None:
            await self.state.workspace.limits.prefetch(f"key:{key_id}")
            await throttle.run(throttle.check_key, key_id)
        if key_id is None:
            await throttle.run(throttle.auth_failed, address, None)
            raise Unauthenticated(
                "the Authorization header is not 'Bearer aimass_<id>_<secret>'; send the API "
                "key exactly as 'aimass keys create' printed it"
            )
        keys = self.state.workspace.keys
        try:
            principal = keys.authenticate_cached(key)
            if principal is None:
                principal = await run_in_threadpool(keys.authenticate, key)
        except Unauthenticated:
            await throttle.run(throttle.auth_failed, address, key_id)
            raise
        state["principal"] = principal
        if principal.key_id is not None:
            await throttle.run(throttle.request, principal.key_id)

    async def _read_body(self, receive: Receive, headers: dict[str, str], limit: int) -> bytes:
        """The body, read as it streams in and refused once it passes ``limit`` (413).

        A declared ``Content-Length`` over the limit is refused before a byte is read;
        a chunked body (or one that lies about its length) is refused as soon as the
        bytes received cross the limit, so at most ``limit`` bytes are ever held.
        """
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large(int(declared), limit)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large(size, limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _too_large(self, size: int, limit: int) -> PayloadTooLarge:
        if limit == self.max_body:
            setting = "AIMASS_MAX_BODY_BYTES"
        else:
            setting = "AIMASS_MAX_ANONYMOUS_BODY_BYTES, before authentication"
        return PayloadTooLarge(
            f"the request body is over the limit of {limit:,} bytes ({setting}); got at "
            f"least {size:,}",
            limit=limit,
        )

    # -- after the app -----------------------------------------------------------------------

    async def _respond(
        self, scope: Scope, send: Send, response: Any, body: bytes, started: float
    ) -> None:
        await self._after(scope, response.status_code, body, started)

        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, no_body, send)

    async def _after(self, scope: Scope, status: int, body: bytes, started: float) -> None:
        template = getattr(scope.get("route"), "path", "unmatched")
        method = scope["method"]
        self.state.metrics.requests.labels(method, template, str(status)).inc()
        self.state.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
        # A safe method is audited when refused, or when its route asks (an export).
        if method in _SAFE and status not in (401, 403) and not scope["state"].get("audit"):
            return
        if scope["state"].get("throttled"):
            return  # the limit's decision was audited once (server/throttle.py), not each refusal
        record = request_record(scope, status, body)
        try:
            future = self.state.workspace.audit.writer.submit(record)
            await asyncio.wrap_future(future)
        except Exception:
            log.exception("audit write failed", extra={"request_id": record.request_id})


def request_record(
    scope: Scope,
    status: int,
    body: bytes,
    *,
    outcome: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditRecord:
    """The audit record of a request: who, what, the outcome and a hash of the body.

    The outcome is ``ok`` below status 400, else the error code the handlers left in
    the request state; ``outcome`` overrides it (a stream that fails after its 200).
    """
    state = scope.get("state", {})
    principal = state.get("principal")
    params = scope.get("path_params", {})
    if outcome is None:
        outcome = "ok" if status < 400 else str(state.get("error_code", status))
    return AuditRecord(
        actor=principal.actor if principal else "anonymous",
        key_id=principal.key_id if principal else state.get("key_id"),
        project=params.get("project") if isinstance(params.get("project"), str) else None,
        action=getattr(scope.get("route"), "name", None) or f"{scope['method']} (no route)",
        resource=scope["path"][:2000],
        outcome=outcome,
        status=status,
        request_id=state.get("request_id"),
        input_hash=input_hash(body),
        # A route may add what its action changed (a key's budget, policy and limits).
        details={"method": scope["method"], **state.get("audit_details", {}), **(details or {})},
    )
