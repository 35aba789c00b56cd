"""Console pages for bases: the project's bases and the packaged ones to import, a base's
versions with the models trained from each, importing, deriving (from a trained model,
or shrunk), training a tokenizer on a dataset, creating a from-scratch base around one,
and deleting.

Each action calls the REST API's own route functions with the same checks
(``models:write``; a packaged name or a directory inside ``AIMASS_IMPORT_DIRS``, never
a URL; a version models were trained from is refused, naming them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from aimass.errors import InvalidArgument, NotFound
from aimass.schemas import BaseModelOut
from aimass.server.console._render import (
    after_delete,
    form,
    form_body,
    guard,
    page,
    principal,
    require_csrf,
    state,
    version_field,
)
from aimass.server.console.urls import PREFIX

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get(PREFIX + "/p/{project}/bases", name="console.bases")
@guard
async def bases(request: Request, project: str) -> Response:
    """The project's bases (newest version of each) and the packaged bases this server
    can import."""
    from aimass.jobs.bases import list_packaged_bases
    from aimass.models.scratch import list_architectures
    from aimass.schemas import PackagedBaseOut

    me = principal(request)
    me.require("read", project=project)
    ws = state(request).workspace

    def load() -> dict[str, Any]:
        registered = ws.bases.list(project=project)
        return {
            "registered": registered,
            "tokenizers": [b for b in registered if b.family == "tokenizer"],
            "datasets": ws.datasets.list(project=project),
            "architectures": list_architectures(),
            "packaged": [PackagedBaseOut.from_entity(b) for b in list_packaged_bases()],
        }

    found = await run_in_threadpool(load)
    return page(
        request,
        "bases.html",
        project=project,
        can_import=me.can("models:write", project=project),
        **found,
    )


@router.post(PREFIX + "/p/{project}/bases", name="console.import_base")
@guard
async def import_base(request: Request, project: str) -> Response:
    """Import a packaged base (or a Hugging Face directory inside the server's import
    directories) through the API's ``POST .../bases``; on to the base's page."""
    from aimass.schemas import BaseImport
    from aimass.server.routes.datasets import import_base as import_route

    def body(fields: dict[str, str]) -> Any:
        chosen = {k: fields.get(k, "").strip() or None for k in ("source", "path", "name")}
        return _body(BaseImport, **chosen)

    return await _register(request, project, body, import_route)


@router.post(PREFIX + "/p/{project}/bases/from-model", name="console.base_from_model")
@guard
async def base_from_model(request: Request, project: str) -> Response:
    """Register a trained model version as a base, its head dropped (the API's
    ``POST .../bases:from-model``: a masked-LM pre-trained encoder to fine-tune)."""
    from aimass.schemas import BaseFromModel
    from aimass.server.routes.datasets import base_from_model as from_model_route

    def body(fields: dict[str, str]) -> Any:
        return _body(BaseFromModel, model=fields.get("model", ""), name=fields.get("name", ""))

    return await _register(request, project, body, from_model_route)


@router.post(PREFIX + "/p/{project}/bases/shrink", name="console.shrink_base")
@guard
async def shrink_base(request: Request, project: str) -> Response:
    """A base cut to fewer layers, as a distilled student's start (the API's
    ``POST .../bases:shrink``)."""
    from aimass.schemas import BaseShrink
    from aimass.server.routes.datasets import shrink_base as shrink_route

    def body(fields: dict[str, str]) -> Any:
        return _body(
            BaseShrink,
            base=fields.get("base", ""),
            name=fields.get("name", ""),
            layers=fields.get("layers", ""),
            pick=fields.get("pick", "first"),
            intermediate_size=fields.get("intermediate_size") or 0,
        )

    return await _register(request, project, body, shrink_route)


@router.post(PREFIX + "/p/{project}/bases/train-tokenizer", name="console.train_tokenizer")
@guard
async def train_tokenizer(request: Request, project: str) -> Response:
    """Train a WordPiece or byte-level BPE tokenizer on a dataset's training split and
    register it (the API's ``POST .../bases:train-tokenizer``): a from-scratch base's
    vocabulary."""
    from aimass.schemas import TokenizerTrain
    from aimass.server.routes.datasets import train_tokenizer as tokenizer_route

    def body(fields: dict[str, str]) -> Any:
        return _body(
            TokenizerTrain,
            dataset=fields.get("dataset", ""),
            name=fields.get("name", ""),
            kind=fields.get("kind", "wordpiece"),
            vocab_size=fields.get("vocab_size") or 8000,
            min_frequency=fields.get("min_frequency") or 2,
        )

    return await _register(request, project, body, tokenizer_route)


@router.post(PREFIX + "/p/{project}/bases/scratch", name="console.scratch_base")
@guard
async def scratch_base(request: Request, project: str) -> Response:
    """A randomly initialised base of a preset size around a registered tokenizer (the
    API's ``POST .../bases:scratch``), to pre-train on your own data."""
    from aimass.schemas import BaseScratch
    from aimass.server.routes.datasets import create_scratch as scratch_route

    def body(fields: dict[str, str]) -> Any:
        return _body(
            BaseScratch,
            name=fields.get("name", ""),
            architecture=fields.get("architecture", ""),
            tokenizer=fields.get("tokenizer", ""),
            preset=fields.get("preset", "tiny"),
            seed=fields.get("seed") or 0,
            overrides=size_overrides(fields.get("overrides", "")),
        )

    return await _register(request, project, body, scratch_route)


def size_overrides(text: str) -> dict[str, int | float]:
    """``KEY=VALUE`` pairs, separated by commas or spaces, as the CLI's ``--set`` takes
    them (``num_layers=6, max_length=512``); each value a number."""
    overrides: dict[str, int | float] = {}
    for pair in text.replace(",", " ").split():
        key, sep, value = pair.partition("=")
        number: int | float | None = None
        for kind in (int, float):
            try:
                number = kind(value)
                break
            except ValueError:
                continue
        if not sep or not key or number is None:
            raise InvalidArgument(
                f"size override {pair!r} is not KEY=NUMBER; write e.g. 'num_layers=6, "
                "max_length=512'",
                field="overrides",
            )
        overrides[key] = number
    return overrides


async def _register(
    request: Request,
    project: str,
    body: Callable[[dict[str, str]], Any],
    route: Callable[..., BaseModelOut],
) -> Response:
    """A form that registers a base version: the scope, the CSRF token, the API route
    with the body the form's fields make, then the new version's page."""
    principal(request).require("models:write", project=project)
    fields = await form(request)
    require_csrf(request, fields)
    made_body, ws = body(fields), state(request).workspace
    made = await run_in_threadpool(lambda: route(body=made_body, project=project, ws=ws))
    target = f"{PREFIX}/p/{project}/bases/{made.name}?version={made.version}"
    return RedirectResponse(target, status_code=303)


def _body(schema: type[Any], **fields: Any) -> Any:
    """The API's request body from a base form's fields, each name and number stripped of
    the spaces around it (InvalidArgument naming what is wrong)."""
    stripped = {k: v.strip() if isinstance(v, str) else v for k, v in fields.items()}
    return form_body(schema, "base", **stripped)


@router.get(PREFIX + "/p/{project}/bases/{name}", name="console.base")
@guard
async def base(request: Request, project: str, name: str, version: int | None = None) -> Response:
    """A base's versions: architecture, size, where its weights came from, their license,
    and the model versions trained from each."""
    me = principal(request)
    me.require("read", project=project)
    ws = state(request).workspace

    def load() -> dict[str, Any]:
        versions = ws.bases.versions(name, project=project)
        users = ws.bases.trained_from_each(project=project)
        used = {b.version: users.get(b.ref, []) for b in versions}
        free = [b for b in versions if not used[b.version]]
        return {"versions": versions, "used": used, "free": free}

    found = await run_in_threadpool(load)
    return page(
        request,
        "base_model.html",
        project=project,
        name=name,
        chosen=version,
        can_delete=me.can("models:write", project=project),
        **found,
    )


@router.post(PREFIX + "/p/{project}/bases/{name}/delete", name="console.delete_base_version")
@guard
async def delete_base_version(request: Request, project: str, name: str) -> Response:
    """Delete the posted version, which no model version may have been trained from (the
    page asks for confirmation first); its bundle goes at the next ``aimass gc``."""
    from aimass.server.routes.datasets import delete_base_version as delete_route

    principal(request).require("models:write", project=project)
    fields = await form(request)
    require_csrf(request, fields)
    ws = state(request).workspace
    await run_in_threadpool(delete_route, name, version_field(fields), project, ws)
    try:
        await run_in_threadpool(ws.bases.versions, name, project=project)
    except NotFound:  # that was the last version
        return after_delete(project, "bases")
    return after_delete(project, f"bases/{name}")
