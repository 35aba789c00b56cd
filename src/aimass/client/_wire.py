"""Helpers the SDK's clients and resources share: wire parsing, request bodies."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import TypeAdapter

from aimass.errors import InvalidArgument
from aimass.operations import job_outcome as job_outcome
from aimass.operations import key_changes as key_changes

T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0
FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".conll": "conll",
    ".bio": "conll",
    ".iob": "conll",
}


def parse(kind: type[T], data: Any) -> T:
    """``data`` (decoded JSON) validated as ``kind`` (a wire schema or a list of them)."""
    return TypeAdapter(kind).validate_python(data)


def upload_body(file: Path, name: str, fmt: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of a dataset upload: text inline, Parquet as base64."""
    fmt = fmt or FORMATS.get(file.suffix.lower())
    if fmt is None:
        raise InvalidArgument(
            f"cannot tell the format of {file.name!r}; pass fmt=jsonl|csv|parquet|conll"
        )
    data = file.read_bytes()
    body: dict[str, Any] = {"name": name, "format": fmt, **options}
    if fmt == "parquet":
        body["content_base64"] = base64.b64encode(data).decode("ascii")
    else:
        body["content"] = data.decode("utf-8")
    return body


def predict_body(inputs: Sequence[str], explain: bool | str | None) -> dict[str, Any]:
    """The body of a model's or a pipeline's ``:predict`` call."""
    body: dict[str, Any] = {"inputs": list(inputs)}
    if explain:
        body["explain"] = explain
    return body


def generate_body(prompt: str, options: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """The JSON body of a generate call (``stop`` as a list)."""
    if "stop" in options and options["stop"] is not None:
        options = {**options, "stop": list(options["stop"])}
    return {"prompt": prompt, **options, "stream": stream}


def key_create_body(
    name: str,
    scopes: Sequence[str],
    expires_in_days: float | None,
    predict_budget: int | None,
    output_policy: str | None,
    limits: Mapping[str, int | str] | None,
) -> dict[str, Any]:
    """The JSON body of a key creation."""
    return {
        "name": name,
        "scopes": list(scopes),
        "expires_in_days": expires_in_days,
        "predict_budget": predict_budget,
        "output_policy": output_policy,
        "limits": dict(limits or {}),
    }


def version_path(ref: str) -> dict[str, str]:
    """The ``n`` (model) and ``s`` (version or alias) of a ``NAME[@SELECTOR]`` for a URL."""
    name, _, selector = ref.partition("@")
    return {"n": name, "s": selector or "latest"}
