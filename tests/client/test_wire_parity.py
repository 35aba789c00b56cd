"""``Client`` and ``AsyncClient`` send the same requests for every operation.

Each operation is written twice, a blocking and an awaitable body under one
signature (as HTTPX's ``Client`` and ``AsyncClient``). The contract test
(tests/test_operations_contract.py) holds the signatures together; this holds the
wire: every method of the contract is called on both clients with the same
arguments (made from its parameters: a non-default value for every option), over
a transport that records each request and answers an error, and the two clients'
requests must be the same — method, path, query and body. A field one client
forgets, renames or encodes differently fails here.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from aimass import operations
from aimass.client import AsyncClient, Client
from aimass.errors import AimassError

# Values for parameters whose name says what they hold; the rest are made from
# their default's type (see _value).
NAMED: dict[str, Any] = {
    "project": "team-a",
    "scopes": ["read", "predict:churn"],
    "inputs": ["a fine film", "a dull one"],
    "limits": {"max_predicts": 4, "predict_budget": "100/day"},
    "overrides": {"hidden_size": 64, "dropout": 0.2},
    "spec": {"steps": [{"model": "m@1"}], "description": "two steps"},
    "config": {"epochs": 2, "lr": 0.001},
    "privacy": {"target_epsilon": 8},
    "deidentify": {"mode": "mask"},
    "options": {"robustness_sample": 20},
    "version": 3,
    "layers": 2,
    "explain": "occlusion",
    "fmt": "json",
    "timeout": 0.5,
    "poll": 0.01,
    "progress": None,  # a callback, not sent
    "expires_in_days": 30.0,
    "predict_budget": 500,
}
# Values that are not sent as given: the file is read, the folder written to.
LOCAL = {"file", "destination"}


def _value(parameter: inspect.Parameter, tmp_path: Path) -> Any:
    """An argument for ``parameter``: a named value, else unlike its default."""
    name, default = parameter.name, parameter.default
    if name == "file":
        path = tmp_path / "rows.jsonl"
        path.write_text('{"text": "a fine film", "label": "pos"}\n', "utf-8")
        return path
    if name == "destination":
        return tmp_path / "out"
    if name in NAMED:
        return NAMED[name]
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default + 3
    if isinstance(default, float):
        return default / 2
    return f"{name}-x"  # a string: required, ``None`` by default, or a str option


def _arguments(method: Any, tmp_path: Path) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments for a contract method (``**options`` too)."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for parameter in list(inspect.signature(method).parameters.values())[1:]:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            kwargs.update({"max_new_tokens": 3, "temperature": 0.5, "stop": ("\n",)})
        elif parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            kwargs[parameter.name] = _value(parameter, tmp_path)
        else:
            args.append(_value(parameter, tmp_path))
    return args, kwargs


def _recorder(seen: list[tuple[str, str, Any]]) -> Any:
    """A transport handler: record the request, answer a 400 (the clients raise it)."""

    def handle(request: httpx.Request) -> httpx.Response:
        content = request.read()
        kind = request.headers.get("content-type", "")
        body: Any = json.loads(content) if "json" in kind and content else content
        seen.append((request.method, str(request.url), body))
        error = {"error": {"code": "INVALID_ARGUMENT", "message": "recorded"}}
        return httpx.Response(400, json=error)

    return handle


def _calls() -> list[Any]:
    """``(namespace or "", method name)`` of every operation in the contract."""
    found = []
    for namespace, protocol in sorted(operations.NAMESPACES.items()):
        for name, _ in inspect.getmembers(protocol, inspect.isfunction):
            if not name.startswith("_"):
                found.append(pytest.param(namespace, name, id=f"{namespace}.{name}"))
    for name, _ in inspect.getmembers(operations.Operations, inspect.isfunction):
        if not name.startswith("_"):
            found.append(pytest.param("", name, id=name))
    return found


def _sync_requests(namespace: str, name: str, args: list[Any], kwargs: dict[str, Any]) -> list[Any]:
    seen: list[Any] = []
    transport = httpx.MockTransport(_recorder(seen))
    with Client("http://server", "aimass_k_s", transport=transport) as client:
        owner = getattr(client, namespace) if namespace else client

        def call() -> None:
            result = getattr(owner, name)(*args, **kwargs)
            if inspect.isgenerator(result):
                list(result)

        with pytest.raises(AimassError):
            call()
    return seen


def _async_requests(
    namespace: str, name: str, args: list[Any], kwargs: dict[str, Any]
) -> list[Any]:
    seen: list[Any] = []

    async def run() -> None:
        transport = httpx.MockTransport(_recorder(seen))
        async with AsyncClient("http://server", "aimass_k_s", transport=transport) as client:
            owner = getattr(client, namespace) if namespace else client

            async def call() -> None:
                result = getattr(owner, name)(*args, **kwargs)
                if inspect.isasyncgen(result):
                    async for _ in result:
                        pass
                else:
                    await result

            with pytest.raises(AimassError):
                await call()

    asyncio.run(run())
    return seen


@pytest.mark.parametrize(("namespace", "name"), _calls())
def test_both_clients_send_the_same_request(namespace, name, tmp_path):
    protocol = operations.NAMESPACES[namespace] if namespace else operations.Operations
    args, kwargs = _arguments(getattr(protocol, name), tmp_path)
    sent = _sync_requests(namespace, name, args, kwargs)
    assert sent, f"Client.{namespace}.{name} sent nothing"
    assert _async_requests(namespace, name, args, kwargs) == sent
    # The project reached the wire, in the path or the query (both clients dropping
    # it would still agree).
    if "project" in kwargs:
        url = sent[0][1]
        assert "/projects/team-a/" in url or "project=team-a" in url, url


def test_a_field_one_client_drops_is_caught(tmp_path, monkeypatch):
    """The check itself: an async body missing a field differs from the sync one."""
    from aimass.client import _async

    original = _async.AsyncJobs.submit_batch_predict

    async def drifted(self, *, model, dataset, output, split=None, project=None):
        return await original(self, model=model, dataset=dataset, output=output, project=project)

    monkeypatch.setattr(_async.AsyncJobs, "submit_batch_predict", drifted)
    args, kwargs = _arguments(operations.Jobs.submit_batch_predict, tmp_path)
    drifted_requests = _async_requests("jobs", "submit_batch_predict", args, kwargs)
    assert drifted_requests != _sync_requests("jobs", "submit_batch_predict", args, kwargs)
