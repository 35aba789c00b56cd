"""What every console page shares: the templates, the signed-in caller, forms, errors.

Pages are rendered on the server (Jinja2, autoescaped); the only scripts are the
package's own static files, so every page carries a Content-Security-Policy
that allows nothing from elsewhere and no inline script.
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qs, quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from aimass._version import __version__
from aimass.errors import AimassError, InvalidArgument, PermissionDenied
from aimass.server.console.session import Session
from aimass.server.console.urls import PREFIX
from aimass.server.state import ServerState
from aimass.workspace import Principal

__all__ = [
    "CSP",
    "NotSignedIn",
    "form",
    "form_body",
    "guard",
    "page",
    "principal",
    "require_csrf",
    "state",
    "version_field",
]

log = logging.getLogger("aimass.server")
T = TypeVar("T")

# Scripts, styles and frames only from this server; no inline script; forms post here only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'self'; "
    "base-uri 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}

templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))
templates.env.globals.update(prefix=PREFIX, aimass_version=__version__)


class NotSignedIn(Exception):
    """A page asked for without a (valid) session: the browser goes to sign-in."""


def state(request: Request) -> ServerState:
    """The app's long-lived state."""
    found: ServerState = request.app.state.aimass
    return found


def principal(request: Request) -> Principal:
    """The signed-in caller (the middleware read the session cookie)."""
    found = request.scope["state"].get("principal")
    if found is None:
        raise NotSignedIn
    return found


def session(request: Request) -> Session | None:
    """The request's session, when signed in."""
    found = request.scope["state"].get("session")
    return found if isinstance(found, Session) else None


async def form(request: Request) -> dict[str, str]:
    """The posted form's fields (the last value of each)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


def after_delete(project: str, page_path: str) -> Response:
    """Back to the page of what is left after a deletion (``datasets/NAME``), or to the
    project's page when nothing is (``page_path`` empty)."""
    target = f"{PREFIX}/p/{project}" + (f"/{page_path}" if page_path else "")
    return RedirectResponse(target, status_code=303)


def version_field(fields: dict[str, str], key: str = "version") -> int:
    """The posted version number (InvalidArgument naming the value otherwise)."""
    value = fields.get(key, "")
    if not value.isdigit() or int(value) < 1:
        raise InvalidArgument(f"{key} {value!r} is not a version number")
    return int(value)


def form_body(schema: type[T], what: str, **fields: Any) -> T:
    """The API's request body ``schema`` made from a form's fields (numbers as typed
    text); InvalidArgument naming the form (``what``: "prediction") and what is wrong."""
    from pydantic import ValidationError

    try:
        return schema(**fields)
    except ValidationError as exc:
        raise InvalidArgument(f"the {what} form is not valid: {exc}") from None


def require_csrf(request: Request, fields: dict[str, str]) -> None:
    """A form must carry its session's CSRF token (another site's form cannot)."""
    current = session(request)
    given = fields.get("csrf", "")
    if current is None or not hmac.compare_digest(given, current.csrf):
        raise PermissionDenied(
            "this form has no valid CSRF token (it was not sent by this console); reload the "
            "page and submit it again"
        )


def page(request: Request, template: str, /, *, status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the signed-in caller in its context."""
    who = request.scope["state"].get("principal")
    current = session(request)
    return templates.TemplateResponse(
        request,
        template,
        {"me": who, "csrf": current.csrf if current else "", **context},
        status_code=status,
        headers=HEADERS,
    )


P = ParamSpec("P")


def guard(handler: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
    """Sign-in redirects and errors as pages: an AimassError renders the error page with
    its status and message; a request without a session goes to sign-in."""

    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        request = kwargs.get("request")
        assert isinstance(request, Request), "console handlers take request= by keyword"
        try:
            return await handler(*args, **kwargs)
        except NotSignedIn:
            target = quote(request.url.path, safe="/")
            return RedirectResponse(f"{PREFIX}/sign-in?next={target}", status_code=303)
        except AimassError as exc:
            request.scope["state"]["error_code"] = str(exc.code)
            return page(
                request, "error.html", status=exc.http_status, error=exc, code=str(exc.code)
            )

    return wrapper
