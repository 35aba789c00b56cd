"""Projects, API keys, the audit log, and collecting what nothing refers to."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status

from aimass.entities import ApiKey
from aimass.errors import InvalidArgument
from aimass.schemas import (
    ApiKeyOut,
    AuditEventOut,
    AuditVerifyOut,
    GarbageCollect,
    GarbageReportOut,
    KeyCreate,
    KeyCreated,
    KeyUpdate,
    ProjectCreate,
    ProjectLimits,
    ProjectOut,
)
from aimass.server.deps import AdminProject, PrincipalDep, ReadProject, WorkspaceDep

router = APIRouter(prefix="/v1", tags=["projects"])
P = "/projects/{project}"


@router.get("/projects", name="projects.list")
def list_projects(principal: PrincipalDep, ws: WorkspaceDep) -> list[ProjectOut]:
    """Projects the key may see."""
    return [ProjectOut.from_entity(p) for p in ws.projects.list(principal)]


@router.post("/projects", name="projects.create", status_code=status.HTTP_201_CREATED)
def create_project(body: ProjectCreate, principal: PrincipalDep, ws: WorkspaceDep) -> ProjectOut:
    """Create a project (all-projects admin keys only)."""
    principal.require_global_admin()
    return ProjectOut.from_entity(ws.projects.create(body.name, description=body.description))


@router.get(P, name="projects.get")
def get_project(project: ReadProject, ws: WorkspaceDep) -> ProjectOut:
    """One project."""
    return ProjectOut.from_entity(ws.projects.get(project))


def _audit_details(request: Request, **details: Any) -> None:
    """Add ``details`` to this request's audit record (the request pipeline writes it)."""
    request.scope["state"]["audit_details"] = details


@router.patch(P, name="projects.update")
def update_project(
    body: ProjectLimits,
    project: ReadProject,
    principal: PrincipalDep,
    ws: WorkspaceDep,
    request: Request,
) -> ProjectOut:
    """Set (a value) or remove (``null``) limits stored with the project.

    All-projects admin keys only: the limits are the operator's quotas on a tenant.
    """
    principal.require_global_admin()
    updated = ws.limits.set_project_limits(project, body.limits)
    _audit_details(request, limits=updated.limits, changed=sorted(body.limits))
    return ProjectOut.from_entity(updated)


@router.get(P + "/keys", name="keys.list")
def list_keys(project: AdminProject, ws: WorkspaceDep) -> list[ApiKeyOut]:
    """The project's keys (records only, never secrets)."""
    return [ApiKeyOut.from_entity(k) for k in ws.keys.list(project=project)]


@router.post(P + "/keys", name="keys.create", status_code=status.HTTP_201_CREATED)
def create_key(
    body: KeyCreate,
    project: AdminProject,
    principal: PrincipalDep,
    ws: WorkspaceDep,
    request: Request,
) -> KeyCreated:
    """Create a key in the project; the key is in this response only.

    Only an all-projects admin may give it ``limits`` above the deployment's values.
    """
    record, key = ws.keys.create(
        body.name,
        project=project,
        scopes=body.scopes,
        expires_in_days=body.expires_in_days,
        created_by=principal.actor,
        predict_budget=body.predict_budget,
        output_policy=body.output_policy,
        limits=body.limits,
        by_global_admin=principal.is_global_admin,
    )
    _audit_details(request, **key_audit_details(record))
    return KeyCreated(key=key, record=ApiKeyOut.from_entity(record))


def key_audit_details(record: ApiKey) -> dict[str, Any]:
    """What the audit record of a key's creation or update shows of the key (the API's
    and the console's)."""
    return {
        "key_id": record.id,
        "scopes": list(record.scopes),
        "predict_budget": record.predict_budget,
        "output_policy": record.output_policy,
        "limits": dict(record.limits),
    }


@router.get(P + "/keys/{key_id}", name="keys.get")
def get_key(key_id: str, project: AdminProject, ws: WorkspaceDep) -> ApiKeyOut:
    """One key of the project (its record, budget, output policy and limits)."""
    return ApiKeyOut.from_entity(ws.keys.get(key_id, project=project))


@router.patch(P + "/keys/{key_id}", name="keys.update")
def update_key(
    key_id: str,
    body: KeyUpdate,
    project: AdminProject,
    principal: PrincipalDep,
    ws: WorkspaceDep,
    request: Request,
) -> ApiKeyOut:
    """Change a key's query budget, output policy or limits (only the fields sent).

    Seen by the key's next request. Only an all-projects admin may raise a limit above
    the deployment's value.
    """
    updated = ws.keys.update(
        key_id, body.changes(), project=project, by_global_admin=principal.is_global_admin
    )
    _audit_details(request, **key_audit_details(updated), changed=sorted(body.changes()))
    return ApiKeyOut.from_entity(updated)


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


#: The shortest grace period a collection through a running server may use: a job
#: publishes its bundle moments before it registers the version that refers to it.
MIN_SERVER_GC_SECONDS = 60.0


@router.post("/artifacts:gc", name="artifacts.gc")
def collect_garbage(
    body: GarbageCollect, request: Request, principal: PrincipalDep, ws: WorkspaceDep
) -> GarbageReportOut:
    """Remove the artifacts nothing refers to on this server's home (``aimass gc``):
    deleted versions' bundles, reports and graphs, finished jobs' checkpoints, stray
    uploads and abandoned staging; all-projects admin keys only.

    Only what was last written more than ``older_than_seconds`` ago goes (at least 60
    here); ``dry_run`` lists without removing. The request's audit entry names the keys.
    """
    from aimass.workspace.gc import collect_garbage as collect

    principal.require_global_admin()
    if body.older_than_seconds < MIN_SERVER_GC_SECONDS:
        raise InvalidArgument(
            f"older_than_seconds {body.older_than_seconds:g} is too short through a running "
            f"server: use at least {MIN_SERVER_GC_SECONDS:g} (a job publishes its bundle "
            "moments before it registers the version that refers to it), or run 'aimass gc' "
            "where the home lives while nothing writes to it",
            older_than_seconds=body.older_than_seconds,
        )
    report = collect(
        ws.store, ws.artifacts, None, older_than=body.older_than_seconds, dry_run=body.dry_run
    )
    if report.removed and not body.dry_run:
        _audit_details(request, **report.audit_details())
    return GarbageReportOut.model_validate(report.to_dict())
