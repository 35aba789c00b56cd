"""The web console over the real app: sign-in and sessions, CSRF, scopes, every page.

Browser-level tests (a real headless Chromium clicking through) are not built yet;
these drive the same HTTP a browser would send: form posts, the session cookie,
redirects, and the HTML that comes back.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aimass.server import create_app
from aimass.server.console import STATIC
from tests.server.conftest import make_key, serve_settings, trained_home  # noqa: F401

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def console(trained_home):  # noqa: F811
    app = create_app(serve_settings(trained_home), job_workers=0)
    with TestClient(app, base_url="http://localhost") as client:
        yield client


@pytest.fixture
def admin_key(trained_home):  # noqa: F811
    return (trained_home / "admin.key").read_text().strip()


def sign_in(client, key):
    r = client.post(
        "/console/sign-in", data={"key": key, "next": "/console"}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    return r


def csrf_of(client, path):
    page = client.get(path)
    assert page.status_code == 200, page.text
    return CSRF.search(page.text).group(1)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        self.urls += [v for k, v in attrs if k in ("href", "src", "action") and v]


def external(html):
    parser = _Links()
    parser.feed(html)
    return [u for u in parser.urls if re.match(r"^([a-z]+:)?//", u) and not u.startswith("data:")]


def test_a_browser_without_a_session_is_sent_to_sign_in(console):
    assert console.get("/", follow_redirects=False).headers["location"] == "/console"
    r = console.get("/console/p/default", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/console/sign-in?next=/console/p/default"
    page = console.get("/console/sign-in")
    assert page.status_code == 200 and 'name="key"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_signing_in_sets_a_strict_cookie_and_a_wrong_key_is_refused(console, admin_key):
    wrong = console.post("/console/sign-in", data={"key": "aimass_nope_" + "x" * 40})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    r = sign_in(console, admin_key)
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and admin_key not in cookie
    home = console.get("/console")
    assert home.status_code == 200 and ">default<" in home.text


def test_every_page_of_a_project_renders_from_this_server_only(console, admin_key):
    sign_in(console, admin_key)
    pages = {
        "/console": "Projects",
        "/console/p/default": "sentiment",
        "/console/p/default/datasets/reviews": "Labels",
        "/console/p/default/models/sentiment": "Move an alias",
        "/console/p/default/train": "Train a model",
        "/console/p/default/playground": "Playground",
        "/console/p/default/keys": "Create a key",
        "/console/audit": "Audit log",
    }
    job = console.get("/v1/projects/default/jobs", headers=bearer(admin_key)).json()[0]
    pages[f"/console/p/default/jobs/{job['id']}"] = job["kind"]
    for path, text in pages.items():
        r = console.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert text in r.text, path
        assert external(r.text) == [], path
        assert r.headers["content-security-policy"].startswith("default-src 'none'")
    status = console.get(f"/console/p/default/jobs/{job['id']}/status").json()
    assert status["job"]["id"] == job["id"] and status["job"]["finished"] is True


# A namespace name the DOM API needs to make SVG elements; it is never fetched.
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def test_the_static_assets_reference_nothing_outside(console):
    for path in sorted(Path(STATIC).iterdir()):
        served = console.get(f"/console/static/{path.name}")
        assert served.status_code == 200
        text = served.text.replace(f'"{SVG_NAMESPACE}"', "")
        assert not re.search(r"https?://|url\(\s*['\"]?//", text), path.name
    assert console.get("/console/static/../session.py").status_code == 404


def test_a_form_without_its_csrf_token_is_refused(console, admin_key):
    sign_in(console, admin_key)
    url = "/console/p/default/models/sentiment/alias"
    refused = console.post(url, data={"alias": "canary", "version": "1"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    forged = console.post(url, data={"alias": "canary", "version": "1", "csrf": "forged"})
    assert forged.status_code == 403
    versions = console.get("/v1/projects/default/models/sentiment", headers=bearer(admin_key))
    assert "canary" not in versions.json()["aliases"]
    token = csrf_of(console, "/console/p/default/models/sentiment")
    moved = console.post(url, data={"alias": "canary", "version": "1", "csrf": token})
    assert moved.status_code == 200 and "canary" in moved.text  # followed to the model page
    again = console.get("/v1/projects/default/models/sentiment", headers=bearer(admin_key))
    assert again.json()["aliases"]["canary"] == 1


def test_the_playground_predicts_and_highlights_words(console, admin_key):
    sign_in(console, admin_key)
    token = csrf_of(console, "/console/p/default/playground")
    form = {
        "model": "sentiment@production",
        "texts": "good great film\nbad awful movie",
        "explain": "occlusion",
        "csrf": token,
    }
    r = console.post("/console/p/default/playground", data=form)
    assert r.status_code == 200, r.text[:500]
    assert "<strong>pos</strong>" in r.text and "<strong>neg</strong>" in r.text
    assert re.search(r'<span class="(pos|neg)[1-3]">', r.text)


def test_a_predict_key_sees_no_training_and_cannot_reach_it(console, admin_key):
    key = make_key(console, bearer(admin_key), ["predict", "read"], name="viewer")
    sign_in(console, key["Authorization"].split()[1])
    home = console.get("/console/p/default")
    assert home.status_code == 200 and "/train" not in home.text and "/keys" not in home.text
    assert console.get("/console/p/default/train").status_code == 403
    assert console.get("/console/audit").status_code == 403
    assert "Move an alias" not in console.get("/console/p/default/models/sentiment").text


def test_the_audit_log_verifies_and_keys_are_made_once_and_revoked(console, admin_key):
    sign_in(console, admin_key)
    token = csrf_of(console, "/console/audit")
    verified = console.post("/console/audit/verify", data={"csrf": token})
    assert "The chain holds" in verified.text
    made = console.post(
        "/console/p/default/keys",
        data={"name": "ci", "scope_predict": "1", "scope_read": "1", "csrf": token},
    )
    secret = re.search(r'<pre id="new-key">([^<]+)</pre>', made.text).group(1)
    assert (
        secret.startswith("aimass_") and secret not in console.get("/console/p/default/keys").text
    )
    key_id = secret.split("_")[1]
    other = TestClient(console.app, base_url="http://localhost")
    sign_in(other, secret)
    assert other.get("/console/p/default").status_code == 200
    console.post(f"/console/p/default/keys/{key_id}/revoke", data={"csrf": token})
    # A revoked key's session ends at its next request.
    assert other.get("/console/p/default", follow_redirects=False).status_code == 303
    log = console.get("/console/audit?action=console.create_key").text
    assert "console.create_key" in log


def test_signing_out_ends_the_session_even_for_a_copied_cookie(console, admin_key):
    sign_in(console, admin_key)
    copied = dict(console.cookies)
    token = csrf_of(console, "/console")
    out = console.post("/console/sign-out", data={"csrf": token}, follow_redirects=False)
    assert out.status_code == 303 and "aimass_session=" in out.headers["set-cookie"]
    thief = TestClient(console.app, base_url="http://localhost", cookies=copied)
    assert thief.get("/console", follow_redirects=False).status_code == 303


def test_console_forms_are_not_json_and_the_api_is_not_forms(console, admin_key):
    sign_in(console, admin_key)
    r = console.post("/console/sign-out", json={"csrf": "x"})
    assert r.status_code == 415
    api = console.post(
        "/v1/projects/default/datasets", data={"name": "x"}, headers=bearer(admin_key)
    )
    assert api.status_code == 415


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def test_an_upload_is_validated_whole_and_opens_the_new_dataset(console, admin_key):
    import base64
    import json

    sign_in(console, admin_key)
    token = csrf_of(console, "/console/p/default/upload")
    rows = [{"text": f"row {i} is good", "label": "pos" if i % 2 else "neg"} for i in range(40)]
    content = "\n".join(json.dumps(r) for r in rows).encode()
    fields = {"csrf": token, "name": "uploaded", "format": "jsonl", "kind": "text"}
    bad = console.post(
        "/console/p/default/datasets",
        data={**fields, "content_base64": base64.b64encode(content + b"\n{oops").decode()},
    )
    assert bad.status_code == 400 and "line 41" in bad.json()["error"]
    versions = console.get("/v1/projects/default/datasets", headers=bearer(admin_key)).json()
    assert "uploaded" not in [d["name"] for d in versions]
    good = console.post(
        "/console/p/default/datasets",
        data={**fields, "content_base64": base64.b64encode(content).decode()},
    )
    assert good.status_code == 200 and good.json()["created"] is True
    page = console.get(good.json()["redirect"])
    assert page.status_code == 200 and "40 rows" in page.text


def test_a_jobs_events_stream_ends_once_it_has_finished(console, admin_key):
    sign_in(console, admin_key)
    job = console.get("/v1/projects/default/jobs", headers=bearer(admin_key)).json()[0]
    with console.stream("GET", f"/console/p/default/jobs/{job['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = [line for line in stream.iter_lines() if line.startswith("data: ")]
    assert len(events) == 1 and '"finished": true' in events[0]
    curve = json.loads(events[0][6:])["job"]["metrics"]["curve"]
    assert curve and all(len(point) == 2 for point in curve)


def test_rows_are_paged_for_data_keys_and_hidden_from_read_keys(console, admin_key):
    sign_in(console, admin_key)
    first = console.get("/console/p/default/datasets/reviews")
    assert first.status_code == 200 and "Rows 1–25 of 200" in first.text and ">next<" in first.text
    second = console.get("/console/p/default/datasets/reviews?offset=25")
    assert "Rows 26–50 of 200" in second.text and ">previous<" in second.text
    test = console.get("/console/p/default/datasets/reviews?split=test")
    test_rows = re.search(r"of ([\d,]+) \(test\)", test.text).group(1)
    reader = make_key(console, bearer(admin_key), ["read"], name="reader")
    console.cookies.clear()
    sign_in(console, reader["Authorization"].split()[1])
    page = console.get("/console/p/default/datasets/reviews")
    assert page.status_code == 200 and "Labels" in page.text and "Rows " not in page.text
    assert int(test_rows.replace(",", "")) > 0


def test_the_audit_log_filters_by_actor_resource_and_time(console, admin_key):
    sign_in(console, admin_key)
    everything = console.get("/console/audit").text
    assert "console.sign_in" in everything
    by_resource = console.get("/console/audit?resource=/console/sign-in").text
    assert "console.sign_in" in by_resource and "keys.create" not in by_resource
    assert "console.sign_in" not in console.get("/console/audit?since=2999-01-01").text
    assert "console.sign_in" in console.get("/console/audit?until=2999-01-01T00:00").text
    bad = console.get("/console/audit?since=yesterday")
    assert bad.status_code == 400 and "2026-12-01" in bad.text


def test_the_training_form_takes_the_clis_advanced_options_as_json(console, admin_key):
    sign_in(console, admin_key)
    token = csrf_of(console, "/console/p/default/train")
    form = {"csrf": token, "dataset": "reviews", "base": "tiny", "model": "json-options"}
    bad = console.post("/console/p/default/train", data={**form, "config": "{epochs: 1"})
    assert bad.status_code == 400 and "config is not valid JSON" in bad.text
    queued = console.post(
        "/console/p/default/train",
        data={**form, "config": '{"epochs": 1, "max_length": 32}', "epochs": ""},
        follow_redirects=False,
    )
    assert queued.status_code == 303 and "/jobs/" in queued.headers["location"]
    job_id = queued.headers["location"].rsplit("/", 1)[1]
    job = console.get(f"/v1/projects/default/jobs/{job_id}", headers=bearer(admin_key)).json()
    assert job["spec"]["config"]["max_length"] == 32 and job["status"] == "queued"
    console.post(f"/console/p/default/jobs/{job_id}/cancel", data={"csrf": token})


def test_the_training_form_has_fields_for_length_evaluation_and_privacy(console, admin_key):
    sign_in(console, admin_key)
    token = csrf_of(console, "/console/p/default/train")
    form = {"csrf": token, "dataset": "reviews", "base": "tiny", "model": "form-fields"}
    fields = {"max_length": "48", "eval_steps": "5", "patience": "2", "target_epsilon": "8"}
    queued = console.post(
        "/console/p/default/train",
        # a field wins over the same key in the JSON, and the JSON keeps the rest
        data={**form, **fields, "config": '{"max_length": 16, "seed": 3}', "epochs": "1"},
        follow_redirects=False,
    )
    assert queued.status_code == 303, queued.text
    job_id = queued.headers["location"].rsplit("/", 1)[1]
    job = console.get(f"/v1/projects/default/jobs/{job_id}", headers=bearer(admin_key)).json()
    config = job["spec"]["config"]
    assert (config["max_length"], config["eval_steps"], config["patience"]) == (48, 5, 2)
    assert config["seed"] == 3
    assert job["spec"]["privacy"]["target_epsilon"] == 8.0
    console.post(f"/console/p/default/jobs/{job_id}/cancel", data={"csrf": token})
    bad = console.post("/console/p/default/train", data={**form, "eval_steps": "often"})
    assert bad.status_code == 400 and "eval_steps &#39;often&#39; is not a number" in bad.text


def test_the_training_form_names_every_task_and_takes_a_lora_rank(console, admin_key):
    sign_in(console, admin_key)
    page = console.get("/console/p/default/train").text
    for task in ("classification", "regression", "token-classification", "seq2seq"):
        assert f'<option value="{task}">' in page
    assert 'value="lora"' not in page, "LoRA is a rank, not a mode"
    token = csrf_of(console, "/console/p/default/train")
    form = {"csrf": token, "dataset": "reviews", "base": "tiny", "model": "lora-form"}
    queued = console.post(
        "/console/p/default/train",
        data={**form, "task": "classification", "lora_rank": "4", "epochs": "1"},
        follow_redirects=False,
    )
    assert queued.status_code == 303, queued.text
    job_id = queued.headers["location"].rsplit("/", 1)[1]
    job = console.get(f"/v1/projects/default/jobs/{job_id}", headers=bearer(admin_key)).json()
    assert job["spec"]["config"]["lora_rank"] == 4
    assert job["spec"]["config"]["task"] == "classification"
    console.post(f"/console/p/default/jobs/{job_id}/cancel", data={"csrf": token})
    wrong = console.post("/console/p/default/train", data={**form, "task": "token-classification"})
    assert wrong.status_code == 400 and "needs a dataset of kind tokens" in wrong.text


def test_the_training_form_has_a_field_for_each_less_common_option(console, admin_key):
    sign_in(console, admin_key)
    token = csrf_of(console, "/console/p/default/train")
    form = {"csrf": token, "dataset": "reviews", "base": "tiny", "model": "less-common"}
    fields = {
        "seed": "7",
        "max_train_rows": "50",
        "warmup_ratio": "0.2",
        "pooling": "cls",
        "layers": "-1, -2",
        "trainable": "biases",
        "probe_epochs": "1",
        "layer_lr_decay": "0.8",
        "label_smoothing": "0.1",
        "adversarial_epsilon": "0.5",
        "epochs": "1",
        "mode": "finetune",
    }
    queued = console.post(
        "/console/p/default/train", data={**form, **fields}, follow_redirects=False
    )
    assert queued.status_code == 303, queued.text
    job_id = queued.headers["location"].rsplit("/", 1)[1]
    job = console.get(f"/v1/projects/default/jobs/{job_id}", headers=bearer(admin_key)).json()
    config = job["spec"]["config"]
    assert (config["seed"], config["max_train_rows"], config["warmup_ratio"]) == (7, 50, 0.2)
    assert (config["pooling"], config["layers"], config["trainable"]) == ("cls", [-1, -2], "biases")
    assert (config["probe_epochs"], config["layer_lr_decay"]) == (1, 0.8)
    assert (config["label_smoothing"], config["adversarial_epsilon"]) == (0.1, 0.5)
    console.post(f"/console/p/default/jobs/{job_id}/cancel", data={"csrf": token})
    bad = console.post("/console/p/default/train", data={**form, "layers": "-1, top"})
    assert (
        bad.status_code == 400
        and "layers &#39;-1, top&#39; is not a comma-separated list of ints" in bad.text
    )
    lora = console.post(
        "/console/p/default/train",
        data={
            **form,
            "lora_rank": "4",
            "lora_targets": "query, key",
            "lora_alpha": "8",
            "epochs": "1",
        },
        follow_redirects=False,
    )
    assert lora.status_code == 303, lora.text
    job_id = lora.headers["location"].rsplit("/", 1)[1]
    job = console.get(f"/v1/projects/default/jobs/{job_id}", headers=bearer(admin_key)).json()
    assert job["spec"]["config"]["lora_targets"] == ["query", "key"]
    assert job["spec"]["config"]["lora_alpha"] == 8.0
    console.post(f"/console/p/default/jobs/{job_id}/cancel", data={"csrf": token})


def test_the_training_form_has_a_field_for_each_task_option(console, admin_key):
    sign_in(console, admin_key)
    page = console.get("/console/p/default/train").text
    assert (
        'type="checkbox" name="option.whole_word_mask" value="true"> whole_word_mask (masked-lm)'
        in page
    )
    assert "pack (causal-lm, masked-lm)" in page or "pack (masked-lm, causal-lm)" in page
    assert 'name="option.mask_probability" inputmode="decimal" placeholder="0.15"' in page
    token = csrf_of(console, "/console/p/default/train")
    form = {"csrf": token, "dataset": "reviews", "base": "tiny", "model": "mlm-form"}
    options = {"option.whole_word_mask": "true", "option.mask_probability": "0.2"}
    queued = console.post(
        "/console/p/default/train",
        # the form's options join the JSON's, and win over the same key there
        data={
            **form,
            **options,
            "task": "masked-lm",
            "epochs": "1",
            "config": '{"options": {"pack": true, "mask_probability": 0.3}}',
        },
        follow_redirects=False,
    )
    assert queued.status_code == 303, queued.text
    job_id = queued.headers["location"].rsplit("/", 1)[1]
    job = console.get(f"/v1/projects/default/jobs/{job_id}", headers=bearer(admin_key)).json()
    assert job["spec"]["config"]["options"] == {
        "pack": True,
        "whole_word_mask": True,
        "mask_probability": 0.2,
    }
    console.post(f"/console/p/default/jobs/{job_id}/cancel", data={"csrf": token})
    other = console.post("/console/p/default/train", data={**form, "option.pack": "true"})
    assert other.status_code == 400
    assert "--option pack: task &#39;classification&#39; has no such option" in other.text
    mlm = {**form, "task": "masked-lm"}
    word = console.post("/console/p/default/train", data={**mlm, "option.mask_probability": "lots"})
    assert word.status_code == 400
    assert "task option mask_probability &#39;lots&#39; is not a number" in word.text
    high = console.post("/console/p/default/train", data={**mlm, "option.mask_probability": "2"})
    assert high.status_code == 400 and "use a number between 0 and 1" in high.text


def test_the_training_form_distils_from_a_teacher(console, admin_key):
    sign_in(console, admin_key)
    page = console.get("/console/p/default/train").text
    assert '<option value="sentiment@1">' in page and 'name="unlabelled"' in page
    token = csrf_of(console, "/console/p/default/train")
    form = {"csrf": token, "dataset": "reviews", "base": "tiny", "model": "small-form"}
    distil = {"teacher": "sentiment@1", "unlabelled": "reviews", "temperature": "3"}
    queued = console.post(
        "/console/p/default/train",
        data={**form, **distil, "distill_alpha": "0.7", "epochs": "1"},
        follow_redirects=False,
    )
    assert queued.status_code == 303, queued.text
    job_id = queued.headers["location"].rsplit("/", 1)[1]
    job = console.get(f"/v1/projects/default/jobs/{job_id}", headers=bearer(admin_key)).json()
    config = job["spec"]["config"]
    assert (config["teacher"], config["unlabelled"]) == ("sentiment@1", "reviews@1")
    assert (config["temperature"], config["distill_alpha"]) == (3.0, 0.7)
    console.post(f"/console/p/default/jobs/{job_id}/cancel", data={"csrf": token})
    unknown = console.post("/console/p/default/train", data={**form, "teacher": "nope@1"})
    assert unknown.status_code == 404 and "--teacher nope@1" in unknown.text
    bad = console.post("/console/p/default/train", data={**form, **distil, "temperature": "hot"})
    assert bad.status_code == 400 and "temperature &#39;hot&#39; is not a number" in bad.text
    beams = console.post("/console/p/default/train", data={**form, **distil, "sequence_beams": "2"})
    assert beams.status_code == 400 and "not of task &#39;classification&#39;" in beams.text


def test_a_pipeline_page_shows_its_pinned_steps_and_its_report(console, admin_key, trained_home):  # noqa: F811
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    spec = {
        "steps": [
            {"name": "clean", "type": "deidentify", "recognizers": ["email"], "next": "clf"},
            {"name": "clf", "type": "model", "model": "sentiment@latest", "next": "gate"},
            {"name": "gate", "type": "threshold", "min_score": 0.6},
        ]
    }
    ws = Workspace(Settings(home=trained_home, device="cpu"))
    try:
        made, _ = ws.pipelines.create(spec, name="triage", description="reviews in, labels out")
        quick = {
            "robustness_sample": 10,
            "explain_examples": 0,
            "measure_memory": False,
            "latency_runs": 2,
            "batch_runs": 1,
            "n_boot": 10,
        }
        _, report = ws.pipelines.evaluate(made.ref, dataset="reviews", options=quick)
    finally:
        ws.close()
    sign_in(console, admin_key)
    home = console.get("/console/p/default")
    assert 'href="/console/p/default/pipelines/triage"' in home.text
    page = console.get("/console/p/default/pipelines/triage")
    assert page.status_code == 200, page.text[:300]
    assert external(page.text) == []
    for text in (
        "reviews in, labels out",
        "clean (entry)",
        "deidentify",
        "score ≥ 0.6",
        "(asked for sentiment@latest)",
        report,
    ):
        assert text in page.text, text
    frame = f"/console/p/default/pipelines/triage/versions/{made.version}/reports/{report}"
    assert f'src="{frame}"' in page.text
    shown = console.get(frame)
    assert shown.status_code == 200 and "sandbox" in shown.headers["content-security-policy"]
    assert console.get("/console/p/default/pipelines/nope").status_code == 404
    assert console.get(frame.replace(report, "nope")).status_code == 404


def test_an_all_projects_admin_edits_a_projects_limits_and_the_change_is_audited(
    console, admin_key
):
    admin = bearer(admin_key)
    budgeted = console.post(
        "/v1/projects/default/keys",
        headers=admin,
        json={"name": "metered", "scopes": ["predict"], "predict_budget": 1000},
    ).json()["record"]
    sign_in(console, admin_key)
    path = "/console/p/default/limits"
    page = console.get(path)
    assert page.status_code == 200 and external(page.text) == []
    assert 'name="limit_max_epochs"' in page.text and budgeted["id"] in page.text
    token = CSRF.search(page.text).group(1)
    try:
        saved = console.post(
            path,
            data={"csrf": token, "limit_max_epochs": "3", "limit_max_job_seconds": "600"},
            follow_redirects=False,
        )
        assert saved.status_code == 303 and saved.headers["location"].endswith("?saved=1")
        stored = console.get("/v1/projects/default", headers=admin).json()["limits"]
        assert stored == {"max_epochs": 3, "max_job_seconds": 600}
        assert "Saved." in console.get(saved.headers["location"]).text
        audited = console.get(
            "/v1/audit", headers=admin, params={"action": "console.set_limits"}
        ).json()
        assert audited[0]["details"]["changed"] == ["max_epochs", "max_job_seconds"]
        # Emptying a field removes the stored value; the deployment's applies again.
        console.post(path, data={"csrf": token, "limit_max_epochs": "3"})
        stored = console.get("/v1/projects/default", headers=admin).json()["limits"]
        assert stored == {"max_epochs": 3}
        # A bad value is refused with its name and value, and nothing changes.
        bad = console.post(path, data={"csrf": token, "limit_max_epochs": "many"})
        assert bad.status_code in (400, 422) and "max_epochs" in bad.text and "many" in bad.text
        stored = console.get("/v1/projects/default", headers=admin).json()["limits"]
        assert stored == {"max_epochs": 3}
    finally:
        console.patch(
            "/v1/projects/default",
            headers=admin,
            json={"limits": {"max_epochs": None, "max_job_seconds": None}},
        )
        console.delete(f"/v1/projects/default/keys/{budgeted['id']}", headers=admin)


def test_a_project_admin_sees_the_limits_but_cannot_change_them(console, admin_key):
    project_admin = make_key(console, bearer(admin_key), ["admin", "read"], name="tenant")
    sign_in(console, project_admin["Authorization"].removeprefix("Bearer "))
    page = console.get("/console/p/default/limits")
    assert page.status_code == 200 and "Only an all-projects admin" in page.text
    assert 'name="limit_max_epochs"' not in page.text
    token = csrf_of(console, "/console/p/default")
    refused = console.post(
        "/console/p/default/limits", data={"csrf": token, "limit_max_epochs": "1000"}
    )
    assert refused.status_code == 403 and "all-projects admin" in refused.text
    limits = console.get("/v1/projects/default", headers=bearer(admin_key)).json()["limits"]
    assert "max_epochs" not in limits


def test_a_project_admin_changes_a_keys_budget_policy_and_limits_but_cannot_raise_one(
    console, admin_key
):
    admin = bearer(admin_key)
    tenant = make_key(console, admin, ["admin", "read"], name="tenant-admin")
    made = console.post(
        "/v1/projects/default/keys", headers=admin, json={"name": "app", "scopes": ["predict"]}
    ).json()["record"]
    sign_in(console, tenant["Authorization"].removeprefix("Bearer "))
    page = console.get("/console/p/default/limits")
    assert f'form="key-{made["id"]}"' in page.text
    token = CSRF.search(page.text).group(1)
    path = f"/console/p/default/keys/{made['id']}/limits"
    lowered = {
        "csrf": token,
        "predict_budget": "500",
        "output_policy": "labels",
        "limit_max_predicts_per_key": "2",
    }
    try:
        saved = console.post(path, data=lowered, follow_redirects=False)
        assert saved.status_code == 303, saved.text
        record = console.get(f"/v1/projects/default/keys/{made['id']}", headers=admin).json()
        assert record["predict_budget"] == 500 and record["output_policy"] == "labels"
        assert record["limits"] == {"max_predicts_per_key": 2}
        audited = console.get(
            "/v1/audit", headers=admin, params={"action": "console.update_key"}
        ).json()[0]["details"]
        assert audited["key_id"] == made["id"] and audited["predict_budget"] == 500
        assert audited["changed"] == ["limits", "output_policy", "predict_budget"]
        # Above the deployment's value: refused for a project admin, nothing changes.
        raised = console.post(path, data={**lowered, "limit_max_streams_per_key": "100000"})
        assert raised.status_code == 403 and "max_streams_per_key" in raised.text
        bad = console.post(path, data={"csrf": token, "predict_budget": "lots"})
        assert bad.status_code in (400, 422) and "predict budget &#39;lots&#39;" in bad.text
        # Emptied fields remove the budget, the policy and the limit.
        console.post(path, data={"csrf": token})
        record = console.get(f"/v1/projects/default/keys/{made['id']}", headers=admin).json()
        assert record["predict_budget"] is None and record["output_policy"] is None
        assert record["limits"] == {}
    finally:
        console.delete(f"/v1/projects/default/keys/{made['id']}", headers=admin)
