"""``Annotated`` dependencies: the workspace, the authenticated principal, project access.

Routes declare what they need (``ReadProject``, ``TrainProject``, ...); the
dependency authenticates the key, checks the scope in that project (and for
that model, when the path names one) and answers 404 for another project's
resources, so names never leak across tenants.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from aimass.refs import parse_ref, validate_name
from aimass.server.state import ServerState
from aimass.workspace import Principal, Workspace
from aimass.workspace.access import parse_key

__all__ = [
    "AdminProject",
    "DataWriteProject",
    "ModelsWriteProject",
    "PredictProject",
    "PrincipalDep",
    "ReadProject",
    "StateDep",
    "TrainProject",
    "WorkspaceDep",
    "project_access",
]

_bearer = HTTPBearer(auto_error=False, description="An aimass API key: aimass_<id>_<secret>")


# Async although they do no I/O: FastAPI runs a plain ``def`` dependency in its thread
# pool, a thread hop per request on the predict hot path.
async def _state(request: Request) -> ServerState:
    return request.app.state.aimass


StateDep = Annotated[ServerState, Depends(_state)]


async def _workspace(request: Request) -> Workspace:
    return request.app.state.aimass.workspace


WorkspaceDep = Annotated[Workspace, Depends(_workspace)]


async def _principal(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    found = request.scope["state"].get("principal")
    if found is not None:
        return found  # the request pipeline authenticated the key from the headers
    key = credentials.credentials if credentials is not None else None
    request.scope["state"]["key_id"] = parse_key(key) if key else None
    principal = await run_in_threadpool(state.workspace.keys.authenticate, key)
    request.scope["state"]["principal"] = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(_principal)]


def project_access(scope: str, *, model_param: str | None = None) -> Callable[..., Awaitable[str]]:
    """A dependency: the path's project, once the caller holds ``scope`` in it.

    Args:
        scope: Needed scope (``read``, ``train``, ...).
        model_param: Path parameter naming the model, for model-narrowed scopes.
    """

    async def dependency(
        request: Request, project: str, principal: PrincipalDep, state: StateDep
    ) -> str:
        validate_name(project, kind="project")
        model = None
        if model_param is not None:
            model = parse_ref(str(request.path_params[model_param]), kind="model").name
        principal.require(scope, project=project, model=model)
        await state.require_project(project)
        return project

    return dependency


ReadProject = Annotated[str, Depends(project_access("read"))]
DataWriteProject = Annotated[str, Depends(project_access("data:write"))]
TrainProject = Annotated[str, Depends(project_access("train"))]
AdminProject = Annotated[str, Depends(project_access("admin"))]
ModelsWriteProject = Annotated[str, Depends(project_access("models:write", model_param="name"))]
PredictProject = Annotated[str, Depends(project_access("predict", model_param="ref"))]
