"""The administrative namespaces of the operations contract: keys, projects, the audit log."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aimass.schemas import ApiKeyOut, AuditEventOut, AuditVerifyOut, KeyCreated, ProjectOut

__all__ = ["Audit", "Keys", "Projects"]


class Keys(Protocol):
    """``.keys``: API keys, their scopes, budgets, output policies and limits."""

    def create(
        self,
        name: str,
        *,
        scopes: Sequence[str],
        expires_in_days: float | None = None,
        predict_budget: int | None = None,
        output_policy: str | None = None,
        limits: Mapping[str, int | str] | None = None,
        project: str | None = None,
    ) -> KeyCreated:
        """A new key (the secret is in the answer, and nowhere else)."""
        ...

    def list(self, *, project: str | None = None) -> builtins.list[ApiKeyOut]:
        """The project's keys."""
        ...

    def get(self, key_id: str, *, project: str | None = None) -> ApiKeyOut:
        """One key's record."""
        ...

    def update(
        self,
        key_id: str,
        *,
        predict_budget: int | str | None = None,
        output_policy: str | None = None,
        limits: Mapping[str, int | str | None] | None = None,
        project: str | None = None,
    ) -> ApiKeyOut:
        """Change what is given (``"unlimited"`` / ``"full"`` / a ``None`` limit remove)."""
        ...

    def revoke(self, key_id: str, *, project: str | None = None) -> ApiKeyOut:
        """Revoke a key."""
        ...


class Projects(Protocol):
    """``.projects``: the tenants of a home."""

    def list(self) -> builtins.list[ProjectOut]:
        """Projects the caller may see."""
        ...

    def create(self, name: str, *, description: str = "") -> ProjectOut:
        """Create a project."""
        ...

    def get(self, name: str) -> ProjectOut:
        """One project, with its stored limits."""
        ...

    def set_limits(self, name: str, limits: Mapping[str, int | str | None]) -> ProjectOut:
        """Set limits stored with a project (``None`` removes one)."""
        ...


class Audit(Protocol):
    """``.audit``: the hash-chained audit log."""

    def list(
        self,
        *,
        project: str | None = None,
        action: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditEventOut]:
        """Events, newest first."""
        ...

    def verify(self) -> AuditVerifyOut:
        """Recompute the chain."""
        ...
