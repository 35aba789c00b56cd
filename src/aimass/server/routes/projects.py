"""Projects, API keys and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from aimass.schemas import (
    ApiKeyOut,
    AuditEventOut,
    AuditVerifyOut,
    KeyCreate,
    KeyCreated,
    ProjectCreate,
    ProjectOut,
)
from aimass.server.deps import AdminProject, PrincipalDep, ReadProject, WorkspaceDep

router = APIRouter(prefix="/v1", tags=["projects"])
P = "/projects/{project}"


@router.get("/projects", name="projects.list")
def list_projects(principal: PrincipalDep, ws: WorkspaceDep) -> list[ProjectOut]:
    """Projects the key may see."""
    return [ProjectOut.from_entity(p) for p in ws.projects(principal)]


@router.post("/projects", name="projects.create", status_code=status.HTTP_201_CREATED)
def create_project(body: ProjectCreate, principal: PrincipalDep, ws: WorkspaceDep) -> ProjectOut:
    """Create a project (all-projects admin keys only)."""
    principal.require_global_admin()
    return ProjectOut.from_entity(ws.create_project(body.name, description=body.description))


@router.get(P, name="projects.get")
def get_project(project: ReadProject, ws: WorkspaceDep) -> ProjectOut:
    """One project."""
    return ProjectOut.from_entity(ws.store.projects.get(project))


@router.get(P + "/keys", name="keys.list")
def list_keys(project: AdminProject, ws: WorkspaceDep) -> list[ApiKeyOut]:
    """The project's keys (records only, never secrets)."""
    return [ApiKeyOut.from_entity(k) for k in ws.keys.list(project=project)]


@router.post(P + "/keys", name="keys.create", status_code=status.HTTP_201_CREATED)
def create_key(
    body: KeyCreate, project: AdminProject, principal: PrincipalDep, ws: WorkspaceDep
) -> KeyCreated:
    """Create a key in the project; the key is in this response only."""
    record, key = ws.keys.create(
        body.name,
        project=project,
        scopes=body.scopes,
        expires_in_days=body.expires_in_days,
        created_by=principal.actor,
    )
    return KeyCreated(key=key, record=ApiKeyOut.from_entity(record))


@router.delete(P + "/keys/{key_id}", name="keys.revoke")
def revoke_key(key_id: str, project: AdminProject, ws: WorkspaceDep) -> ApiKeyOut:
    """Revoke a key of the project."""
    return ApiKeyOut.from_entity(ws.keys.revoke(key_id, project=project))


@router.get(P + "/audit", name="audit.project")
def project_audit(
    project: AdminProject,
    ws: WorkspaceDep,
    before: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEventOut]:
    """The project's audit events, newest first."""
    events = ws.audit.list(project=project, before=before, limit=limit)
    return [AuditEventOut.from_entity(e) for e in events]


@router.get("/audit", name="audit.list")
def audit(
    principal: PrincipalDep,
    ws: WorkspaceDep,
    project: Annotated[str | None, Query(max_length=63)] = None,
    action: Annotated[str | None, Query(max_length=63)] = None,
    before: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEventOut]:
    """Every audit event, newest first (all-projects admin keys only)."""
    principal.require_global_admin()
    events = ws.audit.list(project=project, action=action, before=before, limit=limit)
    return [AuditEventOut.from_entity(e) for e in events]


@router.get("/audit:verify", name="audit.verify")
def verify_audit(principal: PrincipalDep, ws: WorkspaceDep) -> AuditVerifyOut:
    """Recompute the chain (all-projects admin keys only)."""
    principal.require_global_admin()
    result = ws.audit.verify()
    return AuditVerifyOut(
        ok=result.ok, rows=result.rows, head_seq=result.head_seq, problems=result.problems
    )
