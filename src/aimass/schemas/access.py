"""Wire schemas of projects, API keys, the caller's identity and the audit log.

Creating and changing projects and keys (with their per-project and per-key
limits), a key's record (never its secret), ``whoami``, and the audit log's rows
and the result of verifying its hash chain.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from aimass.schemas._common import Name, _In, _Out

if TYPE_CHECKING:
    # Types only: schemas and entities are sibling layers; converters read attributes.
    from aimass import entities as e


# -- projects and keys ------------------------------------------------------------


class ProjectCreate(_In):
    """Create a project (all-projects admin keys only)."""

    name: Name
    description: str = Field(default="", max_length=2000)


class ProjectOut(_Out):
    """A project; ``limits`` are the per-project limits stored with it."""

    name: str
    description: str
    created_at: datetime
    limits: dict[str, int | str] = {}  # noqa: RUF012 - a pydantic field (base in _common)

    @classmethod
    def from_entity(cls, p: e.Project) -> ProjectOut:
        """Convert a :class:`~aimass.entities.Project`."""
        return cls(name=p.name, description=p.description, created_at=p.created_at, limits=p.limits)


LimitName = Annotated[str, Field(max_length=63)]
LimitValue = int | Annotated[str, Field(max_length=63)]


class ProjectLimits(_In):
    """Change the limits stored with a project: a value sets it, ``null`` removes it."""

    limits: dict[LimitName, LimitValue | None] = Field(max_length=32)


class KeyCreate(_In):
    """Create an API key in the path's project.

    ``predict_budget``: inputs per UTC day (unlimited when absent); ``output_policy``:
    ``labels``, ``top_k=N``, ``round=D`` or a comma-joined mix; ``limits``: per-key
    limits (``requests_per_key``, ``max_predicts_per_key``, ``max_streams_per_key``).
    """

    name: Name
    scopes: list[Annotated[str, Field(max_length=127)]] = Field(min_length=1, max_length=32)
    expires_in_days: float | None = Field(default=None, gt=0, le=3650)
    predict_budget: int | None = Field(default=None, ge=1, le=10**12)
    output_policy: str | None = Field(default=None, max_length=63)
    limits: dict[LimitName, LimitValue] = Field(default_factory=dict, max_length=32)


class KeyUpdate(_In):
    """Change a key: only the fields sent change. ``predict_budget: null`` removes the
    budget, ``output_policy: null`` (or ``"full"``) the policy, a limit's ``null`` that limit."""

    predict_budget: int | None = Field(default=None, ge=1, le=10**12)
    output_policy: str | None = Field(default=None, max_length=63)
    limits: dict[LimitName, LimitValue | None] = Field(default_factory=dict, max_length=32)

    def changes(self) -> dict[str, Any]:
        """The fields that were sent, by name."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


class ApiKeyOut(_Out):
    """A key's record (never its secret)."""

    id: str
    name: str
    project: str | None
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked: bool
    last_used_at: datetime | None
    created_by: str | None
    predict_budget: int | None = None
    output_policy: str | None = None
    limits: dict[str, int | str] = {}  # noqa: RUF012 - a pydantic field (base in _common)

    @classmethod
    def from_entity(cls, k: e.ApiKey) -> ApiKeyOut:
        """Convert an :class:`~aimass.entities.ApiKey`."""
        return cls(
            id=k.id,
            name=k.name,
            project=k.project,
            scopes=list(k.scopes),
            created_at=k.created_at,
            expires_at=k.expires_at,
            revoked=k.revoked,
            last_used_at=k.last_used_at,
            created_by=k.created_by,
            predict_budget=k.predict_budget,
            output_policy=k.output_policy,
            limits=dict(k.limits),
        )


class KeyCreated(_Out):
    """A new key: ``key`` is shown this once and cannot be recovered."""

    key: str
    record: ApiKeyOut


class WhoAmI(_Out):
    """The caller as the server sees it."""

    actor: str
    key_id: str | None
    project: str | None
    scopes: list[str]


class AboutOut(_Out):
    """The deployment a caller talks to: what a client adapts to."""

    version: str
    commercial_use_only: bool


# -- audit ----------------------------------------------------------------------------


class AuditEventOut(_Out):
    """One audit log row."""

    seq: int
    time: datetime
    actor: str
    key_id: str | None
    project: str | None
    action: str
    resource: str
    outcome: str
    status: int | None
    request_id: str | None
    input_hash: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def from_entity(cls, a: e.AuditEvent) -> AuditEventOut:
        """Convert an :class:`~aimass.entities.AuditEvent`."""
        return cls(**{f: getattr(a, f) for f in cls.model_fields})


class AuditVerifyOut(_Out):
    """The result of verifying the chain."""

    ok: bool
    rows: int
    head_seq: int
    problems: list[str]


# -- collecting what nothing refers to ----------------------------------------------


class GarbageCollect(_In):
    """Collect the artifacts nothing refers to (``aimass gc``)."""

    older_than_seconds: float = Field(default=3600.0, ge=0, le=10 * 365 * 86400)
    dry_run: bool = False


class GarbageOut(_Out):
    """One artifact collected, or that would be on a dry run."""

    key: str
    reason: str
    bytes: int
    where: str


class GarbageReportOut(_Out):
    """What one collection found, removed and kept."""

    dry_run: bool
    older_than_seconds: float
    removed: list[GarbageOut]
    removed_count: int
    bytes: int
    too_young: list[str]
    referenced: int
