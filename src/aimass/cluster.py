"""The one connection to Ray that the executor, distributed training and Ray Serve share.

Ray is optional (``pip install aimass[ray]``): nothing imports it until a setting
asks for it (``AIMASS_EXECUTOR=ray``, ``AIMASS_SERVE_WITH=ray``, ``aimass train
--workers N``). Without ``AIMASS_RAY_ADDRESS`` a private local Ray is started,
bound to loopback, with Ray's token authentication on.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from aimass.errors import InvalidArgument, Unavailable
from aimass.settings import Settings

__all__ = ["connect", "import_ray"]

_lock = threading.Lock()


def import_ray() -> Any:
    """The ``ray`` module, or an error that says how to install it."""
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
    # Token authentication whatever Ray's default: the dashboard and job API must not
    # be an open door (issue 16). Ray reads this when it is imported, hence first.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
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
