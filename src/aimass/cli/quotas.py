"""``aimass keys update|show`` and ``aimass projects set-limits|show``: budgets, output
policies and limits kept in the store with a key or a project.

Registered on the ``keys`` and ``projects`` groups of :mod:`aimass.cli.service`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from aimass.cli._common import JsonOpt, ProjectOpt, backend, command, console, emit_json
from aimass.cli.service import keys, projects
from aimass.errors import InvalidArgument
from aimass.schemas import ApiKeyOut, ProjectOut

__all__ = ["LimitOpt", "parse_limits"]

LimitOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--limit",
        "-l",
        help="NAME=VALUE, e.g. max_streams_per_key=2 or requests_per_key=60/minute; "
        "NAME= removes a stored value. Repeat for several.",
    ),
]


def parse_limits(options: list[str] | None) -> dict[str, Any]:
    """``["NAME=VALUE", "OTHER="]`` → ``{"NAME": "VALUE", "OTHER": None}`` (checked later)."""
    found: dict[str, Any] = {}
    for option in options or []:
        name, eq, value = option.partition("=")
        if not eq or not name.strip():
            raise InvalidArgument(
                f"--limit {option!r} is not NAME=VALUE; e.g. --limit max_streams_per_key=2 "
                "(or NAME= to remove a stored value)"
            )
        found[name.strip()] = value.strip() or None
    return found


def show_key(key: ApiKeyOut) -> None:
    """A key's record for people."""
    console.print(f"key {key.id} ({key.name}) in {key.project or 'all projects'}")
    console.print(f"  scopes:         {', '.join(key.scopes)}")
    console.print(f"  revoked:        {'yes' if key.revoked else 'no'}")
    budget = "unlimited" if key.predict_budget is None else f"{key.predict_budget:,} inputs/day"
    console.print(f"  predict budget: {budget}")
    console.print(f"  output policy:  {key.output_policy or 'full'}")
    console.print(f"  limits:         {_limits_text(key.limits)}")


def show_project(project: ProjectOut) -> None:
    """A project's record for people."""
    console.print(f"project {project.name}: {project.description or '-'}")
    console.print(f"  limits: {_limits_text(project.limits)}")


def _limits_text(limits: dict[str, Any]) -> str:
    if not limits:
        return "none stored (the server's settings apply)"
    return ", ".join(f"{k}={v}" for k, v in sorted(limits.items()))


@keys.command("show")
@command
def keys_show(
    key_id: Annotated[str, typer.Argument(help="The key id (see 'aimass keys list').")],
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """One key: scopes, expiry, query budget, output policy and limits."""
    found = backend().keys.get(key_id, project=project)
    if json_out:
        emit_json(found)
    else:
        show_key(found)


@keys.command("update")
@command
def keys_update(
    key_id: Annotated[str, typer.Argument(help="The key id (see 'aimass keys list').")],
    predict_budget: Annotated[
        str | None,
        typer.Option(help="Inputs per UTC day, or 'unlimited' to remove the budget."),
    ] = None,
    output_policy: Annotated[
        str | None,
        typer.Option(help="labels, top_k=N, round=D (comma-combined), or 'full' to remove it."),
    ] = None,
    limit: LimitOpt = None,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Change a key's query budget, output policy or limits; the rest stays as it is."""
    if predict_budget is None and output_policy is None and not limit:
        raise InvalidArgument(
            "nothing to change: give --predict-budget, --output-policy or --limit NAME=VALUE"
        )
    budget: int | str | None = predict_budget
    if predict_budget is not None and predict_budget.strip().lower() not in ("unlimited", "none"):
        budget = _whole(predict_budget)
    updated = backend().keys.update(
        key_id,
        predict_budget=budget,
        output_policy=output_policy,
        limits=parse_limits(limit) if limit else None,
        project=project,
    )
    if json_out:
        emit_json(updated)
    else:
        show_key(updated)


def _whole(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise InvalidArgument(
            f"--predict-budget {text!r} is not a whole number of inputs per day >= 1; "
            "give e.g. 10000, or 'unlimited' to remove the budget"
        )
    return int(text)


@projects.command("show")
@command
def projects_show(
    name: Annotated[str, typer.Argument(help="Project name.")],
    json_out: JsonOpt = False,
) -> None:
    """One project, with the limits stored with it."""
    found = backend().projects.get(name)
    if json_out:
        emit_json(found)
    else:
        show_project(found)


@projects.command("set-limits")
@command
def projects_set_limits(
    name: Annotated[str, typer.Argument(help="Project name.")],
    limit: LimitOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Store limits with a project (max_active_jobs_per_project, max_epochs, max_job_seconds).

    They take precedence over AIMASS_LIMIT_OVERRIDES and the settings; NAME= removes one.
    On a server this needs an all-projects admin key.
    """
    changes = parse_limits(limit)
    if not changes:
        raise InvalidArgument("nothing to change: give --limit NAME=VALUE (NAME= removes one)")
    updated = backend().projects.set_limits(name, changes)
    if json_out:
        emit_json(updated)
    else:
        show_project(updated)
