"""Pipelines in the console: create one from a JSON spec, make a new version from the
shown one, move an alias, try a version; each through the API's own route, scopes and
audit."""

from __future__ import annotations

import json
import re

from tests.server.conftest import make_key, trained_home  # noqa: F401
from tests.server.test_console import (  # noqa: F401
    admin_key,
    bearer,
    console,
    csrf_of,
    external,
    sign_in,
)

P = "/console/p/default"
SPEC = {
    "steps": [
        {"name": "clean", "type": "deidentify", "recognizers": ["email"], "next": "clf"},
        {"name": "clf", "type": "model", "model": "sentiment@production", "next": "gate"},
        {"name": "gate", "type": "threshold", "min_score": 0.5},
    ]
}


def create(client, token, name, spec, description=""):
    form = {"csrf": token, "name": name, "description": description}
    return client.post(
        f"{P}/pipelines", data={**form, "spec": json.dumps(spec)}, follow_redirects=False
    )


def test_a_pipeline_is_made_versioned_aliased_and_tried_in_the_console(console, admin_key):  # noqa: F811
    sign_in(console, admin_key)
    home = console.get(P)
    assert f'href="{P}/new-pipeline"' in home.text
    token = csrf_of(console, f"{P}/new-pipeline")

    # Not JSON, and a spec with problems: each refused with what to fix, nothing stored.
    r = create(console, token, "console-made", {})
    assert r.status_code == 400 and "the pipeline spec is not valid" in r.text
    r = console.post(f"{P}/pipelines", data={"csrf": token, "name": "console-made", "spec": "{"})
    assert r.status_code == 400 and "the spec is not JSON" in r.text
    bad = {"steps": [{**SPEC["steps"][2], "min_score": 3}]}
    r = create(console, token, "console-made", bad)
    assert r.status_code == 400 and "min_score 3 must be a number from 0 to 1" in r.text
    assert console.get(f"{P}/pipelines/console-made").status_code == 404

    r = create(console, token, "console-made", SPEC, description="made in the console")
    assert r.status_code == 303, r.text[:500]
    assert r.headers["location"] == f"{P}/pipelines/console-made?version=1"
    shown = console.get(r.headers["location"])
    assert shown.status_code == 200 and external(shown.text) == []
    for text in ("Try v1", "Move an alias", "New version", "made in the console"):
        assert text in shown.text, text
    # The steps drawn as a graph: a box per step in the order they run, entry first.
    drawn = re.findall(r'<g class="node" data-step="([^"]+)">', shown.text)
    assert drawn == ["clean", "clf", "gate"] and shown.text.count('class="edge"') == 2
    assert "clf · model" in shown.text and "sentiment@1" in shown.text
    # The new-version form starts from the references v1 was made from, not its pins.
    editable = re.search(r'<textarea name="spec"[^>]*>(.*?)</textarea>', shown.text, re.S)
    assert editable is not None
    assert "sentiment@production" in editable.group(1) and "digest" not in editable.group(1)

    r = console.post(
        f"{P}/pipelines/console-made/try",
        data={
            "csrf": token,
            "version": "1",
            "texts": "good great film ann@example.org\n\nbad awful plot",
        },
    )
    assert r.status_code == 200, r.text[:500]
    assert "<strong>pos</strong>" in r.text and "<strong>neg</strong>" in r.text
    assert "clf: sentiment@1" in r.text and "clean (cleaned) → clf → gate (passed)" in r.text

    stricter = {"steps": [*SPEC["steps"][:2], {**SPEC["steps"][2], "min_score": 0.9999}]}
    r = create(console, token, "console-made", stricter)
    assert r.headers["location"] == f"{P}/pipelines/console-made?version=2"
    r = console.post(
        f"{P}/pipelines/console-made/alias",
        data={"csrf": token, "alias": "production", "version": "2"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    answer = console.post(
        "/v1/projects/default/pipelines/console-made@production:predict",
        headers=bearer(admin_key),
        json={"inputs": ["good great film"]},
    ).json()
    assert answer["version"] == 2 and answer["predictions"][0]["abstained"] is True

    events = console.get("/v1/audit", headers=bearer(admin_key), params={"limit": 100}).json()
    actions = [e["action"] for e in events]
    for action in ("console.create_pipeline", "console.try_pipeline"):
        assert action in actions, action
    assert "console.move_pipeline_alias" in actions
    tried = next(e for e in events if e["action"] == "console.try_pipeline")
    linked = [e for e in events if e["request_id"] == tried["request_id"]]
    assert sorted(e["action"] for e in linked).count("pipelines.step") == 3


def test_the_pipeline_forms_follow_the_keys_scopes(console, admin_key):  # noqa: F811
    sign_in(console, admin_key)
    token = csrf_of(console, f"{P}/new-pipeline")
    assert create(console, token, "console-scoped", SPEC).status_code == 303

    viewer = make_key(console, bearer(admin_key), ["read", "predict"], name="pipe-viewer")
    sign_in(console, viewer["Authorization"].split()[1])
    page = console.get(f"{P}/pipelines/console-scoped")
    assert "Try v1" in page.text
    assert "Move an alias" not in page.text and "New version" not in page.text
    assert f"{P}/new-pipeline" not in console.get(P).text
    assert console.get(f"{P}/new-pipeline").status_code == 403
    token = csrf_of(console, f"{P}/pipelines/console-scoped")
    assert create(console, token, "console-scoped", SPEC).status_code == 403
    moved = {"csrf": token, "alias": "production", "version": "1"}
    assert console.post(f"{P}/pipelines/console-scoped/alias", data=moved).status_code == 403

    reader = make_key(console, bearer(admin_key), ["read"], name="pipe-reader")
    sign_in(console, reader["Authorization"].split()[1])
    assert "Try v1" not in console.get(f"{P}/pipelines/console-scoped").text
    token = csrf_of(console, f"{P}/pipelines/console-scoped")
    tried = {"csrf": token, "version": "1", "texts": "good"}
    assert console.post(f"{P}/pipelines/console-scoped/try", data=tried).status_code == 403


def rows_form(rows):
    """The step editor's fields for ``rows`` (name, type, models, next, options)."""
    keys = ("name", "type", "models", "next", "options")
    return {f"step{i}_{k}": v for i, row in enumerate(rows) for k, v in zip(keys, row, strict=True)}


def test_a_pipeline_is_made_from_the_step_table_and_shown_in_it(console, admin_key):  # noqa: F811
    sign_in(console, admin_key)
    new = console.get(f"{P}/new-pipeline")
    assert 'name="step3_options"' in new.text and 'name="step4_name"' not in new.text
    assert '<option value="sentiment@production">' in new.text  # the models to pick from
    assert 'name="step9_name"' in console.get(f"{P}/new-pipeline?rows=10").text
    token = csrf_of(console, f"{P}/new-pipeline")
    form = {"csrf": token, "name": "from-table", "source": "steps"}
    table = rows_form(
        [
            ("clean", "deidentify", "", "clf", "recognizers=email"),
            ("clf", "model", "sentiment@production", "gate", ""),
            ("gate", "threshold", "", "", "min_score=0.5"),
            ("", "model", "", "", ""),  # a row without a name is left out
        ]
    )
    made = console.post(f"{P}/pipelines", data={**form, **table}, follow_redirects=False)
    assert made.status_code == 303, made.text[:500]
    answer = console.get(
        "/v1/projects/default/pipelines/from-table/versions/1", headers=bearer(admin_key)
    )
    steps = answer.json()["spec"]["steps"]
    assert [s["name"] for s in steps] == ["clean", "clf", "gate"]
    assert steps[0]["recognizers"] == ["email"] and steps[2]["min_score"] == 0.5
    # The page's new-version table starts from those steps.
    shown = console.get(made.headers["location"]).text
    assert 'name="step1_models" value="sentiment@production"' in shown
    assert 'name="step2_options" value="min_score=0.5"' in shown

    for row, problem in (
        (("clf", "model", "a@1 b@1", "", ""), "a model step runs one model reference"),
        (
            ("gate", "threshold", "", "", "min_score=high"),
            "min_score &#39;high&#39; is not a number",
        ),
        (("gate", "threshold", "", "", "floor=0.5"), "has no option &#39;floor&#39;"),
        (("gate", "threshold", "", "", "min_score"), "is not KEY=VALUE"),
        (("clf", "magic", "", "", ""), "type &#39;magic&#39; is not one of"),
    ):
        refused = console.post(f"{P}/pipelines", data={**form, **rows_form([row])})
        assert refused.status_code == 400 and problem in refused.text, (row, refused.text[-800:])
    empty = console.post(f"{P}/pipelines", data=form)
    assert empty.status_code == 400 and "the pipeline has no steps" in empty.text
    # The spec checker's own problems come back as for a JSON spec.
    dangling = rows_form([("clf", "model", "sentiment@production", "nowhere", "")])
    refused = console.post(f"{P}/pipelines", data={**form, **dangling})
    assert refused.status_code == 400 and "nowhere" in refused.text


def test_every_step_type_round_trips_through_the_table():
    from aimass.server.console.pipeline_steps import rows_of, spec_from_rows

    spec = {
        "steps": [
            {
                "name": "clean",
                "type": "deidentify",
                "mode": "mask",
                "recognizers": ["email", "person"],
                "next": "lang",
            },
            {
                "name": "lang",
                "type": "route",
                "routes": {"zh": "zh", "en": "en"},
                "default": "en",
                "min_han_share": 0.25,
            },
            {
                "name": "zh",
                "type": "ensemble",
                "models": ["a@production", "b@2"],
                "weights": [2.0, 1.0],
                "next": "gate",
            },
            {"name": "en", "type": "model", "model": "c@1", "next": "gate"},
            {
                "name": "gate",
                "type": "threshold",
                "min_score": 0.7,
                "fallback": "abstain",
                "next": "names",
            },
            {"name": "names", "type": "labels", "map": {"pos": "positive", "neg": "negative"}},
        ]
    }
    fields = rows_form([tuple(row.values()) for row in rows_of(spec)])
    assert spec_from_rows(fields) == spec
