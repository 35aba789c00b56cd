"""Which paths are the console's (and so use sessions and forms, not keys and JSON)."""

from __future__ import annotations

__all__ = ["PREFIX", "is_console_path"]

PREFIX = "/console"


def is_console_path(path: str) -> bool:
    """``/`` (which sends a browser to the console) and everything under ``/console``."""
    return path == "/" or path == PREFIX or path.startswith(PREFIX + "/")
