"""Text hygiene (issue 13, finding 6): a lone UTF-16 surrogate is a 400 ``INVALID_ARGUMENT``
naming the input and the position, wherever text enters (request bodies, uploaded rows,
imported files), and a 500 is logged with its traceback and the request id."""

from __future__ import annotations

import json

import pytest

from aimass.errors import DatasetValidationError, InvalidArgument

P = "/v1/projects/default"
PREDICT = f"{P}/models/sentiment@production:predict"


def post_raw(client, headers, path, raw: bytes):
    return client.post(path, headers={**headers, "Content-Type": "application/json"}, content=raw)


def test_a_lone_surrogate_in_a_predict_input_is_a_400_naming_it(client, admin):
    r = post_raw(client, admin, PREDICT, b'{"inputs": ["fine", "bad \\ud800 text"]}')
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["details"] == {"field": "inputs[1]", "position": 4}
    assert "'inputs[1]'" in error["message"] and "U+D800" in error["message"]
    # Emoji sent as escaped surrogate pairs are valid text.
    r = post_raw(client, admin, PREDICT, b'{"inputs": ["great \\ud83d\\ude00"]}')
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/projects", b'{"name": "\\udfff"}'),
        (f"{P}/keys", b'{"name": "k\\ud800", "scopes": ["read"]}'),
        (f"{P}/models/sentiment@production:generate", b'{"prompt": "\\ud800"}'),
        (f"{P}/datasets", b'{"name": "d", "format": "jsonl", "content": "\\ud800"}'),
        (f"{P}/jobs", b'{"kind": "train", "dataset": "reviews", "model": "\\udc00x"}'),
        (PREDICT, b'{"inputs": ["ok"], "\\ud800": 1}'),
    ],
)
def test_a_lone_surrogate_anywhere_in_a_body_is_a_400(client, admin, path, body):
    r = post_raw(client, admin, path, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "INVALID_ARGUMENT"
    assert "unpaired UTF-16 surrogate" in r.json()["error"]["message"]


def test_the_predict_check_refuses_a_lone_surrogate_without_http(app):
    with pytest.raises(InvalidArgument) as info:
        app.state.aimass.workspace.serving.check_inputs(["fine", "bad \ud800 text"])
    assert info.value.details == {"index": 1, "position": 4}
    assert "input 1" in info.value.message


def test_a_lone_surrogate_in_an_uploaded_row_is_a_400_naming_the_line(client, admin):
    rows = '{"text": "ok", "label": "pos"}\n{"text": "x\\udc00", "label": "neg"}\n'
    body = json.dumps({"name": "surrogates", "format": "jsonl", "content": rows})
    r = post_raw(client, admin, f"{P}/datasets", body.encode())
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"]["line"] == 2
    assert "field 'text'" in r.json()["error"]["message"]
    assert client.get(f"{P}/datasets/surrogates", headers=admin).status_code == 404


def test_a_lone_surrogate_in_an_imported_file_names_the_line(workspace, tmp_path):
    escaped = tmp_path / "escaped.jsonl"
    escaped.write_text('{"text": "ok", "label": "a"}\n{"text": "b\\ud800", "label": "b"}\n')
    with pytest.raises(DatasetValidationError) as info:
        workspace.datasets.import_file(escaped, name="escaped")
    assert info.value.details["line"] == 2 and "surrogate" in info.value.message
    # A surrogate encoded straight into the bytes (CESU-style) is not UTF-8 at all.
    raw = tmp_path / "raw.csv"
    raw.write_bytes(b"text,label\nok,a\nbad \xed\xa0\x80,b\n")
    with pytest.raises(DatasetValidationError) as info:
        workspace.datasets.import_file(raw, name="raw")
    assert info.value.details["line"] == 3 and "UTF-8" in info.value.message
    assert workspace.store.datasets.list("default") == []


def test_a_500_is_logged_with_its_traceback_and_request_id(client, admin, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(client.app.state.aimass.workspace.serving, "check_inputs", broken)
    r = client.post(PREDICT, headers=admin, json={"inputs": ["x"]})
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "INTERNAL"
    assert r.headers["x-request-id"] in r.json()["error"]["message"]
    assert "planted" not in r.text and "ZeroDivisionError" not in r.text, "no internals leak"
    record = next(r for r in caplog.records if r.getMessage() == "unhandled error")
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    assert record.request_id == r.headers["x-request-id"]
