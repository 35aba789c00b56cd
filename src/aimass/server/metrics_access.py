"""Who may scrape ``/metrics``, and whether the scrape names tenants.

On a server that listens on loopback only (``bind_host``, set by ``aimass serve
--host``), anyone who can connect may scrape, as before: an anonymous scrape gets
every series summed over the ``project`` and ``model`` labels. Beyond loopback a
scrape needs ``Authorization: Bearer <metrics token>`` (``AIMASS_METRICS_TOKEN``)
or an API key with the ``metrics`` (or ``admin``) scope. Anything else is a 401
(a valid key without the scope, 403), counted like every failed authentication,
so the token cannot be guessed faster than the auth-failure limits allow and a
throttled client is refused before its token is even compared.

Per-tenant series go to the metrics token and to all-projects admin keys, unless
``metrics_tenant_labels`` is off. A project's key with the ``metrics`` scope
gets the tenant-free series: it must not learn other projects' names.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Scope

from aimass.errors import PermissionDenied, RateLimited, Unauthenticated
from aimass.server.listen import is_loopback
from aimass.server.throttle import Throttle, client_address
from aimass.settings import Settings

__all__ = ["METRICS_PATH", "MetricsGuard", "scrape_tenants"]

METRICS_PATH = "/metrics"
_SCRAPE_SCOPES = frozenset({"metrics", "admin"})
_NEEDS_CREDENTIALS = (
    "this server listens beyond loopback, so /metrics needs 'Authorization: Bearer <metrics "
    "token>' (AIMASS_METRICS_TOKEN) or an API key with the metrics scope ('aimass keys "
    "create prometheus --scope metrics')"
)


def _digest(token: str) -> bytes:
    # Compare digests, so the comparison takes the same time whatever the lengths.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _remote_ip(host: Any) -> bool:
    """Whether ``host`` (the address a connection arrived on) is a non-loopback IP."""
    try:
        return not ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False  # not an address (a unix socket, a test transport)


class MetricsGuard:
    """The ``/metrics`` access rule of one server (see the module docstring).

    Args:
        settings: ``bind_host``, ``metrics_token``.
    """

    def __init__(self, settings: Settings) -> None:
        token = settings.metrics_token
        self._token = _digest(token.get_secret_value()) if token is not None else None
        self.beyond_loopback = not is_loopback(settings.bind_host)

    def guarded(self, scope: Scope) -> bool:
        """Whether this request needs credentials: the server listens beyond loopback
        (or, served by something other than ``aimass serve``, the connection arrived
        on a non-loopback address)."""
        server = scope.get("server")
        return self.beyond_loopback or (server is not None and _remote_ip(server[0]))

    def token_matches(self, authorization: str) -> bool:
        """Whether ``authorization`` is ``Bearer <metrics token>`` (constant time)."""
        if self._token is None:
            return False
        scheme, _, given = authorization.strip().partition(" ")
        same = hmac.compare_digest(_digest(given.strip()), self._token)
        return same and scheme.lower() == "bearer"

    async def authenticate(
        self,
        scope: Scope,
        authorization: str | None,
        *,
        throttle: Throttle,
        check_key: Callable[[Scope, str], Awaitable[None]],
    ) -> None:
        """Authenticate a scrape from its headers; the request pipeline calls this for
        ``/metrics`` instead of its key check.

        Leaves ``metrics_token`` (the token matched) or ``principal`` (a key checked out)
        in the request state. On loopback a failure leaves the scrape anonymous; beyond
        it, it is raised.

        Args:
            scope: The request.
            authorization: Its ``Authorization`` header, if any.
            throttle: Counts failed authentications.
            check_key: Authenticates an API key (throttled, counted).
        """
        guarded = self.guarded(scope)
        try:
            await self._authenticate(scope, authorization, throttle, check_key, guarded)
        except (Unauthenticated, RateLimited):
            if guarded:
                raise
            scope["state"].pop("principal", None)

    async def _authenticate(
        self,
        scope: Scope,
        authorization: str | None,
        throttle: Throttle,
        check_key: Callable[[Scope, str], Awaitable[None]],
        guarded: bool,
    ) -> None:
        address = client_address(scope)
        if authorization is None:
            if not guarded:
                return
            await throttle.run(throttle.refuse_credentialless, address)
            raise Unauthenticated(_NEEDS_CREDENTIALS)
        # A throttled client's token is not compared.
        await throttle.run(throttle.check_auth, address, None)
        if self.token_matches(authorization):
            scope["state"]["metrics_token"] = True
            return
        try:
            await check_key(scope, authorization)  # a wrong token or key: counted, 401
        except Unauthenticated as exc:
            if scope["state"].get("key_id") is None:  # not even shaped like a key
                raise Unauthenticated(_NEEDS_CREDENTIALS) from exc
            raise
        principal = scope["state"]["principal"]
        if guarded and not principal.scopes & _SCRAPE_SCOPES:
            raise PermissionDenied(
                "this key lacks the metrics scope; scrape /metrics with a key created with "
                "'--scope metrics', or with the metrics token (AIMASS_METRICS_TOKEN)",
                scope="metrics",
            )


def scrape_tenants(scope: Scope, settings: Settings) -> bool:
    """Whether this scrape may see the ``project`` and ``model`` labels: the metrics
    token or an all-projects admin key, and ``metrics_tenant_labels`` on."""
    if not settings.metrics_tenant_labels:
        return False
    state = scope.get("state", {})
    if state.get("metrics_token"):
        return True
    principal = state.get("principal")
    return principal is not None and principal.is_global_admin
