"""One error tree for all of aimass, with stable codes.

Every error raised on purpose is an :class:`AimassError` subclass carrying an
:class:`ErrorCode`. The code is stable (scripts and the SDK match on it); the
message names the thing, the value and the fix. ``HTTP_STATUS`` is the only
place where codes meet HTTP, and ``to_dict`` / ``from_dict`` carry an error
over the wire so the SDK raises the same class the server raised.

::

    AimassError
    ├── InvalidArgument          INVALID_ARGUMENT     400
    │   ├── DatasetValidationError
    │   ├── InvalidName
    │   └── MethodNotAllowed     METHOD_NOT_ALLOWED   405
    ├── Unauthenticated          UNAUTHENTICATED      401
    ├── PermissionDenied         PERMISSION_DENIED    403
    ├── NotFound                 NOT_FOUND            404
    ├── AlreadyExists            ALREADY_EXISTS       409
    ├── Conflict                 CONFLICT             409
    ├── FailedPrecondition       FAILED_PRECONDITION  412
    │   ├── MissingExtra
    │   └── SchemaOutOfDate
    ├── BundleFormatError        BUNDLE_INVALID       422
    ├── UnsupportedModel         UNSUPPORTED_MODEL    422
    ├── PrivacyBudgetExceeded    PRIVACY_BUDGET       422
    ├── ResourceExhausted        RESOURCE_EXHAUSTED   429
    │   ├── RateLimited          (Retry-After header)
    │   └── PayloadTooLarge      PAYLOAD_TOO_LARGE    413
    ├── UnsupportedMediaType     UNSUPPORTED_MEDIA_TYPE 415
    ├── Cancelled                CANCELLED            499
    ├── Internal                 INTERNAL             500
    │   └── JobFailed
    ├── NotImplementedFeature    UNIMPLEMENTED        501
    └── Unavailable              UNAVAILABLE          503
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

__all__ = [
    "HTTP_STATUS",
    "AimassError",
    "AlreadyExists",
    "BundleFormatError",
    "Cancelled",
    "Conflict",
    "DatasetValidationError",
    "ErrorCode",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "InvalidName",
    "JobFailed",
    "MethodNotAllowed",
    "MissingExtra",
    "NotFound",
    "NotImplementedFeature",
    "PayloadTooLarge",
    "PermissionDenied",
    "PrivacyBudgetExceeded",
    "RateLimited",
    "ResourceExhausted",
    "SchemaOutOfDate",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
    "UnsupportedModel",
    "error_from_dict",
]


class ErrorCode(StrEnum):
    """Stable, machine-readable error codes (never renamed once released)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    CONFLICT = "CONFLICT"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    BUNDLE_INVALID = "BUNDLE_INVALID"
    UNSUPPORTED_MODEL = "UNSUPPORTED_MODEL"
    PRIVACY_BUDGET = "PRIVACY_BUDGET"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    CANCELLED = "CANCELLED"
    INTERNAL = "INTERNAL"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    UNAVAILABLE = "UNAVAILABLE"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.ALREADY_EXISTS: 409,
    ErrorCode.CONFLICT: 409,
    ErrorCode.FAILED_PRECONDITION: 412,
    ErrorCode.BUNDLE_INVALID: 422,
    ErrorCode.UNSUPPORTED_MODEL: 422,
    ErrorCode.PRIVACY_BUDGET: 422,
    ErrorCode.RESOURCE_EXHAUSTED: 429,
    ErrorCode.CANCELLED: 499,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNIMPLEMENTED: 501,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
}


class AimassError(Exception):
    """Root of every error aimass raises on purpose.

    Args:
        message: What went wrong, naming the thing, the value and the fix.
        **details: JSON-serialisable facts a program may use (line, field, ...).
    """

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    @property
    def http_status(self) -> int:
        """The HTTP status this error maps to."""
        return HTTP_STATUS[self.code]

    def to_dict(self) -> dict[str, Any]:
        """Wire form: ``{"code", "message", "details", "type"}``."""
        return {
            "code": str(self.code),
            "type": type(self).__name__,
            "message": self.message,
            "details": self.details,
        }

    def __str__(self) -> str:
        return self.message


class InvalidArgument(AimassError, ValueError):
    """A caller-supplied value is wrong; the message says which and why."""

    code = ErrorCode.INVALID_ARGUMENT


class DatasetValidationError(InvalidArgument):
    """A dataset row failed validation; ``details`` has ``line`` and ``field``."""


class InvalidName(InvalidArgument):
    """A resource name is not a valid slug."""


class MethodNotAllowed(InvalidArgument):
    """The path exists but not with this HTTP method."""

    code = ErrorCode.METHOD_NOT_ALLOWED


class Unauthenticated(AimassError):
    """No valid credentials were presented."""

    code = ErrorCode.UNAUTHENTICATED


class PermissionDenied(AimassError):
    """The caller is known but lacks the scope for this action."""

    code = ErrorCode.PERMISSION_DENIED


class NotFound(AimassError, LookupError):
    """The named resource does not exist (or is not visible to the caller)."""

    code = ErrorCode.NOT_FOUND


class AlreadyExists(AimassError):
    """A resource with this identity exists already."""

    code = ErrorCode.ALREADY_EXISTS


class Conflict(AimassError):
    """The request conflicts with the current state (e.g. a protected alias)."""

    code = ErrorCode.CONFLICT


class FailedPrecondition(AimassError):
    """The system is not in a state where this can run; the message says how to fix it."""

    code = ErrorCode.FAILED_PRECONDITION


class MissingExtra(FailedPrecondition, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class SchemaOutOfDate(FailedPrecondition):
    """The metadata database is at an older schema revision than this aimass."""


class BundleFormatError(AimassError):
    """A model bundle or a pinned weight file is malformed, tampered with, or not in the format."""

    code = ErrorCode.BUNDLE_INVALID


class UnsupportedModel(AimassError):
    """The model's architecture or task is not supported for this operation."""

    code = ErrorCode.UNSUPPORTED_MODEL


class PrivacyBudgetExceeded(AimassError):
    """Continuing would spend more privacy budget (epsilon) than allowed."""

    code = ErrorCode.PRIVACY_BUDGET


class ResourceExhausted(AimassError):
    """A limit was hit: rate, quota, batch size, body size."""

    code = ErrorCode.RESOURCE_EXHAUSTED


class RateLimited(ResourceExhausted):
    """A rate, concurrency or quota limit refused the call; retry after ``retry_after`` seconds.

    Args:
        message: Which limit, its value, and the setting that raises it.
        retry_after: Whole seconds until a retry can succeed (the ``Retry-After`` header,
            kept in ``details``); 1 when not given.
        **details: Facts a program may use (``limit``, ...).
    """

    def __init__(self, message: str, *, retry_after: int | None = None, **details: Any) -> None:
        if retry_after is not None:
            details["retry_after"] = max(1, int(retry_after))
        super().__init__(message, **details)

    @property
    def retry_after(self) -> int:
        """Seconds to wait before retrying."""
        return int(self.details.get("retry_after", 1))


class PayloadTooLarge(ResourceExhausted):
    """A request body is over the size limit."""

    code = ErrorCode.PAYLOAD_TOO_LARGE


class UnsupportedMediaType(AimassError):
    """A request body is not JSON (the only body type the server parses)."""

    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE


class Cancelled(AimassError):
    """The operation was cancelled by a user."""

    code = ErrorCode.CANCELLED


class Internal(AimassError):
    """A bug or an unexpected failure; it carries a reference to the logs."""

    code = ErrorCode.INTERNAL


class JobFailed(Internal):
    """A job ended in the failed state; the message carries its reason."""


class NotImplementedFeature(AimassError, NotImplementedError):
    """A documented feature that is not built yet (listed in docs/not-built-yet.md)."""

    code = ErrorCode.UNIMPLEMENTED


class Unavailable(AimassError):
    """A dependency (server, database) cannot be reached right now; retry later."""

    code = ErrorCode.UNAVAILABLE


def _all_subclasses(cls: type[AimassError]) -> list[type[AimassError]]:
    found: list[type[AimassError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def error_from_dict(data: dict[str, Any]) -> AimassError:
    """Rebuild an error from its wire form, as the same class when known.

    Falls back to the most general class for the code, and to
    :class:`AimassError` with ``INTERNAL`` when the code is unknown.
    """
    message = str(data.get("message", "unknown error"))
    details = data.get("details") or {}
    by_name = {cls.__name__: cls for cls in _all_subclasses(AimassError)}
    cls = by_name.get(str(data.get("type", "")))
    if cls is None:
        code = str(data.get("code", ""))
        by_code = {c.code: c for c in reversed(_all_subclasses(AimassError))}
        cls = by_code.get(ErrorCode(code)) if code in ErrorCode.__members__ else None
    return (cls or Internal)(message, **details)
