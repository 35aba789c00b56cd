"""Streaming a file the server sends (a job's results) to disk, sync and async.

The body goes to a temporary name beside the target in chunks, then is renamed,
so a broken connection never leaves a half file under the name asked for.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx

from aimass.client._transport import raise_for_error, translate_transport_error
from aimass.errors import InvalidArgument

__all__ = ["download", "download_async"]

_ANY = {"accept": "*/*"}
_FILENAME = re.compile(r'filename="([A-Za-z0-9][A-Za-z0-9._-]{0,127})"')


def download(
    http: httpx.Client, url: str, destination: Path, *, params: dict[str, Any], server: str
) -> Path:
    """GET ``url`` into ``destination`` (a file, or a folder to put the server's file name in)."""
    _check_folder(destination)
    try:
        with http.stream("GET", url, params=params, headers=_ANY) as response:
            if not response.is_success:
                response.read()
                raise_for_error(response)
            target = _target(destination, response)
            with _partial(target) as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
    except httpx.TransportError as exc:
        raise translate_transport_error(exc, server) from exc
    return target


async def download_async(
    http: httpx.AsyncClient, url: str, destination: Path, *, params: dict[str, Any], server: str
) -> Path:
    """As :func:`download`, awaited."""
    _check_folder(destination)
    try:
        async with http.stream("GET", url, params=params, headers=_ANY) as response:
            if not response.is_success:
                await response.aread()
                raise_for_error(response)
            target = _target(destination, response)
            with _partial(target) as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
    except httpx.TransportError as exc:
        raise translate_transport_error(exc, server) from exc
    return target


def _check_folder(destination: Path) -> None:
    if not destination.is_dir() and not destination.parent.is_dir():
        raise InvalidArgument(
            f"cannot write {destination}: folder {destination.parent} does not exist; "
            "create it first",
            path=str(destination),
        )


def _target(destination: Path, response: httpx.Response) -> Path:
    """``destination``, or inside it the file name the server gave (a plain one only)."""
    if not destination.is_dir():
        return destination
    found = _FILENAME.search(response.headers.get("content-disposition", ""))
    return destination / (found.group(1) if found else "results")


@contextmanager
def _partial(target: Path) -> Iterator[IO[bytes]]:
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with partial.open("wb") as out:
            yield out
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
