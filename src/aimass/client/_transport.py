"""HTTP plumbing shared by the sync and async clients: headers, paths, error translation."""

from __future__ import annotations

import json
import os
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from aimass._version import __version__
from aimass.errors import (
    AimassError,
    InvalidArgument,
    Unauthenticated,
    Unavailable,
    error_from_dict,
)

__all__ = [
    "AUTH_HINT",
    "SSE_HEADERS",
    "ServerSentEvents",
    "headers",
    "path",
    "raise_for_error",
    "tls_verify",
    "translate_transport_error",
    "with_auth_hint",
]

SSE_HEADERS = {"accept": "text/event-stream"}


def headers(api_key: str | None) -> dict[str, str]:
    """Default headers: the key as a bearer token, JSON, the SDK version."""
    found = {"accept": "application/json", "user-agent": f"aimass-sdk/{__version__}"}
    if api_key:
        found["authorization"] = f"Bearer {api_key}"
    return found


def tls_verify(verify: bool | str | Path | ssl.SSLContext | None) -> bool | ssl.SSLContext:
    """How the client checks an ``https://`` server's certificate (httpx's ``verify``).

    ``None``: against the PEM bundle in ``AIMASS_CA_BUNDLE`` when set, else the
    system's trust store. A path: against that PEM bundle (a self-signed server
    certificate, a private CA). ``False`` turns the check off; never the default.
    """
    if verify is None:
        verify = os.environ.get("AIMASS_CA_BUNDLE") or True
    if not isinstance(verify, str | Path):
        return verify
    try:
        return ssl.create_default_context(cafile=str(verify))
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(
            f"cannot read the CA bundle {verify}: {exc}; give a PEM file of the certificates "
            "to trust (verify= or AIMASS_CA_BUNDLE)",
            path=str(verify),
        ) from exc


def path(template: str, **params: str | int) -> str:
    """Fill ``{name}`` in ``template`` with URL-quoted values (no '/' survives)."""
    return template.format(**{k: quote(str(v), safe="@") for k, v in params.items()})


def raise_for_error(response: httpx.Response) -> None:
    """Raise the aimass error the server sent, as the same class."""
    if response.is_success:
        return
    try:
        body = response.json()
        error = body["error"]
    except (ValueError, KeyError, TypeError):
        if response.status_code == 401:  # a proxy in front, say: still a missing key
            message = f"server answered 401 (unauthenticated): {response.text[:200]}"
            raise with_auth_hint(Unauthenticated(message)) from None
        raise AimassError(
            f"server answered {response.status_code} without an aimass error body: "
            f"{response.text[:200]}"
        ) from None
    raise with_auth_hint(error_from_dict(error))


# How to pass a key, added to every 401 the SDK raises (the CLI puts its own ways instead).
AUTH_HINT = (
    "pass an API key: aimass.Client(url, api_key='aimass_...') "
    "(an admin creates one with 'aimass keys create')"
)


def with_auth_hint(error: AimassError) -> AimassError:
    """A 401 with :data:`AUTH_HINT` after the server's message (``details['hint']``)."""
    if not isinstance(error, Unauthenticated) or "hint" in error.details:
        return error
    return type(error)(f"{error.message}; {AUTH_HINT}", **error.details, hint=AUTH_HINT)


def translate_transport_error(exc: httpx.TransportError, url: str) -> AimassError:
    """A connection problem as :class:`Unavailable`, naming the server."""
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return Unavailable(
            f"the TLS certificate of the aimass server at {url} is not trusted: {exc}; if it "
            "is self-signed or from a private CA, point AIMASS_CA_BUNDLE (or the client's "
            "verify=) at its PEM certificate"
        )
    return Unavailable(
        f"cannot reach the aimass server at {url}: {exc}; is 'aimass serve' running?"
    )


def json_or_text(response: httpx.Response) -> Any:
    """The body as JSON, or text for text responses (model cards)."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return response.text


class ServerSentEvents:
    """Turns the lines of a ``text/event-stream`` body into generation events.

    Feed each line to :meth:`feed`; a blank line completes an event, and
    ``token`` / ``done`` events come back as their decoded data dicts. An
    ``error`` event raises the server's error as its class; a body that ends
    before ``done`` (see :meth:`end`) is :class:`Unavailable`.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.done = False
        self._name = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> dict[str, Any] | None:
        """The event ``line`` completes, if any (comments and unknown fields are skipped)."""
        if line:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                self._name = value
            elif field == "data":
                self._data.append(value)
            return None
        if not self._data:
            return None
        name, data = self._name, json.loads("\n".join(self._data))
        self._name, self._data = "message", []
        if name == "error":
            raise error_from_dict(data)
        self.done = name == "done"
        return data if name in ("token", "done") else None

    def end(self) -> None:
        """Raise unless the stream ended with its ``done`` event."""
        if not self.done:
            raise Unavailable(
                f"the generation stream from {self.url} ended before its final event; retry"
            )
