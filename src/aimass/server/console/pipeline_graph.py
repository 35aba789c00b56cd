"""A pipeline version's steps drawn as a graph: SVG coordinates computed here, no script.

Each step is a box in the column of its longest path from the entry, so every
arrow points right and a step stands after every step that leads to it; the boxes
of a column are stacked in the order the steps run (:func:`topological_order`).
An arrow per edge the step type declares, labelled with what takes it: a route's
language, ``otherwise`` (a route's default), ``below`` (a threshold's fallback
step); ``next`` is unlabelled. An arrow to the next column is a curve through
the gap between them; one that skips columns runs in a lane of its own under
every box, so it never crosses a step it does not reach. The template draws
boxes and arrows with SVG presentation attributes only, which the console's
content security policy allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aimass.serving.pipelines.spec import entry_of, topological_order
from aimass.serving.pipelines.steps import STEP_TYPES

__all__ = ["BOX", "Edge", "Graph", "Node", "draw"]

BOX = (184, 46)  # width, height of a step's box
_GAP = (80, 22)  # between columns, between boxes of a column
_LANE = 18  # between the lanes of arrows that skip columns, under the boxes
_MARGIN = 8
_DETAIL = 24  # characters of a step's detail line before it is cut


@dataclass(frozen=True)
class Node:
    """One step's box: top-left corner, its name and a line on what it does."""

    name: str
    kind: str
    detail: str
    x: int
    y: int
    entry: bool


@dataclass(frozen=True)
class Edge:
    """One arrow: its SVG path and the label drawn at its middle (empty for ``next``)."""

    path: str
    label: str
    label_x: int
    label_y: int


@dataclass(frozen=True)
class Graph:
    """The boxes and arrows of a spec, and the drawing's size."""

    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def _short(text: str) -> str:
    return text if len(text) <= _DETAIL else text[: _DETAIL - 1] + "…"


def _detail(step: dict[str, Any]) -> str:
    """What a step does, in a few words: its pinned model(s), or its rule."""
    kind = step["type"]
    if kind == "model":
        return _short(str(step.get("pin", {}).get("model") or step.get("model", "")))
    if kind == "ensemble":
        pins = step.get("pins") or [{"model": m} for m in step.get("models", [])]
        return _short(" + ".join(str(p["model"]) for p in pins))
    if kind == "threshold":
        return f"score ≥ {step.get('min_score')}"
    if kind == "route":
        return "by language"
    if kind == "deidentify":
        return str(step.get("mode", "mask"))
    if kind == "labels":
        return f"renames {len(step.get('map', {}))} labels"
    return kind


def _label(field: str) -> str:
    if field.startswith("routes."):
        return field.removeprefix("routes.")
    return {"next": "", "default": "otherwise", "fallback": "below"}.get(field, field)


def draw(spec: dict[str, Any]) -> Graph:
    """Lay out a (checked) pipeline spec: a box per step, an arrow per edge."""
    steps = {s["name"]: s for s in spec["steps"]}
    order = topological_order(spec)
    column = dict.fromkeys(order, 0)
    for name in order:  # longest path: a step's column is past every step before it
        for _, target in STEP_TYPES[steps[name]["type"]].edges(steps[name]):
            column[target] = max(column[target], column[name] + 1)
    rows: dict[int, int] = {}
    corners: dict[str, tuple[int, int]] = {}
    for name in order:
        col = column[name]
        row = rows.get(col, 0)
        rows[col] = row + 1
        corners[name] = (
            _MARGIN + col * (BOX[0] + _GAP[0]),
            _MARGIN + row * (BOX[1] + _GAP[1]),
        )
    entry = entry_of(spec)
    nodes = [
        Node(name, steps[name]["type"], _detail(steps[name]), *corners[name], name == entry)
        for name in order
    ]
    boxes_end = _MARGIN + max(rows.values()) * (BOX[1] + _GAP[1]) - _GAP[1]
    edges: list[Edge] = []
    lanes = 0
    for name in order:
        x, y = corners[name]
        start = (x + BOX[0], y + BOX[1] // 2)
        for field, target in STEP_TYPES[steps[name]["type"]].edges(steps[name]):
            tx, ty = corners[target]
            end = (tx - 2, ty + BOX[1] // 2)  # the arrow head ends on the box's edge
            if column[target] == column[name] + 1:
                bend = (end[0] - start[0]) // 2
                path = (
                    f"M{start[0]},{start[1]} C{start[0] + bend},{start[1]} "
                    f"{end[0] - bend},{end[1]} {end[0]},{end[1]}"
                )
                middle = ((start[0] + end[0]) // 2, (start[1] + end[1]) // 2 - 4)
            else:
                lanes += 1
                lane = boxes_end + lanes * _LANE
                turn = _GAP[0] // 4  # down and up again in the gaps next to the two boxes
                path = (
                    f"M{start[0]},{start[1]} H{start[0] + turn} V{lane} "
                    f"H{end[0] - turn} V{end[1]} H{end[0]}"
                )
                middle = ((start[0] + end[0]) // 2, lane - 4)
            edges.append(Edge(path, _label(field), *middle))
    last = max(column.values())
    width = 2 * _MARGIN + (last + 1) * BOX[0] + last * _GAP[0]
    height = boxes_end + lanes * _LANE + _MARGIN
    return Graph(nodes, edges, width, height)
