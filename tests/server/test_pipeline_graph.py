"""The console's drawing of a pipeline: columns by longest path, an arrow per edge."""

import re

from aimass.server.console.pipeline_graph import BOX, draw

SPEC = {
    "steps": [
        {"name": "clean", "type": "deidentify", "mode": "redact", "next": "lang"},
        {
            "name": "lang",
            "type": "route",
            "routes": {"zh": "zh-clf", "en": "en-clf"},
            "default": "en-clf",
        },
        {"name": "zh-clf", "type": "model", "model": "zh-sentiment@production", "next": "gate"},
        {"name": "gate", "type": "threshold", "min_score": 0.7, "fallback": "en-clf"},
        {"name": "en-clf", "type": "model", "model": "a-very-long-model-name-indeed@12"},
    ]
}


def test_each_step_stands_right_of_every_step_that_leads_to_it():
    graph = draw(SPEC)
    at = {n.name: n for n in graph.nodes}
    assert [n.name for n in graph.nodes] == ["clean", "lang", "zh-clf", "gate", "en-clf"]
    # en-clf follows lang directly and gate too: its column is past gate's, not lang's.
    columns = [at[name].x for name in ("clean", "lang", "zh-clf", "gate", "en-clf")]
    assert columns == sorted(columns) and len(set(columns)) == 5
    assert at["clean"].entry and not any(n.entry for n in graph.nodes[1:])
    assert graph.width >= at["en-clf"].x + BOX[0] and graph.height >= BOX[1]


def test_an_arrow_per_edge_labelled_with_what_takes_it():
    graph = draw(SPEC)
    assert sorted(e.label for e in graph.edges) == ["", "", "below", "en", "otherwise", "zh"]
    # Every arrow leaves a box's right side and ends at a box's left side, to the right.
    for edge in graph.edges:
        start = re.match(r"M(\d+),", edge.path)
        end = re.search(r"[ H](\d+)(?:,\d+)?$", edge.path)
        assert start and end and int(start[1]) < int(end[1]), edge.path
    # The arrows that skip columns (lang to en-clf twice) run in lanes under every box.
    bottom = max(n.y for n in graph.nodes) + BOX[1]
    lanes = sorted(e.label_y for e in graph.edges if e.label in ("en", "otherwise"))
    assert bottom < lanes[0] < lanes[1] < graph.height


def test_a_step_says_what_it_does_in_a_few_words():
    details = {n.name: n.detail for n in draw(SPEC).nodes}
    assert details["clean"] == "redact" and details["gate"] == "score ≥ 0.7"
    assert details["lang"] == "by language" and details["zh-clf"] == "zh-sentiment@production"
    assert details["en-clf"].endswith("…") and len(details["en-clf"]) == 24
