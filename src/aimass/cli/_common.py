"""Shared CLI plumbing: the workspace, output in tables or JSON, error reporting, logs."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import wraps
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from aimass.entities import to_jsonable
from aimass.errors import AimassError, NotImplementedFeature, Unauthenticated
from aimass.settings import Settings, load_settings

if TYPE_CHECKING:
    from aimass.client import Client
    from aimass.workspace import Workspace
    from aimass.workspace.local import LocalClient

    #: What every command calls: the operations contract (:mod:`aimass.operations`)
    #: on the local home, or on the server at ``AIMASS_URL``.
    Backend = LocalClient | Client

P = ParamSpec("P")
R = TypeVar("R")

console = Console()
err_console = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project to work in.")]

_state: dict[str, Any] = {}


class _JsonFormatter(logging.Formatter):
    """One JSON object per log line, with the ``extra`` fields."""

    _skip = frozenset(logging.makeLogRecord({}).__dict__) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        payload.update({k: v for k, v in record.__dict__.items() if k not in self._skip})
        if record.exc_info:
            # A 500's traceback is the one thing the operator needs to fix it.
            payload["traceback"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class _TextFormatter(logging.Formatter):
    """``level logger: event key=value ...`` for people."""

    _skip = _JsonFormatter._skip

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in self._skip)
        line = f"{record.levelname.lower()} {record.name}: {record.getMessage()} {extras}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(settings: Settings, *, verbose: bool) -> None:
    """Remember the settings and set up structured logging on stderr."""
    _state["settings"] = settings
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if settings.log_format == "json" else _TextFormatter())
    root = logging.getLogger("aimass")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False


def settings() -> Settings:
    """The settings read at the CLI entry (read now if the callback did not run)."""
    if "settings" not in _state:
        _state["settings"] = load_settings()
    return _state["settings"]


def workspace() -> Workspace:
    """The local workspace for this invocation (created once)."""
    from aimass.workspace import Workspace

    if "workspace" not in _state:
        _state["workspace"] = Workspace(settings())
    return _state["workspace"]


def local_workspace(command: str) -> Workspace:
    """The local workspace for a command the server does not offer; refuses under ``--url``.

    Without this, such a command would quietly act on this machine's home while
    the user believes it ran on the server.
    """
    if settings().url:
        raise NotImplementedFeature(
            f"'aimass {command}' runs on a local home only; the server at {settings().url} does "
            "not offer it yet. Run it without --url/AIMASS_URL where the home lives",
            command=command,
        )
    return workspace()


def backend() -> Backend:
    """The operations on the server at AIMASS_URL (the SDK's :class:`~aimass.Client`)
    when set, else on the local home (:class:`~aimass.workspace.local.LocalClient`):
    the same namespaces, calls and answers either way."""
    if "backend" not in _state:
        found = settings()
        if found.url:
            from aimass.client import Client

            key = found.api_key.get_secret_value() if found.api_key else None
            _state["backend"] = Client(found.url, key, verify=found.ca_bundle)
        else:
            from aimass.workspace.local import LocalClient

            _state["backend"] = LocalClient(workspace())
    return _state["backend"]


def local_home() -> Workspace | None:
    """The local workspace when the CLI works on a local home, ``None`` against a server."""
    return None if settings().url else workspace()


def reset() -> None:
    """Forget settings, workspace and client (tests call the CLI many times in one process)."""
    found = _state.pop("backend", None)
    if found is not None:
        found.close()
    ws = _state.pop("workspace", None)
    if ws is not None:
        ws.close()
    _state.clear()


def _plain(value: Any) -> Any:
    """Entities and wire schemas (and containers of them) as plain JSON data."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return to_jsonable(value)


def emit_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout."""
    typer.echo(json.dumps(_plain(value), indent=2, ensure_ascii=False))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a rich table.

    A value too wide for its column folds onto the next line instead of being cut with
    an ellipsis: ids, refs and names must stay whole to be copied into the next command.
    """
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*[str(c) for c in row])
    console.print(out)


def fmt_metric(value: Any) -> str:
    """A metric as people read it."""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


# How to pass a key, in place of the SDK's hint on a 401 from the server (never the key).
AUTH_HINT = (
    "pass a valid API key: set AIMASS_API_KEY=aimass_... or run "
    "'aimass --api-key aimass_... COMMAND' (an admin creates one with 'aimass keys create')"
)


def _message(exc: AimassError) -> str:
    """The error's message; a 401 names the CLI's ways to pass a key."""
    hint = exc.details.get("hint")
    if isinstance(exc, Unauthenticated) and isinstance(hint, str):
        return exc.message.removesuffix(hint) + AUTH_HINT
    return exc.message


@contextmanager
def errors_reported() -> Iterator[None]:
    """Turn aimass errors into ``Error [CODE]: message`` on stderr and exit status 1."""
    try:
        yield
    except AimassError as exc:
        err_console.print(
            f"[bold red]Error [{exc.code}][/]: {escape(_message(exc))}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from exc


def command(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator for command bodies: aimass errors become a clean message and exit 1."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with errors_reported():
            return fn(*args, **kwargs)

    return wrapper


def when(value: Any) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM`` in tables, ``-`` when unset."""
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"
