"""Deleting in the console: a dataset version, a model version no alias holds, a pipeline's
alias and version; each behind its scope and CSRF token, confirmed on the page, audited,
and gone from the API afterwards."""

from __future__ import annotations

from aimass.workspace import Workspace
from tests.conftest import register_copy, sentiment_rows, write_jsonl
from tests.server.conftest import make_key, serve_settings, trained_home  # noqa: F401
from tests.server.test_console import (  # noqa: F401
    admin_key,
    bearer,
    console,
    csrf_of,
    sign_in,
)

P = "/console/p/default"
API = "/v1/projects/default"


def actions(client, key):
    events = client.get("/v1/audit", headers=bearer(key), params={"limit": 100}).json()
    return {e["action"] for e in events}


def test_a_key_without_the_scope_sees_no_delete_and_is_refused(console, admin_key):  # noqa: F811
    viewer = make_key(console, bearer(admin_key), ["read", "predict"], name="viewer")
    sign_in(console, viewer["Authorization"].split()[1])
    page = console.get(f"{P}/datasets/reviews")
    assert page.status_code == 200 and "Delete this version" not in page.text
    assert "Delete a version" not in console.get(f"{P}/models/sentiment").text
    token = csrf_of(console, f"{P}/datasets/reviews")
    refused = console.post(f"{P}/datasets/reviews/delete", data={"csrf": token, "version": "1"})
    assert refused.status_code == 403
    refused = console.post(f"{P}/models/sentiment/delete", data={"csrf": token, "version": "1"})
    assert refused.status_code == 403
    assert console.get(f"{API}/datasets/reviews", headers=bearer(admin_key)).status_code == 200


def test_versions_are_deleted_from_their_pages(console, admin_key, trained_home, tmp_path):  # noqa: F811
    ws = Workspace(serve_settings(trained_home))
    try:
        register_copy(ws, "sentiment@1", "sentiment", config_digest="copy")  # v2, no alias
        data = write_jsonl(tmp_path / "extra.jsonl", sentiment_rows(40))
        ws.datasets.import_file(data, name="extra")
    finally:
        ws.close()
    sign_in(console, admin_key)

    # A model version: only those no alias holds are offered; a held one is refused.
    page = console.get(f"{P}/models/sentiment")
    assert "Delete a version" in page.text and 'data-confirm="Delete this version?' in page.text
    token = csrf_of(console, f"{P}/models/sentiment")
    held = console.post(f"{P}/models/sentiment/delete", data={"csrf": token, "version": "1"})
    assert held.status_code == 409 and "production" in held.text
    no_token = console.post(f"{P}/models/sentiment/delete", data={"version": "2"})
    assert no_token.status_code == 403
    gone = console.post(
        f"{P}/models/sentiment/delete",
        data={"csrf": token, "version": "2"},
        follow_redirects=False,
    )
    assert gone.status_code == 303 and gone.headers["location"] == f"{P}/models/sentiment"
    assert (
        console.get(f"{API}/models/sentiment/versions/2", headers=bearer(admin_key)).status_code
        == 404
    )
    assert (
        console.get(f"{API}/models/sentiment/versions/1", headers=bearer(admin_key)).status_code
        == 200
    )

    # A dataset's last version: back to the project's page.
    page = console.get(f"{P}/datasets/extra")
    assert "Delete this version" in page.text
    token = csrf_of(console, f"{P}/datasets/extra")
    gone = console.post(
        f"{P}/datasets/extra/delete", data={"csrf": token, "version": "1"}, follow_redirects=False
    )
    assert gone.status_code == 303 and gone.headers["location"] == P
    assert console.get(f"{API}/datasets/extra", headers=bearer(admin_key)).status_code == 404

    # A pipeline: its alias removed, then its only version deleted.
    spec = {"steps": [{"name": "clf", "type": "model", "model": "sentiment@production"}]}
    made = console.post(
        f"{API}/pipelines", headers=bearer(admin_key), json={"name": "triage", "spec": spec}
    )
    assert made.status_code == 201, made.text
    alias = {"version": 1}
    assert (
        console.put(
            f"{API}/pipelines/triage/aliases/live", headers=bearer(admin_key), json=alias
        ).status_code
        == 200
    )
    page = console.get(f"{P}/pipelines/triage")
    assert "remove alias" in page.text and "delete version" not in page.text  # v1 is held
    token = csrf_of(console, f"{P}/pipelines/triage")
    removed = console.post(
        f"{P}/pipelines/triage/unalias",
        data={"csrf": token, "alias": "live"},
        follow_redirects=False,
    )
    assert removed.status_code == 303
    assert "delete version" in console.get(f"{P}/pipelines/triage").text
    gone = console.post(
        f"{P}/pipelines/triage/delete", data={"csrf": token, "version": "1"}, follow_redirects=False
    )
    assert gone.status_code == 303 and gone.headers["location"] == P
    assert console.get(f"{API}/pipelines/triage", headers=bearer(admin_key)).status_code == 404

    assert {
        "console.delete_model_version",
        "console.delete_dataset_version",
        "console.delete_pipeline_alias",
        "console.delete_pipeline_version",
    } <= actions(console, admin_key)


def test_an_all_projects_admin_collects_garbage_from_the_storage_page(
    console,  # noqa: F811
    admin_key,  # noqa: F811
    trained_home,  # noqa: F811
):
    import os
    import time

    ws = Workspace(serve_settings(trained_home))
    try:
        with ws.artifacts.staging() as stage:
            (stage / "f").write_bytes(b"an orphan graph")
            ws.artifacts.publish(stage / "f", "graphs/orphan")
        then = time.time() - 7200
        os.utime(ws.artifacts.path("graphs/orphan"), (then, then))
    finally:
        ws.close()
    project_admin = make_key(console, bearer(admin_key), ["admin"], name="project-admin")
    sign_in(console, project_admin["Authorization"].split()[1])
    assert console.get("/console/storage").status_code == 403
    sign_in(console, admin_key)
    page = console.get("/console/storage")
    assert page.status_code == 200 and 'href="/console/storage"' in page.text
    token = csrf_of(console, "/console/storage")
    dry = console.post(
        "/console/storage/gc", data={"csrf": token, "older_than": "1h", "dry_run": "1"}
    )
    assert dry.status_code == 200 and "Would remove 1 artifacts" in dry.text
    assert "graphs/orphan" in dry.text
    assert (trained_home / "artifacts" / "graphs" / "orphan").exists()
    too_short = console.post("/console/storage/gc", data={"csrf": token, "older_than": "30s"})
    assert too_short.status_code == 400 and "at least 60" in too_short.text
    not_a_time = console.post("/console/storage/gc", data={"csrf": token, "older_than": "soon"})
    assert not_a_time.status_code == 400 and "not a duration" in not_a_time.text
    done = console.post("/console/storage/gc", data={"csrf": token, "older_than": "1h"})
    assert done.status_code == 200 and "Removed 1 artifacts" in done.text
    assert not (trained_home / "artifacts" / "graphs" / "orphan").exists()
    assert "console.gc" in actions(console, admin_key)
