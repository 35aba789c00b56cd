"""The registry namespaces of :class:`aimass.Client`: models, keys, projects, audit."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from pathlib import Path

from aimass.client._export import download_bundle
from aimass.client._resources import _Resource
from aimass.client._transport import path
from aimass.client._wire import key_changes, key_create_body, parse, version_path
from aimass.schemas import (
    ApiKeyOut,
    AttachmentOut,
    AuditEventOut,
    AuditVerifyOut,
    BundleVerifyOut,
    KeyCreated,
    ModelVersionOut,
    ProjectOut,
    RegisteredModelOut,
)


class _Models(_Resource):
    """``client.models``: list, versions, get, aliases, card, delete-version, batch predict."""

    def list(self, *, project: str | None = None) -> list[RegisteredModelOut]:
        """Registered models."""
        return self._get(list[RegisteredModelOut], "/models", project)

    def versions(self, name: str, *, project: str | None = None) -> builtins.list[ModelVersionOut]:
        """Every version of ``name``."""
        return self._get(list[ModelVersionOut], "/models/{n}/versions", project, n=name)

    def get(self, ref: str, *, project: str | None = None) -> ModelVersionOut:
        """``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``."""
        return self._get(ModelVersionOut, "/models/{n}/versions/{s}", project, **version_path(ref))

    def set_alias(
        self, name: str, alias: str, version: int, *, project: str | None = None
    ) -> ModelVersionOut:
        """Point ``alias`` at ``version``."""
        return self._send(
            "PUT",
            ModelVersionOut,
            "/models/{n}/aliases/{a}",
            project,
            {"version": version},
            n=name,
            a=alias,
        )

    def delete_alias(self, name: str, alias: str, *, project: str | None = None) -> None:
        """Remove an alias."""
        self._c.request("DELETE", self._c._p("/models/{n}/aliases/{a}", project, n=name, a=alias))

    def card(self, ref: str, *, project: str | None = None) -> str:
        """The model card (Markdown)."""
        url = self._c._p("/models/{n}/versions/{s}/card", project, **version_path(ref))
        return str(self._c.request("GET", url))

    def verify(self, ref: str, *, project: str | None = None) -> BundleVerifyOut:
        """Check a version's signature and files on the server (the bundle is not sent)."""
        template = "/models/{n}/versions/{s}/verify"
        return self._get(BundleVerifyOut, template, project, **version_path(ref))

    def import_(
        self,
        path: str,
        *,
        name: str,
        alias: str | None = None,
        project: str | None = None,
    ) -> ModelVersionOut:
        """Register a Hugging Face classifier directory, a path in the server's import
        dirs (``AIMASS_IMPORT_DIRS``), as a version of model ``name``."""
        body = {"path": path, "name": name, "alias": alias}
        return self._send("POST", ModelVersionOut, "/models", project, body)

    def export(
        self, ref: str, destination: str | Path, *, project: str | None = None
    ) -> builtins.list[str]:
        """Download a version's bundle into ``destination`` (new or empty); the file names.

        The server streams the decrypted bundle as a tar archive (it needs
        ``models:write`` on the model); it is unpacked safely (plain top-level files
        only) and every file is checked against the SHA-256 in ``aimass.json``
        before it lands in ``destination``. The result is a Hugging Face model
        directory, as ``aimass models export`` writes locally.
        """
        url = self._c._p("/models/{n}/versions/{s}/export", project, **version_path(ref))
        return download_bundle(self._c._http, url, Path(destination), server=self._c.url)

    def attachments(
        self, ref: str, *, kind: str | None = None, project: str | None = None
    ) -> builtins.list[AttachmentOut]:
        """Reports attached to a version (``kind``: ``evaluation``, ``privacy-audit``)."""
        template = "/models/{n}/versions/{s}/attachments"
        return self._get(
            list[AttachmentOut], template, project, params={"kind": kind}, **version_path(ref)
        )

    def report(
        self, ref: str, report: str, *, fmt: str = "html", project: str | None = None
    ) -> bytes:
        """An evaluation report's ``report.html`` (or ``report.json``) as bytes."""
        template = "/models/{n}/versions/{s}/reports/{r}/report.{f}"
        url = self._c._p(template, project, r=report, f=fmt, **version_path(ref))
        return self._c.request_bytes("GET", url)

    def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> ModelVersionOut:
        """Delete a version no alias points at."""
        return self._send(
            "DELETE", ModelVersionOut, "/models/{n}/versions/{v}", project, None, n=name, v=version
        )


class _Keys(_Resource):
    """``client.keys``: create (the key is returned once), list, get, update, revoke."""

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
        """A new key in the project.

        ``predict_budget``: inputs per UTC day (``None``: unlimited); ``output_policy``:
        ``labels``, ``top_k=N``, ``round=D`` or a comma-joined mix (``None``: full
        output); ``limits``: per-key limits such as ``{"max_streams_per_key": 2}``.
        """
        body = key_create_body(name, scopes, expires_in_days, predict_budget, output_policy, limits)
        return self._send("POST", KeyCreated, "/keys", project, body)

    def list(self, *, project: str | None = None) -> list[ApiKeyOut]:
        """The project's keys."""
        return self._get(list[ApiKeyOut], "/keys", project)

    def get(self, key_id: str, *, project: str | None = None) -> ApiKeyOut:
        """One key's record: scopes, expiry, budget, output policy, limits."""
        return self._get(ApiKeyOut, "/keys/{k}", project, k=key_id)

    def update(
        self,
        key_id: str,
        *,
        predict_budget: int | str | None = None,
        output_policy: str | None = None,
        limits: Mapping[str, int | str | None] | None = None,
        project: str | None = None,
    ) -> ApiKeyOut:
        """Change what is given, leave the rest: ``predict_budget="unlimited"`` removes
        the budget, ``output_policy="full"`` the policy, a limit set to ``None`` that limit."""
        body = key_changes(predict_budget, output_policy, limits)
        return self._send("PATCH", ApiKeyOut, "/keys/{k}", project, body, k=key_id)

    def revoke(self, key_id: str, *, project: str | None = None) -> ApiKeyOut:
        """Revoke a key."""
        return self._send("DELETE", ApiKeyOut, "/keys/{k}", project, None, k=key_id)


class _Projects(_Resource):
    """``client.projects``: list and create."""

    def list(self) -> list[ProjectOut]:
        """Projects the key may see."""
        return parse(list[ProjectOut], self._c.request("GET", "/v1/projects"))

    def create(self, name: str, *, description: str = "") -> ProjectOut:
        """Create a project (all-projects admin key)."""
        body = {"name": name, "description": description}
        return parse(ProjectOut, self._c.request("POST", "/v1/projects", json=body))

    def get(self, name: str) -> ProjectOut:
        """One project, with the limits stored with it."""
        return parse(ProjectOut, self._c.request("GET", path("/v1/projects/{p}", p=name)))

    def set_limits(self, name: str, limits: Mapping[str, int | str | None]) -> ProjectOut:
        """Set limits stored with a project (``None`` removes one; all-projects admin key)."""
        url = path("/v1/projects/{p}", p=name)
        return parse(ProjectOut, self._c.request("PATCH", url, json={"limits": dict(limits)}))


class _Audit(_Resource):
    """``client.audit``: list and verify (all-projects admin key)."""

    def list(
        self,
        *,
        project: str | None = None,
        action: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[AuditEventOut]:
        """Newest events first."""
        params = {"project": project, "action": action, "before": before, "limit": limit}
        return parse(list[AuditEventOut], self._c.request("GET", "/v1/audit", params=params))

    def verify(self) -> AuditVerifyOut:
        """Recompute the chain on the server."""
        return parse(AuditVerifyOut, self._c.request("GET", "/v1/audit:verify"))
