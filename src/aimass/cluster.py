"""The one connection to Ray that the executor, distributed training and Ray Serve share.

Ray is optional (``pip install aimass[ray]``): nothing imports it until a setting
asks for it (``AIMASS_EXECUTOR=ray``, ``AIMASS_SERVE_WITH=ray``, ``aimass train
--workers N``). Without ``AIMASS_RAY_ADDRESS`` a private local Ray is started,
bound to loopback, with Ray's token authentication on.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import socket
import threading
from collections.abc import Callable
from typing import Any, cast

from aimass.errors import FailedPrecondition, InvalidArgument, Unavailable
from aimass.settings import Settings

__all__ = [
    "connect",
    "import_opener",
    "import_ray",
    "opener_name",
    "settings_from_json",
    "settings_to_json",
]

_lock = threading.Lock()


def import_ray() -> Any:
    """The ``ray`` module, or an error that says how to install it."""
    # Token authentication whatever Ray's default: the dashboard and job API must not
    # be an open door (issue 16). Ray reads this when it is imported, hence here.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is in the lock
        raise InvalidArgument(
            "this needs Ray, which is not installed: pip install 'aimass[ray]'"
        ) from exc
    return ray


def connect(settings: Settings) -> Any:
    """Connect this process to Ray once (idempotent); returns the ``ray`` module.

    With ``settings.ray_address`` unset, a local Ray is started on this machine:
    loopback only, no dashboard, token authentication on (``RAY_AUTH_MODE=token``,
    Ray keeps the token in ``~/.ray/auth_token``).
    """
    ray = import_ray()
    with _lock:
        if ray.is_initialized():
            return ray
        options: dict[str, Any] = {
            "namespace": settings.ray_namespace,
            "log_to_driver": False,
            "configure_logging": False,
        }
        if settings.ray_address:
            _probe(settings.ray_address)
            options["address"] = settings.ray_address
        else:
            options.update(include_dashboard=False, _node_ip_address="127.0.0.1")
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = settings.ray_address or "a local Ray"
            raise Unavailable(
                f"could not connect to Ray at {where}: {exc}; check AIMASS_RAY_ADDRESS, "
                "that the cluster is up and that RAY_AUTH_TOKEN (or ~/.ray/auth_token) "
                "holds its token"
            ) from exc
    return ray


PROBE_SECONDS = 5.0


def _probe(address: str) -> None:
    """Fail fast when nothing listens at ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``).

    ``ray.init`` itself retries an unreachable cluster for minutes, which would hold
    a server's start (or a job) that long before saying anything. Other forms
    (``auto``) are left to Ray.
    """
    found = re.fullmatch(r"(?:ray://)?\[?([^\[\]/]+?)\]?:(\d+)/?", address)
    if found is None:
        return
    host, port = found.group(1), int(found.group(2))
    try:
        socket.create_connection((host, port), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        raise Unavailable(
            f"no Ray cluster answers at AIMASS_RAY_ADDRESS={address} ({exc}); start it "
            "(`ray start --head`) or set the address of its head node (HOST:PORT, the "
            "GCS port, 6379 unless changed)"
        ) from exc


# -- what crosses into Ray: settings without secrets, functions by name ----------------

NODE_SECRETS = ("master_key",)
"""Secret settings work on a Ray node may need (artifact encryption): the node has its own."""

SERVER_ONLY = (
    "api_key",
    "metrics_token",
    "metrics_token_file",
    "server_secret",
    "server_secret_file",
)
"""Settings no Ray task or replica uses: sent as unset, so a node needs none of them."""


def _secret_fields() -> set[str]:
    return {
        name
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }


def settings_to_json(settings: Settings) -> str:
    """``settings`` as JSON for a Ray task or replica, without any secret value.

    Every ``SecretStr`` field is left out (a secret setting added later is too); the
    secrets the node must supply itself are named (``needs``), so it can say which one
    it lacks, and the server-only settings are sent as unset.
    """
    values = settings.model_dump(mode="json", exclude=_secret_fields() | set(SERVER_ONLY))
    values.update(dict.fromkeys(SERVER_ONLY))
    needs = [name for name in NODE_SECRETS if getattr(settings, name) is not None]
    return json.dumps({"settings": values, "needs": needs})


def settings_from_json(text: str) -> Settings:
    """The settings :func:`settings_to_json` sent, secrets from this node's environment.

    Raises:
        FailedPrecondition: a secret the server has is missing here.
    """
    payload = json.loads(text)
    settings = Settings(**payload["settings"])
    missing = [name for name in payload["needs"] if getattr(settings, name) is None]
    if missing:
        names = ", ".join(f"AIMASS_{name.upper()}" for name in missing)
        raise FailedPrecondition(
            f"this Ray node lacks {names}, which the server has: set it in the environment "
            "of every Ray node (e.g. from the secret the server reads it from)"
        )
    return settings


def opener_name(opener: Callable[[Settings], Any]) -> str:
    """``module:function`` of a module-level ``opener``, which a Ray node imports by name."""
    qualname = getattr(opener, "__qualname__", "")
    name = f"{getattr(opener, '__module__', '')}:{qualname}"
    if not qualname or "<" in qualname or "." in qualname:
        raise InvalidArgument(
            f"the artifact opener {name} is not a module-level function; a Ray node "
            "imports it by name, so pass one defined at the top of a module"
        )
    return name


def import_opener(name: str) -> Callable[[Settings], Any]:
    """The function :func:`opener_name` named."""
    module, _, function = name.partition(":")
    opener = getattr(importlib.import_module(module), function)
    if not callable(opener):
        raise InvalidArgument(f"the artifact opener {name} is not callable")
    return cast(Callable[[Settings], Any], opener)
