"""A 401 from the server names how to pass a key; the server's own message is kept."""

from __future__ import annotations

import httpx
import pytest

from aimass.client._transport import AUTH_HINT, raise_for_error
from aimass.errors import NotFound, Unauthenticated


def error_body(code: str, kind: str, message: str) -> dict:
    return {"error": {"code": code, "type": kind, "message": message, "details": {}}}


def test_a_401_keeps_the_servers_message_and_adds_how_to_pass_a_key():
    server = "this endpoint needs an API key: send 'Authorization: Bearer aimass_...'"
    response = httpx.Response(401, json=error_body("UNAUTHENTICATED", "Unauthenticated", server))
    with pytest.raises(Unauthenticated) as info:
        raise_for_error(response)
    assert info.value.message == f"{server}; {AUTH_HINT}"
    assert "api_key=" in info.value.message and info.value.details["hint"] == AUTH_HINT


def test_a_401_without_an_aimass_body_still_gets_the_hint():
    with pytest.raises(Unauthenticated, match="api_key="):
        raise_for_error(httpx.Response(401, text="<html>proxy says no</html>"))


def test_other_errors_get_no_hint():
    response = httpx.Response(404, json=error_body("NOT_FOUND", "NotFound", "no model 'x'"))
    with pytest.raises(NotFound) as info:
        raise_for_error(response)
    assert info.value.message == "no model 'x'" and "hint" not in info.value.details
