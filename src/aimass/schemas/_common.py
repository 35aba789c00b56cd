"""Shared building blocks of the wire schemas: names, refs, the request and response bases, errors.

``_In`` is the base of every request body (unknown fields are a 400) and ``_Out``
of every response; ``Name`` and ``Ref`` bound the names and references a request
may carry, and ``ErrorBody`` is the shape of every error response.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
Ref = Annotated[str, Field(min_length=1, max_length=127)]
# In the answer to an import (datasets, bases, model versions); null everywhere else.
Created = Annotated[
    bool | None,
    Field(
        description="In the answer to an import: true when it stored a new version, false "
        "when identical content matched an existing one; null otherwise.",
    ),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


# -- errors ---------------------------------------------------------------------


class ErrorDetail(_Out):
    """``code`` is stable; ``type`` is the exception class the SDK raises again."""

    code: str
    type: str
    message: str
    details: dict[str, Any] = {}
    request_id: str | None = None


class ErrorBody(_Out):
    """Every error response: ``{"error": {...}}``."""

    error: ErrorDetail
