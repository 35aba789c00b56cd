"""The console's bases pages: the project's bases and the packaged ones, a base's versions
with the models trained from each, importing a directory, and deleting a version no model
was trained from; each behind ``models:write`` and the CSRF token, and audited."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from aimass.server import create_app
from aimass.workspace import Workspace
from tests.server.conftest import make_key, serve_settings, trained_home  # noqa: F401
from tests.server.test_console import admin_key, bearer, csrf_of, sign_in  # noqa: F401

P = "/console/p/default"
API = "/v1/projects/default"


@pytest.fixture
def console(trained_home, tiny_bert_dir):  # noqa: F811
    """The console of a server that may import from the tiny base's parent directory."""
    settings = serve_settings(trained_home, import_dirs=[tiny_bert_dir.parent])
    with TestClient(create_app(settings, job_workers=0), base_url="http://localhost") as client:
        yield client


def test_a_reader_sees_bases_and_their_users_but_no_forms(console, admin_key):  # noqa: F811
    reader = make_key(console, bearer(admin_key), ["read"], name="reader")
    sign_in(console, reader["Authorization"].split()[1])
    listing = console.get(f"{P}/bases")
    assert listing.status_code == 200
    assert f'href="{P}/bases/tiny"' in listing.text
    assert "m3e-small" in listing.text and "non-commercial" in listing.text  # packaged, flagged
    assert 'action="/console/p/default/bases"' not in listing.text  # no import forms
    page = console.get(f"{P}/bases/tiny")
    assert page.status_code == 200
    assert f'href="{P}/models/sentiment">sentiment@1</a>' in page.text
    assert "Delete a version" not in page.text
    token = csrf_of(console, f"{P}/bases")
    refused = console.post(f"{P}/bases/tiny/delete", data={"csrf": token, "version": "1"})
    assert refused.status_code == 403
    refused = console.post(f"{P}/bases", data={"csrf": token, "source": "minilm"})
    assert refused.status_code == 403
    assert console.get(f"{P}/bases/nothing").status_code == 404


def test_import_and_delete_from_the_pages(console, admin_key, tiny_bert_dir, trained_home):  # noqa: F811
    sign_in(console, admin_key)
    token = csrf_of(console, f"{P}/bases")

    # Import a directory inside the import dirs; one outside them, an unknown packaged
    # name and a bad name are refused with the reason.
    made = console.post(
        f"{P}/bases",
        data={"csrf": token, "path": str(tiny_bert_dir), "name": "tiny-copy"},
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    assert made.headers["location"] == f"{P}/bases/tiny-copy?version=1"
    outside = console.post(f"{P}/bases", data={"csrf": token, "path": str(trained_home)})
    assert outside.status_code == 403 and "outside the directories" in outside.text
    unknown = console.post(f"{P}/bases", data={"csrf": token, "source": "nope"})
    assert unknown.status_code == 400 and "m3e-small" in unknown.text
    bad_name = console.post(
        f"{P}/bases", data={"csrf": token, "path": str(tiny_bert_dir), "name": "../x"}
    )
    assert bad_name.status_code == 400
    no_token = console.post(f"{P}/bases", data={"source": "minilm"})
    assert no_token.status_code == 403

    # A base models were trained from is not offered, and refused naming them.
    page = console.get(f"{P}/bases/tiny")
    assert "Delete a version" not in page.text
    held = console.post(f"{P}/bases/tiny/delete", data={"csrf": token, "version": "1"})
    assert held.status_code == 409 and "sentiment@1" in held.text

    # The copy is free: deleting its only version goes back to the bases page.
    page = console.get(f"{P}/bases/tiny-copy")
    assert "Delete a version" in page.text and "data-confirm=" in page.text
    gone = console.post(
        f"{P}/bases/tiny-copy/delete",
        data={"csrf": token, "version": "1"},
        follow_redirects=False,
    )
    assert gone.status_code == 303 and gone.headers["location"] == f"{P}/bases"
    assert console.get(f"{API}/bases/tiny-copy", headers=bearer(admin_key)).status_code == 404
    actions = {
        e["action"]
        for e in console.get("/v1/audit", headers=bearer(admin_key), params={"limit": 50}).json()
    }
    assert {"console.import_base", "console.delete_base_version"} <= actions

    # Derived bases: the trained model as a base, and the base cut to one layer.
    made = console.post(
        f"{P}/bases/from-model",
        data={"csrf": token, "model": "sentiment@1", "name": "tuned"},
        follow_redirects=False,
    )
    assert made.status_code == 303 and made.headers["location"] == f"{P}/bases/tuned?version=1"
    assert '"source": "model"' in console.get(f"{P}/bases/tuned").text
    small = console.post(
        f"{P}/bases/shrink",
        data={"csrf": token, "base": "tiny@1", "name": "tiny-1l", "layers": "1", "pick": "spread"},
        follow_redirects=False,
    )
    assert small.status_code == 303, small.text
    shrunk = console.get(f"{API}/bases/tiny-1l", headers=bearer(admin_key)).json()
    assert shrunk["provenance"]["source"] == "shrink" and shrunk["provenance"]["layers"] == [0]
    bad = console.post(
        f"{P}/bases/shrink", data={"csrf": token, "base": "tiny@1", "name": "x", "layers": "0"}
    )
    assert bad.status_code == 400 and "layers" in bad.text

    # The model page links its base to the base's page.
    assert f'href="{P}/bases/tiny?version=1"' in console.get(f"{P}/models/sentiment").text


def test_versions_are_listed_on_every_surface(console, admin_key, trained_home):  # noqa: F811
    ws = Workspace(serve_settings(trained_home))
    try:
        ws.bases.shrink("tiny", name="tiny-small", layers=1)
        local = [b.version for b in ws.bases.versions("tiny-small")]
    finally:
        ws.close()
    answer = console.get(f"{API}/bases/tiny-small/versions", headers=bearer(admin_key))
    assert answer.status_code == 200 and [b["version"] for b in answer.json()] == local == [1]
    assert answer.json()[0]["provenance"]["source"] == "shrink"
    one = console.get(f"{API}/bases/tiny-small@1", headers=bearer(admin_key))
    assert one.status_code == 200 and one.json()["version"] == 1
    missing = console.get(f"{API}/bases/nothing/versions", headers=bearer(admin_key))
    assert missing.status_code == 404 and "nothing" in missing.text


def test_a_tokenizer_and_a_scratch_base_from_the_page(console, admin_key):  # noqa: F811
    sign_in(console, admin_key)
    listing = console.get(f"{P}/bases")
    assert 'action="/console/p/default/bases/train-tokenizer"' in listing.text
    assert '<option value="reviews@1">' in listing.text
    assert "Train a tokenizer first" in listing.text  # no tokenizer yet: no scratch form
    token = csrf_of(console, f"{P}/bases")

    made = console.post(
        f"{P}/bases/train-tokenizer",
        data={"csrf": token, "dataset": "reviews@1", "name": "tok", "vocab_size": "120"},
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    assert made.headers["location"] == f"{P}/bases/tok?version=1"
    page = console.get(f"{P}/bases/tok")
    assert '"unk_rate"' in page.text and "--tokenizer tok" in page.text
    unknown = console.post(
        f"{P}/bases/train-tokenizer", data={"csrf": token, "dataset": "nothing", "name": "t2"}
    )
    assert unknown.status_code == 404 and "nothing" in unknown.text
    bad_kind = console.post(
        f"{P}/bases/train-tokenizer",
        data={"csrf": token, "dataset": "reviews", "name": "t2", "kind": "sentencepiece"},
    )
    assert bad_kind.status_code == 400 and "kind" in bad_kind.text

    listing = console.get(f"{P}/bases")
    assert 'action="/console/p/default/bases/scratch"' in listing.text
    assert '<option value="tok@1">' in listing.text and "num_kv_heads=2" in listing.text
    made = console.post(
        f"{P}/bases/scratch",
        data={
            "csrf": token,
            "name": "mine",
            "architecture": "bert",
            "tokenizer": "tok@1",
            "preset": "tiny",
            "seed": "3",
            "overrides": "num_layers=1, max_length=64",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    base = console.get(f"{API}/bases/mine", headers=bearer(admin_key)).json()
    assert base["architecture"] == "bert" and base["provenance"]["tokenizer"] == "tok@1"
    assert base["provenance"]["config"]["num_layers"] == 1
    assert base["provenance"]["config"]["max_length"] == 64

    def scratch(**fields):
        data = {"csrf": token, "name": "other", "architecture": "bert", "tokenizer": "tok"}
        return console.post(f"{P}/bases/scratch", data={**data, **fields})

    not_a_number = scratch(overrides="num_layers=two")
    assert not_a_number.status_code == 400 and "KEY=NUMBER" in not_a_number.text
    unknown_field = scratch(overrides="depth=3")
    assert unknown_field.status_code == 400 and "num_layers" in unknown_field.text
    unknown_arch = scratch(architecture="mamba")
    assert unknown_arch.status_code == 400 and "llama" in unknown_arch.text
    assert scratch(csrf="").status_code == 403
    actions = {
        e["action"]
        for e in console.get("/v1/audit", headers=bearer(admin_key), params={"limit": 50}).json()
    }
    assert {"console.train_tokenizer", "console.scratch_base"} <= actions
