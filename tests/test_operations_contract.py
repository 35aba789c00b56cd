"""The operations contract (:mod:`aimass.operations`) against every implementation.

``Client``, ``AsyncClient`` and ``LocalClient`` must have every namespace, every
method, the same positional arguments in the same order, the same keyword-only
options with the same defaults, and nothing more in a namespace. The async client's
methods are coroutine functions (``generate_stream`` an async generator). A renamed
option, a reordered argument or a method added to one surface only fails here.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from aimass import operations
from aimass.client import AsyncClient, Client
from aimass.settings import Settings
from aimass.workspace import Workspace
from aimass.workspace.local import LocalClient

# What a client has beyond the contract: its connection, not operations.
TRANSPORT = {
    "Client": {"request", "request_bytes", "close", "url", "project"},
    "AsyncClient": {
        "request",
        "request_bytes",
        "aclose",
        "url",
        "project",
        # Deprecated flat job calls of the first AsyncClient (warn, then delegate).
        "submit_training",
        "submit_batch_predict",
        "job",
        "cancel",
        "job_results",
        "wait",
    },
    "LocalClient": {"close", "open", "record", "report_document", "workspace", "project"},
}


@pytest.fixture(scope="module")
def clients(tmp_path_factory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("contract") / "home"
    return {
        "Client": Client("http://127.0.0.1:1"),
        "AsyncClient": AsyncClient("http://127.0.0.1:1"),
        "LocalClient": LocalClient(Workspace(Settings(home=home, device="cpu"))),
    }


def _methods(kind: type[Any]) -> dict[str, Any]:
    """The public methods a Protocol (or an implementation class) defines."""
    return {
        name: member
        for name, member in inspect.getmembers(kind, inspect.isfunction)
        if not name.startswith("_")
    }


def _shape(function: Any) -> list[tuple[str, Any, Any]]:
    """``(name, kind, default)`` of every parameter but ``self``."""
    parameters = inspect.signature(function).parameters.values()
    return [(p.name, p.kind, p.default) for p in parameters if p.name != "self"]


def _check(owner: str, contract: type[Any], found: Any, *, awaited: bool) -> list[str]:
    problems = []
    wanted = _methods(contract)
    have = _methods(type(found))
    for name, method in wanted.items():
        if name not in have:
            problems.append(f"{owner}.{name} is missing")
            continue
        if _shape(have[name]) != _shape(method):
            problems.append(
                f"{owner}.{name}{inspect.signature(have[name])} differs from the contract's "
                f"{name}{inspect.signature(method)}"
            )
        if awaited:
            ok = inspect.iscoroutinefunction(have[name]) or inspect.isasyncgenfunction(have[name])
            if not ok:
                problems.append(f"{owner}.{name} is not awaitable")
        elif inspect.iscoroutinefunction(have[name]) or inspect.isasyncgenfunction(have[name]):
            problems.append(f"{owner}.{name} is async on a synchronous client")
    return problems


@pytest.mark.parametrize("implementation", ["Client", "AsyncClient", "LocalClient"])
@pytest.mark.parametrize("namespace", sorted(operations.NAMESPACES))
def test_every_namespace_keeps_the_contract(clients, implementation, namespace):
    contract = operations.NAMESPACES[namespace]
    found = getattr(clients[implementation], namespace)
    owner = f"{implementation}.{namespace}"
    problems = _check(owner, contract, found, awaited=implementation == "AsyncClient")
    extra = set(_methods(type(found))) - set(_methods(contract))
    problems += [f"{owner}.{name} is not in the contract" for name in sorted(extra)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("implementation", ["Client", "AsyncClient", "LocalClient"])
def test_the_top_level_keeps_the_contract(clients, implementation):
    found = clients[implementation]
    problems = _check(
        implementation, operations.Operations, found, awaited=implementation == "AsyncClient"
    )
    members = {name for name in dir(found) if not name.startswith("_")}
    expected = set(_methods(operations.Operations)) | set(operations.NAMESPACES)
    extra = members - expected - TRANSPORT[implementation]
    problems += [f"{implementation}.{name} is not in the contract" for name in sorted(extra)]
    problems += [f"{implementation}.{n} is missing" for n in sorted(expected - members)]
    assert not problems, "\n".join(problems)


def test_the_contract_protocols_name_every_namespace():
    namespaces = {
        name for name, member in vars(operations.Operations).items() if isinstance(member, property)
    }
    assert namespaces == set(operations.NAMESPACES)


def test_a_drifted_option_is_caught():
    """The check itself: a namespace whose option was renamed fails."""

    class Drifted:
        def list(self, *, project_name: str | None = None) -> list[Any]:
            return []

    problems = _check("x.audit", operations.Audit, Drifted(), awaited=False)
    assert any("differs from the contract" in p for p in problems)
    assert any("x.audit.verify is missing" in p for p in problems)
