"""Health, readiness, metrics (keyless on loopback); who-am-I, about, samples and packaged
bases (any valid key)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from aimass._version import __version__
from aimass.schemas import AboutOut, PackagedBaseOut, SampleOut, WhoAmI
from aimass.server.deps import PrincipalDep, StateDep
from aimass.server.metrics_access import scrape_tenants

router = APIRouter()
api = APIRouter(prefix="/v1", tags=["system"])


@router.get("/healthz", name="system.health", include_in_schema=False)
def health() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", name="system.ready", include_in_schema=False)
def ready(state: StateDep) -> Response:
    """Started (admin key, workers, warm models), the store answers, and so does the
    artifacts' bucket when there is one (a success is trusted for ``BUCKET_CHECK_SECONDS``).

    The answer names no bucket, endpoint or error: the route is keyless. The server's
    log says what failed.
    """
    try:
        state.workspace.jobs.counts()
    except Exception:
        return JSONResponse({"status": "store unavailable"}, status_code=503)
    if not state.artifacts_reachable():
        return JSONResponse({"status": "object store unavailable"}, status_code=503)
    if not state.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", name="system.metrics", include_in_schema=False)
def metrics(request: Request, state: StateDep) -> Response:
    """Prometheus metrics; per project and model only for the metrics token or an
    all-projects admin key (beyond loopback, the request pipeline has already refused
    a scrape without the token or a ``metrics`` key: server/metrics_access.py).

    Otherwise series are summed over the ``project`` and ``model`` labels, so a scrape
    learns no tenant's names (the 404-not-403 hiding would be moot).
    """
    tenants = scrape_tenants(request.scope, state.settings)
    body = state.metrics.render(tenants=tenants)
    return Response(body, media_type="text/plain; version=0.0.4")


@api.get("/whoami", name="auth.whoami")
def whoami(principal: PrincipalDep) -> WhoAmI:
    """The caller as the server sees it."""
    return WhoAmI(
        actor=principal.actor,
        key_id=principal.key_id,
        project=principal.project,
        scopes=sorted(principal.scopes),
    )


@api.get("/about", name="system.about")
def about(principal: PrincipalDep, state: StateDep) -> AboutOut:
    """This server's aimass version and the policies a client adapts to: under
    ``commercial_use_only`` it trains and serves only commercially usable weights, so
    ``aimass quickstart`` picks the commercially usable recipe."""
    return AboutOut(version=__version__, commercial_use_only=state.settings.commercial_use_only)


@api.get("/samples", name="datasets.samples")
def samples(principal: PrincipalDep) -> list[SampleOut]:
    """Packaged sample datasets this server can import."""
    from aimass.data.samples import list_samples

    return [SampleOut.from_entity(sample) for sample in list_samples()]


@api.get("/packaged-bases", name="bases.packaged", tags=["bases"])
def packaged_bases(principal: PrincipalDep) -> list[PackagedBaseOut]:
    """Pretrained bases that packages carry, and whether each is installed on this server
    (``POST /v1/projects/{project}/bases`` with ``source`` imports one)."""
    from aimass.jobs.bases import list_packaged_bases

    return [PackagedBaseOut.from_entity(base) for base in list_packaged_bases()]
