"""Timestamps of the metadata store: written in UTC, read back aware of it."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["aware", "utcnow"]


def utcnow() -> datetime:
    """Timezone-aware now, in UTC."""
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite drops the zone (everything is stored in UTC); PostgreSQL returns the
    # instant in the session's time zone, whose ISO form would change audit hashes.
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def aware(value: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime."""
    result = _aware(value)
    assert result is not None
    return result
