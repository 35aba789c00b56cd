"""The report as one self-contained HTML page: inline CSS, figures as data URIs, no scripts.

Every string that comes from data (labels, group names, texts, model names) is
escaped; a Content-Security-Policy forbids scripts and any external load, so
a report stays inert and offline even when a dataset holds hostile text.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "REPORT_CSP",
    "data_uri",
    "esc",
    "fmt",
    "highlight",
    "img",
    "kv_table",
    "page",
    "table",
    "verdict_badge",
    "verdict_box",
    "visible_whitespace",
]

_CSS = """
:root { --fg:#111827; --muted:#4b5563; --line:#e5e7eb; --bg:#ffffff; --soft:#f3f4f6;
  --ok:#15803d; --warn:#b45309; --fail:#b91c1c; --na:#6b7280; --accent:#1d4ed8; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header, main, footer { max-width: 1100px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 24px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.3rem; margin: 36px 0 8px; padding-top: 8px; border-top: 2px solid var(--line); }
h3 { font-size: 1.05rem; margin: 20px 0 6px; }
.sub { color: var(--muted); margin: 0 0 12px; }
nav { margin: 12px 0 4px; display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: .95rem; }
nav a { color: var(--accent); text-decoration: none; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 10px;
  margin: 14px 0; }
.card { background: var(--soft); border-radius: 8px; padding: 10px 12px; }
.card .k { color: var(--muted); font-size: .82rem; }
.card .v { font-size: 1.25rem; font-weight: 600; }
.wrap { overflow-x: auto; margin: 8px 0; }
table { border-collapse: collapse; font-size: .9rem; min-width: 40%; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left;
  vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; margin: 10px 0; }
.badge { display: inline-block; font-size: .75rem; font-weight: 600; border-radius: 999px;
  padding: 1px 9px; margin-left: 8px; vertical-align: middle; color: #fff; }
.badge.ok, .badge.pass { background: var(--ok); } .badge.warn { background: var(--warn); }
.badge.fail { background: var(--fail); }
.badge.skipped, .badge.not-applicable { background: var(--na); }
.verdict { border-left: 6px solid var(--na); border-radius: 4px; padding: 8px 12px;
  margin: 8px 0; background: var(--soft); }
.verdict.pass { background: #f0fdf4; border-color: var(--ok); }
.verdict.warn { background: #fffbeb; border-color: var(--warn); }
.verdict.fail { background: #fef2f2; border-color: var(--fail); }
.verdict ul { margin: 4px 0 0; padding-left: 20px; }
.verdict .overall { font-weight: 600; }
.reason { background: #fffbeb; border-left: 4px solid var(--warn); padding: 8px 12px; }
.note { color: var(--muted); font-size: .9rem; }
.explained { background: var(--soft); border-radius: 8px; padding: 10px 12px; margin: 10px 0;
  line-height: 2; overflow-wrap: anywhere; }
.explained .meta { line-height: 1.4; color: var(--muted); font-size: .85rem; margin-bottom: 4px; }
.w { border-radius: 3px; padding: 1px 1px; }
.legend span { padding: 1px 6px; border-radius: 3px; margin-right: 6px; }
code { background: var(--soft); padding: 0 4px; border-radius: 3px; overflow-wrap: anywhere; }
footer { color: var(--muted); font-size: .85rem; margin: 40px auto 30px; }
"""

REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def esc(value: Any) -> str:
    """HTML-escape anything (quotes included)."""
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """A number as people read it; ``—`` for missing values."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A scrollable table; numbers are right-aligned and formatted."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            numeric = isinstance(cell, int | float) and not isinstance(cell, bool)
            cells.append(
                f'<td class="n">{esc(fmt(cell))}</td>' if numeric else f"<td>{esc(fmt(cell))}</td>"
            )
        body.append("<tr>" + "".join(cells) + "</tr>")
    rows_html = "".join(body)
    return (
        f'<div class="wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows_html}</tbody></table></div>"
    )


def kv_table(pairs: Sequence[tuple[str, Any]]) -> str:
    """A two-column field/value table (values left-aligned, formatted)."""
    return table(("field", "value"), [(k, fmt(v)) for k, v in pairs])


def visible_whitespace(text: str) -> str:
    """Tabs, newlines and runs of spaces made visible (for perturbation examples)."""
    return text.replace("\t", "⇥").replace("\n", "↵").replace("  ", " ·")


def img(uri: str | None, alt: str) -> str:
    """An embedded figure (nothing when the figure is missing)."""
    return f'<img src="{esc(uri)}" alt="{esc(alt)}">' if uri else ""


def data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def highlight(text: str, words: Sequence[dict[str, Any]], *, signed: bool) -> str:
    """``text`` with each scored word shaded: green for, red against, blue for attention."""
    scale = max((abs(float(w["score"])) for w in words), default=0.0) or 1.0
    out, pos = [], 0
    for w in words:
        start, end, score = int(w["start"]), int(w["end"]), float(w["score"])
        out.append(esc(text[pos:start]))
        alpha = min(abs(score) / scale, 1.0) * 0.75
        rgb = ("22,163,74" if score >= 0 else "220,38,38") if signed else "37,99,235"
        out.append(
            f'<span class="w" style="background:rgba({rgb},{alpha:.2f})" '
            f'title="{esc(f"{score:+.4f}")}">{esc(text[start:end])}</span>'
        )
        pos = end
    out.append(esc(text[pos:]))
    return "".join(out)


def verdict_badge(status: str) -> str:
    """A pass/warn/fail badge: the word on a colour with at least 4.5:1 contrast to white."""
    return f'<span class="badge {esc(status)}" title="verdict: {esc(status)}">{esc(status)}</span>'


def verdict_box(status: str, reasons: Sequence[str], *, lead: str = "") -> str:
    """A verdict's reasons in a box tinted by its status (``lead``: a first line, raw HTML)."""
    items = "".join(f"<li>{esc(r)}</li>" for r in reasons)
    listing = f"<ul>{items}</ul>" if items else ""
    return f'<div class="verdict {esc(status)}">{lead}{listing}</div>'


def page(
    *,
    title: str,
    subtitle: str,
    cards: Sequence[tuple[str, Any]],
    nav: Sequence[tuple[str, str]],
    body: str,
    footer: str,
    banner: str = "",
) -> str:
    """The whole document (``banner``: HTML shown under the subtitle, e.g. the verdict)."""
    card_html = "".join(
        f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div></div>'
        for k, v in cards
    )
    nav_html = "".join(f'<a href="#{esc(anchor)}">{esc(label)}</a>' for anchor, label in nav)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><p class="sub">{esc(subtitle)}</p>{banner}'
        f'<div class="cards">{card_html}</div><nav>{nav_html}</nav></header>'
        f"<main>{body}</main><footer>{footer}</footer></body></html>\n"
    )
