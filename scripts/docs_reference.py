"""MkDocs hook: the REST and CLI references, generated at build time so they cannot go stale.

``reference/rest.md`` is rendered from the OpenAPI document of ``create_app`` (on a
throw-away home, with no job workers and no lifespan run: building the app only
opens an empty SQLite database in that home). ``reference/cli.md`` is rendered
from the Click command tree of the Typer app. Both are added in ``on_files`` as
generated files; nothing is written into ``docs/``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

SETTINGS_MARK = "<!-- settings-table -->"
REST_PAGE = "reference/rest.md"
CLI_PAGE = "reference/cli.md"
HTTP_METHODS = ("get", "put", "post", "patch", "delete")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the two generated reference pages."""
    files.append(File.generated(config, REST_PAGE, content=rest_reference(openapi_document())))
    files.append(File.generated(config, CLI_PAGE, content=cli_reference()))
    return files


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Fill the settings table into the page that asks for it."""
    if SETTINGS_MARK in markdown:
        markdown = markdown.replace(SETTINGS_MARK, settings_table())
    return markdown


# -- settings --------------------------------------------------------------------------


def _attribute_docs(doc: str) -> dict[str, str]:
    """``name -> text`` from the ``Attributes:`` section of a Google-style docstring."""
    found: dict[str, str] = {}
    lines = doc.split("Attributes:", 1)[-1].splitlines()
    current = None
    for line in lines:
        stripped = line.strip()
        head, sep, rest = stripped.partition(":")
        if sep and head.isidentifier() and len(line) - len(line.lstrip()) <= 8:
            current = head
            found[current] = rest.strip()
        elif current and stripped:
            found[current] += " " + stripped
    return found


def settings_table() -> str:
    """Every ``AIMASS_*`` setting: variable, type, default and what it does."""
    from pydantic_core import PydanticUndefined

    from aimass.settings import Settings

    docs = _attribute_docs(Settings.__doc__ or "")
    home = str(Path.home())
    rows = ["| variable | type | default | what it does |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if field.default is not PydanticUndefined:
            default = field.default
        else:
            default = field.default_factory() if field.default_factory else None
        shown = "" if default is None else f"`{str(default).replace(home, '~')}`"
        kind = str(field.annotation).replace("typing.", "").replace("pathlib.", "")
        kind = kind.replace("<class '", "").replace("'>", "").replace("pydantic.types.", "")
        what = _cell(docs.get(name))
        rows.append(f"| `AIMASS_{name.upper()}` | `{_cell(kind)}` | {_cell(shown)} | {what} |")
    return "\n".join(rows) + "\n"


# -- REST ------------------------------------------------------------------------------


def openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document, from an app on a temporary home."""
    from aimass.server import create_app
    from aimass.settings import Settings

    with tempfile.TemporaryDirectory(prefix="aimass-docs-") as home:
        app = create_app(Settings(home=Path(home), device="cpu"), job_workers=0)
        document = app.openapi()
        app.state.aimass.workspace.close()
    return document


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text or "").split()).replace("|", "\\|")


def _schema_name(schema: dict[str, Any] | None) -> str:
    """A schema's name (``$ref``), or a short description of an inline one."""
    if not schema:
        return "-"
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[`{name}`](#{name.lower()})"
    if "items" in schema:
        return f"array of {_schema_name(schema['items'])}"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " or ".join(_schema_name(s) for s in schema[key])
    return f"`{schema.get('type', 'object')}`"


def _content_schema(body: dict[str, Any]) -> str:
    """The schema names of a request body or response, per media type."""
    content = body.get("content") or {}
    if not content:
        return "-"
    parts = []
    for media, spec in content.items():
        name = _schema_name(spec.get("schema"))
        parts.append(name if media == "application/json" else f"{name} (`{media}`)")
    return "; ".join(parts)


def _operation(method: str, path: str, op: dict[str, Any]) -> list[str]:
    """Markdown for one operation."""
    lines = [f"### `{method.upper()} {path}`", ""]
    if op.get("summary"):
        lines += [f"**{op['summary']}**", ""]
    if op.get("description"):
        lines += [op["description"].strip(), ""]
    params = op.get("parameters") or []
    if params:
        lines += ["| parameter | in | required | type | description |", "|---|---|---|---|---|"]
        for p in params:
            schema = p.get("schema") or {}
            lines.append(
                f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} "
                f"| {_cell(_schema_name(schema))} | {_cell(p.get('description'))} |"
            )
        lines.append("")
    if "requestBody" in op:
        lines += [f"Request body: {_content_schema(op['requestBody'])}", ""]
    lines += ["| status | description | body |", "|---|---|---|"]
    for status, response in (op.get("responses") or {}).items():
        lines.append(
            f"| {status} | {_cell(response.get('description'))} | {_content_schema(response)} |"
        )
    return [*lines, ""]


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    """Markdown for one component schema: its fields, or its values for an enum."""
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [_cell(schema["description"]), ""]
    if "enum" in schema:
        return [*lines, "One of: " + ", ".join(f"`{v}`" for v in schema["enum"]), ""]
    required = set(schema.get("required") or ())
    properties = schema.get("properties") or {}
    if properties:
        lines += ["| field | type | required | description |", "|---|---|---|---|"]
        for field, spec in properties.items():
            lines.append(
                f"| `{field}` | {_cell(_schema_name(spec))} | "
                f"{'yes' if field in required else 'no'} | {_cell(spec.get('description'))} |"
            )
        lines.append("")
    return lines


def rest_reference(document: dict[str, Any]) -> str:
    """The REST reference page for an OpenAPI document."""
    info = document.get("info", {})
    lines = [
        "# REST API reference",
        "",
        f"Generated at build time from the OpenAPI document of aimass {info.get('version', '')} "
        "(`/v1/openapi.json` on a running server; `/v1/docs` renders it interactively). "
        "Do not edit: change the routes and schemas in `src/aimass/server/`.",
        "",
        info.get("description", "").strip(),
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in document.get("paths", {}).items():
        for method in HTTP_METHODS:
            if method in item:
                tag = (item[method].get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append((method, path, item[method]))
    for tag, operations in by_tag.items():
        lines += [f"## {tag}", ""]
        for method, path, op in operations:
            lines += _operation(method, path, op)
    schemas = document.get("components", {}).get("schemas", {})
    if schemas:
        lines += ["## Schemas", ""]
        for name in sorted(schemas):
            lines += _schema(name, schemas[name])
    return "\n".join(lines) + "\n"


# -- CLI -------------------------------------------------------------------------------


def _param_row(param: Any) -> str:
    """One row of a command's parameter table (a Click parameter)."""
    if param.param_type_name == "argument":
        name = f"`{(param.metavar or param.name).upper()}`"
        kind = "argument"
    else:
        names = [*param.opts, *param.secondary_opts]
        name = ", ".join(f"`{n}`" for n in names)
        kind = "flag" if getattr(param, "is_flag", False) else "option"
    default = param.default
    shown = "" if default is None or callable(default) or default in ((), []) else f"`{default}`"
    helptext = getattr(param, "help", None) or ""
    required = "yes" if param.required else "no"
    return f"| {name} | {kind} | {required} | {_cell(shown)} | {_cell(helptext)} |"


def _command(cmd: Any, ctx: Any, depth: int) -> list[str]:
    """Markdown for one (Click) command and, for a group, its subcommands.

    Typer ships its own copy of Click, so commands are recognised by what they
    have (``list_commands``), not by Click's classes.
    """
    path = ctx.command_path
    lines = [f"{'#' * min(depth, 6)} `{path}`", ""]
    if cmd.help:
        lines += [cmd.help.strip(), ""]
    lines += ["```text", cmd.get_usage(ctx).strip(), "```", ""]
    params = [p for p in cmd.get_params(ctx) if not getattr(p, "hidden", False)]
    params = [p for p in params if p.name != "help"]
    if params:
        lines += [
            "| name | kind | required | default | description |",
            "|---|---|---|---|---|",
            *(_param_row(p) for p in params),
            "",
        ]
    if hasattr(cmd, "list_commands"):
        for name in sorted(cmd.list_commands(ctx)):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                sub_ctx = sub.context_class(sub, info_name=name, parent=ctx)
                lines += _command(sub, sub_ctx, depth + 1)
    return lines


def cli_reference() -> str:
    """The CLI reference page, from the Typer app's command tree."""
    import typer.main

    from aimass.cli import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="aimass")
    lines = [
        "# CLI reference",
        "",
        "Generated at build time from the `aimass` Typer app; `aimass COMMAND --help` "
        "prints the same. Do not edit: change the commands in `src/aimass/cli/`.",
        "",
        "Every command reads its settings from `AIMASS_*` variables "
        "(see [Operations](../operations.md)); with `--url` or `AIMASS_URL` it talks "
        "to a server instead of the local home.",
        "",
    ]
    return "\n".join(lines + _command(root, ctx, 2)) + "\n"
