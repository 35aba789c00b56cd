"""``aimass serve``, ``keys``, ``projects``, ``audit`` and ``jobs``.

Like every command, these work on the local home, or on a server with
``--url``/``AIMASS_URL`` and ``AIMASS_API_KEY`` (through :func:`backend`).
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from aimass.cli._common import (
    JsonOpt,
    ProjectOpt,
    backend,
    command,
    console,
    emit_json,
    err_console,
    local_home,
    settings,
    table,
    when,
)
from aimass.errors import InvalidArgument, NotImplementedFeature
from aimass.operations import ALL_PROJECTS

keys = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
projects = typer.Typer(help="Projects (tenants).", no_args_is_help=True)
audit = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)

log = logging.getLogger("aimass.server")


def register(app: typer.Typer) -> None:
    """Add these commands to the ``aimass`` app."""
    from aimass.cli import quotas  # noqa: F401 (adds keys update/show, projects set-limits/show)
    from aimass.cli.jobs import jobs

    app.command("serve")(serve)
    app.add_typer(keys, name="keys")
    app.add_typer(projects, name="projects")
    app.add_typer(audit, name="audit")
    app.add_typer(jobs, name="jobs")


# -- serve ---------------------------------------------------------------------------------


class HttpParser(StrEnum):
    """uvicorn's HTTP implementations."""

    auto = "auto"
    httptools = "httptools"
    h11 = "h11"


class EventLoop(StrEnum):
    """uvicorn's event loops."""

    auto = "auto"
    uvloop = "uvloop"
    asyncio = "asyncio"


@command
def serve(
    host: Annotated[
        str,
        typer.Option(
            help="Address to bind; loopback unless you mean otherwise (beyond it: "
            "--tls-cert/--tls-key, or --insecure behind a TLS proxy)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8600,
    job_threads: Annotated[
        int | None,
        typer.Option(
            "--job-threads",
            min=0,
            max=64,
            help="Threads running queued jobs (training, evaluation, batch prediction) in this "
            "server, so the jobs run at once; 0 runs none here (default AIMASS_JOB_WORKERS, 1).",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=0, max=64, hidden=True, help="Deprecated.")
    ] = None,
    runners: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Runner processes per served model; 0 runs batches in the server process "
            "(default AIMASS_SERVE_RUNNERS, else 2 on CPU, 1 on CUDA).",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="PEM certificate (chain): serve HTTPS (default AIMASS_TLS_CERT)."),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(help="Its private key, a PEM file of mode 0600 (default AIMASS_TLS_KEY)."),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Serve plain HTTP beyond loopback: only when a reverse proxy in front "
            "terminates TLS.",
        ),
    ] = False,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Proxy addresses (comma-separated) whose X-Forwarded-For/-Proto headers are "
            "trusted for the client address and scheme; default: no one.",
        ),
    ] = None,
    http: Annotated[
        HttpParser,
        typer.Option(
            help="HTTP parser: httptools (C, the default when installed) or h11 (pure Python)."
        ),
    ] = HttpParser.auto,
    loop: Annotated[
        EventLoop,
        typer.Option(help="Event loop: uvloop (the default when installed) or asyncio."),
    ] = EventLoop.auto,
) -> None:
    """Run the REST API server.

    uvicorn on ``create_app``, with its job threads, micro-batchers and model runner
    processes.
    """
    import uvicorn

    from aimass.server import create_app
    from aimass.server.listen import check_listen, check_tls_files, is_loopback, uvicorn_options
    from aimass.workspace import Workspace

    found = settings()
    if found.url:
        raise InvalidArgument("'aimass serve' runs a server; unset AIMASS_URL / --url")
    job_threads = _job_threads(job_threads, workers)
    cert, key = tls_cert or found.tls_cert, tls_key or found.tls_key
    check_tls_files(cert, key)
    check_listen(host, tls=cert is not None, insecure=insecure)
    update: dict[str, Any] = {"bind_host": host}
    if runners is not None:
        update["serve_runners"] = runners
    if not is_loopback(host):
        if cert is None:
            log.warning(
                "serving plain HTTP on %s (--insecure): keys and data cross the network in "
                "clear text unless a proxy in front terminates TLS",
                host,
            )
        err_console.print(
            f"[yellow]binding {host}: the API is reachable from the network. Requests must "
            "name an allowed host (AIMASS_ALLOWED_HOSTS), and /metrics needs the metrics "
            "token (AIMASS_METRICS_TOKEN) or a key with the metrics scope.[/]"
        )
        update["allowed_hosts"] = [*found.allowed_hosts, host]
    found = found.model_copy(update=update)
    ws = Workspace(found)
    path, created = ws.keys.ensure_admin()
    if created:
        err_console.print(
            f"created the first admin API key; it is in {path} (mode 0600, shown nowhere else)"
        )
    app = create_app(found, workspace=ws, job_workers=job_threads, freeze_gc=True)
    scheme = "https" if cert is not None else "http"
    err_console.print(f"aimass serving {found.home} on {scheme}://{host}:{port}  (docs: /v1/docs)")
    options = uvicorn_options(
        host,
        port,
        tls_cert=cert,
        tls_key=key,
        forwarded_allow_ips=forwarded_allow_ips,
        http=http.value,
        loop=loop.value,
    )
    try:
        uvicorn.run(app, **options)
    finally:
        ws.close()


def _job_threads(job_threads: int | None, workers: int | None) -> int | None:
    """``--job-threads``, or the deprecated ``--workers`` it replaced (with a warning)."""
    if workers is None:
        return job_threads
    if job_threads is not None:
        raise InvalidArgument("--workers is the old name of --job-threads: give only --job-threads")
    err_console.print(
        "[yellow]--workers is deprecated and will be removed: it sets the threads that run "
        "jobs; use --job-threads.[/]"
    )
    return workers


# -- keys ------------------------------------------------------------------------------------

ScopeOpt = Annotated[
    list[str],
    typer.Option(
        "--scope",
        "-s",
        help="admin, data:write, train, models:write, predict, read, metrics; "
        "models:write:MODEL / predict:MODEL narrow to one model. Repeat for several.",
    ),
]


@keys.command("create")
@command
def keys_create(
    name: Annotated[str, typer.Argument(help="A label for the key.")],
    scope: ScopeOpt,
    project: ProjectOpt = "default",
    all_projects: Annotated[
        bool, typer.Option("--all-projects", help="An admin key for every project.")
    ] = False,
    expires_in_days: Annotated[float | None, typer.Option(help="Expire after N days.")] = None,
    predict_budget: Annotated[
        int | None, typer.Option(help="Inputs it may predict per UTC day (query budget).")
    ] = None,
    output_policy: Annotated[
        str | None,
        typer.Option(help="What its predictions show: labels, top_k=N, round=D (comma-combined)."),
    ] = None,
    limit: Annotated[
        list[str] | None,
        typer.Option(
            "--limit",
            "-l",
            help="A per-key limit NAME=VALUE (requests_per_key, max_predicts_per_key, "
            "max_streams_per_key). Repeat for several.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a key; it is printed once and cannot be shown again."""
    from aimass.cli.quotas import parse_limits

    limits = {k: v for k, v in parse_limits(limit).items() if v is not None}
    created = backend().keys.create(
        name,
        scopes=scope,
        expires_in_days=expires_in_days,
        predict_budget=predict_budget,
        output_policy=output_policy,
        limits=limits,
        project=_key_project(project, all_projects),
    )
    if json_out:
        emit_json(created)
        return
    record = created.record
    err_console.print(
        f"key {record.id} ({', '.join(record.scopes)}) for "
        f"{record.project or 'all projects'}; store it now, it is not shown again:"
    )
    typer.echo(created.key)


def _key_project(project: str, all_projects: bool) -> str:
    """The project a key command works in; ``--all-projects`` is local-only."""
    if not all_projects:
        return project
    if local_home() is None:
        raise NotImplementedFeature(
            "--all-projects: the REST API manages the keys of one project at a time; make, "
            "list or revoke all-projects keys with the CLI on the server's home (no --url)"
        )
    return ALL_PROJECTS


@keys.command("list")
@command
def keys_list(
    project: ProjectOpt = "default",
    all_projects: Annotated[bool, typer.Option("--all-projects", help="Every key.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Keys (records only; secrets are never stored)."""
    found = backend().keys.list(project=_key_project(project, all_projects))
    if json_out:
        emit_json(found)
        return
    table(
        "API keys",
        ["id", "name", "project", "scopes", "expires", "revoked", "last used", "budget/policy"],
        [
            [
                k.id,
                k.name,
                k.project or "*",
                ", ".join(k.scopes),
                when(k.expires_at),
                "yes" if k.revoked else "no",
                when(k.last_used_at),
                f"{k.predict_budget or '-'} / {k.output_policy or 'full'}",
            ]
            for k in found
        ],
    )


@keys.command("revoke")
@command
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (see 'aimass keys list').")],
    project: ProjectOpt = "default",
    all_projects: Annotated[
        bool, typer.Option("--all-projects", help="The key may be of any project.")
    ] = False,
) -> None:
    """Revoke a key; it is refused from the next request on."""
    revoked = backend().keys.revoke(key_id, project=_key_project(project, all_projects))
    console.print(f"revoked key {revoked.id} ({revoked.name})")


# -- projects --------------------------------------------------------------------------------


@projects.command("create")
@command
def projects_create(
    name: Annotated[str, typer.Argument(help="Project name (a slug).")],
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    json_out: JsonOpt = False,
) -> None:
    """Create a project."""
    created = backend().projects.create(name, description=description)
    if json_out:
        emit_json(created)
    else:
        console.print(f"created project {created.name}")


@projects.command("list")
@command
def projects_list(json_out: JsonOpt = False) -> None:
    """Projects you may see."""
    found = backend().projects.list()
    if json_out:
        emit_json(found)
        return
    table(
        "projects",
        ["name", "description", "created"],
        [[p.name, p.description or "-", when(p.created_at)] for p in found],
    )


# -- audit -----------------------------------------------------------------------------------


@audit.command("list")
@command
def audit_list(
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only this project.")
    ] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. models.predict.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Most events shown.")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Newest audit events first."""
    found = backend().audit.list(project=project, action=action, limit=limit)
    if json_out:
        emit_json(found)
        return
    table(
        "audit log",
        ["seq", "time", "actor", "project", "action", "resource", "outcome"],
        [
            [
                e.seq,
                e.time.strftime("%Y-%m-%d %H:%M:%S"),
                e.actor,
                e.project or "-",
                e.action,
                e.resource[:60],
                e.outcome,
            ]
            for e in found
        ],
    )


@audit.command("verify")
@command
def audit_verify(json_out: JsonOpt = False) -> None:
    """Recompute the hash chain; exit 1 if any row was edited or deleted."""
    result = backend().audit.verify()
    if json_out:
        emit_json(result)
    elif result.ok:
        console.print(f"audit log intact: {result.rows:,} rows, head {result.head_seq}")
    else:
        err_console.print(f"[bold red]audit log broken[/] ({len(result.problems)} problems):")
        for problem in result.problems:
            err_console.print(f"  {problem}")
    if not result.ok:
        raise typer.Exit(1)
