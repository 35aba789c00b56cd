"""Arbitrary file read, write and deletion through paths (field notes rows 1 and 2: MLflow
CVE-2023-1177, -2356, -2780, -3765, -6831, CVE-2024-1483, -1560, -3848).

A crafted source, artifact key, URI or URL path never reaches a file outside its root:
single, double and triple URL-encoding, ``..``, ``..\\``, absolute POSIX and Windows
paths, ``#`` and ``?`` tricks, NUL, Unicode look-alike dots and symlinks are all
refused, and canary files placed one level above the artifact store (and above the
home) are unchanged and never echoed back.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import quote

import pytest

from aimass.artifacts.storage import ArtifactStore
from aimass.errors import AimassError, InvalidArgument

P = "/v1/projects/default"
CANARY = "canary-contents-7f3a"


def encodings(text: str) -> list[str]:
    """``text`` raw and URL-encoded once, twice and three times (every character)."""
    found = [text]
    for _ in range(3):
        found.append("".join(f"%{b:02X}" for b in found[-1].encode()))
    found.append(quote(text, safe=""))
    return found


ESCAPES = [
    "../canary",
    "../../canary",
    "..\\canary",
    "a\\..\\..\\canary",
    "datasets/../../canary",
    "/etc/passwd",
    "C:/Windows/win.ini",
    "C:\\Windows\\win.ini",
    "\\\\server\\share\\x",
    "datasets/x#/../../canary",
    "datasets/x?/../../canary",
    "datasets/x\x00/../../canary",
    "\u2024\u2024/canary",  # ONE DOT LEADER
    "\uff0e\uff0e/canary",  # FULLWIDTH FULL STOP
    "%2e%2e/canary",
    "%252e%252e%252fcanary",
    "..%2fcanary",
    "..%5ccanary",
]
ALL_ESCAPES = sorted({variant for text in ESCAPES for variant in encodings(text)})


@pytest.fixture
def canaries(tmp_path):
    """Canary files one level above the store root and beside it: ``check()`` proves them
    unchanged."""
    root = tmp_path / "home" / "artifacts"
    placed = [tmp_path / "home" / "canary", tmp_path / "canary", tmp_path / "home" / "passwd"]
    for path in placed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(CANARY)

    def check():
        for path in placed:
            assert path.read_text() == CANARY, path

    return root, check


# -- the artifact store: every key and URI stays inside the root ------------------------------


# The short forms the artifact tests first used, kept beside the encoded variants.
SHORT = ["", ".", "..", "a/..", "a//b", "a/.hidden", "a/b/", "../x", "a/../../x", "%2e%2e/x"]
SHORT += ["a\\..\\b", "a/\x00", "C:/x", "\u2024\u2024/x"]


@pytest.mark.parametrize("key", [*ALL_ESCAPES, *SHORT])
def test_keys_that_could_escape_the_root_are_refused(canaries, key):
    root, check = canaries
    store = ArtifactStore(root)
    with pytest.raises(InvalidArgument):
        store.path(key)
    with pytest.raises(InvalidArgument):
        store.resolve(f"artifacts:{key}")
    check()


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",
        "file://localhost/etc/passwd",
        "/etc/passwd",
        "s3://x/../../y",
        "http://127.0.0.1/x",
        "mlflow-artifacts:/../canary",
        "runs:/../../canary",
        "models:/x/../../canary",
        "ARTIFACTS:datasets/x",
        " artifacts:datasets/x",
    ],
)
def test_uris_must_be_artifact_uris(canaries, uri):
    root, check = canaries
    store = ArtifactStore(root)
    with pytest.raises(InvalidArgument):
        store.resolve(uri)
    check()


def test_symlinked_artifacts_are_not_followed(canaries):
    root, check = canaries
    store = ArtifactStore(root)
    (root / "datasets").mkdir()
    (root / "datasets" / "link").symlink_to(root.parent / "canary")
    with pytest.raises(InvalidArgument):
        store.resolve("artifacts:datasets/link")
    (root / "escape").symlink_to(root.parent)
    with pytest.raises(InvalidArgument):
        store.resolve("artifacts:escape/canary")
    check()


# -- a registered version whose URI was crafted is never read -------------------------------


@pytest.mark.parametrize(
    "uri", ["file:///etc/passwd", "artifacts:../canary", "/etc/passwd", "s3://x/../../canary"]
)
def test_a_version_registered_with_a_crafted_uri_is_refused_when_served(
    client, admin, trained_home, uri
):
    from aimass.refs import parse_ref
    from aimass.workspace import Workspace
    from tests.server.conftest import serve_settings

    canary = trained_home / "canary"
    canary.write_text(CANARY)
    ws = Workspace(serve_settings(trained_home))
    try:
        good = ws.store.registry.get_version("default", parse_ref("sentiment@1"))
        crafted = ws.store.registry.create_version(
            "default",
            "crafted",
            task=good.task,
            digest=good.digest,
            uri=uri,
            metrics={},
            lineage=good.lineage,
            config_digest="0" * 64,
        )
        r = client.post(
            f"{P}/models/crafted@{crafted.version}:predict", headers=admin, json={"inputs": ["x"]}
        )
        assert 400 <= r.status_code < 500, (uri, r.status_code, r.text)
        assert CANARY not in r.text and "root:" not in r.text
        with pytest.raises(AimassError):
            ws.models.export(f"crafted@{crafted.version}", trained_home.parent / "export")
        assert not (trained_home.parent / "export").exists()
    finally:
        ws.store.registry.delete_version("default", "crafted", crafted.version)
        ws.close()
    assert canary.read_text() == CANARY
    canary.unlink()


# -- sources and paths sent over the API --------------------------------------------------


SOURCES = [
    "/etc/passwd",
    "file:///etc/passwd",
    "../../canary",
    "..\\..\\canary",
    "mlflow-artifacts:/../canary",
    "s3://x/../../canary",
    "artifacts:../canary",
    "%2e%2e%2f%2e%2e%2fcanary",
    "%252e%252e%252fcanary",
    "C:/Windows/win.ini",
    "in/../../canary",
    "ok#/../../canary",
    "ok?/../../canary",
]


@pytest.fixture
def import_client(client_with, tmp_path):
    """A client whose server imports from ``tmp_path/in`` only; canaries beside and above."""
    allowed = tmp_path / "in"
    allowed.mkdir()
    for path in (tmp_path / "canary", tmp_path / "canary.jsonl"):
        path.write_text(CANARY)
    return client_with(import_dirs=[allowed]), allowed


@pytest.mark.parametrize("source", [*SOURCES, "CANARY_ABSOLUTE"])
def test_a_base_import_from_a_crafted_source_or_path_is_refused(import_client, admin, source):
    client, allowed = import_client
    if source == "CANARY_ABSOLUTE":
        source = str(allowed.parent / "canary")
    before = client.get(f"{P}/bases", headers=admin).json()
    for body in ({"source": source, "name": "evil"}, {"path": source, "name": "evil"}):
        r = client.post(f"{P}/bases", headers=admin, json=body)
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
        assert CANARY not in r.text
    assert client.get(f"{P}/bases", headers=admin).json() == before
    assert (allowed.parent / "canary").read_text() == CANARY


def test_imports_by_path_are_confined_to_the_import_dirs(import_client, admin, tmp_path):
    from tests.conftest import sentiment_rows, write_jsonl

    client, allowed = import_client
    write_jsonl(allowed / "ok.jsonl", sentiment_rows(40))
    outside = write_jsonl(tmp_path / "secret.jsonl", sentiment_rows(40))
    (allowed / "link.jsonl").symlink_to(outside)
    url = f"{P}/datasets:import"
    ok = client.post(url, headers=admin, json={"name": "in-dir", "path": "ok.jsonl"})
    assert ok.status_code == 201, ok.text
    for path in (
        str(outside),
        "../secret.jsonl",
        "..\\secret.jsonl",
        "%2e%2e/secret.jsonl",
        "link.jsonl",
        "/etc/passwd",
        "file:///etc/passwd",
        "ok.jsonl\x00../../secret.jsonl",
        *SOURCES,
    ):
        r = client.post(url, headers=admin, json={"name": "escape", "path": path})
        assert r.status_code in (400, 403, 404), (path, r.text)
        assert CANARY not in r.text
    names = [d["name"] for d in client.get(f"{P}/datasets", headers=admin).json()]
    assert "escape" not in names
    assert (tmp_path / "canary.jsonl").read_text() == CANARY


# -- names in URL paths: GET, PUT and DELETE with every encoding ------------------------------


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        (f"{P}/models/ghost:predict", 404, "NOT_FOUND"),
        (f"{P}/models/sentiment@9:predict", 404, "NOT_FOUND"),
        (f"{P}/models/sentiment@nope:predict", 404, "NOT_FOUND"),
        (f"{P}/models/..%2F..%2Fetc:predict", 404, "NOT_FOUND"),
        (f"{P}/models/bad..name:predict", 400, "INVALID_ARGUMENT"),
        (f"{P}/models/Upper%5Cx:predict", 400, "INVALID_ARGUMENT"),
        ("/v1/projects/Bad%00Name/models/sentiment:predict", 400, "INVALID_ARGUMENT"),
        ("/v1/projects/" + "a" * 300 + "/models/sentiment:predict", 400, "INVALID_ARGUMENT"),
    ],
)
def test_unknown_or_invalid_names(client, admin, url, status, code):
    r = client.post(url, headers=admin, json={"inputs": ["good"]})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` and its SHA-256 (what a deletion or write would change)."""
    found = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.suffix in (".db", ".db-wal", ".db-shm", ".db-journal") or name == "canary":
                continue
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


URL_TRAVERSALS = [
    "..%2F..%2Fcanary",
    "%2E%2E%2F%2E%2E%2Fcanary",
    "%252E%252E%252F%252E%252E%252Fcanary",
    "%25252E%25252E%25252Fcanary",
    "..%5C..%5Ccanary",
    "%2e%2e%5c%2e%2e%5ccanary",
    "%2Fetc%2Fpasswd",
    "C:%2FWindows%2Fwin.ini",
    "x%23%2F..%2F..%2Fcanary",
    "x%3F%2F..%2F..%2Fcanary",
    "x%00..%2Fcanary",
    "%E2%80%A4%E2%80%A4%2Fcanary",
]


def test_get_put_delete_with_encoded_traversals_touch_nothing_outside(client, admin, trained_home):
    (trained_home / "canary").write_text(CANARY)
    (trained_home.parent / "canary").write_text(CANARY)
    before = _tree(trained_home)
    templates = [
        ("GET", f"{P}/datasets/{{}}"),
        ("GET", f"{P}/datasets/{{}}/versions/1"),
        ("GET", f"{P}/models/{{}}"),
        ("GET", f"{P}/models/sentiment/versions/{{}}"),
        ("GET", f"{P}/models/sentiment/versions/{{}}/card"),
        ("GET", f"{P}/models/sentiment/versions/1/reports/{{}}/report.json"),
        ("GET", f"{P}/models/sentiment/versions/1/reports/x/report.{{}}"),
        ("GET", f"{P}/bases/{{}}"),
        ("GET", "/v1/projects/{}/models"),
        ("PUT", f"{P}/models/sentiment/aliases/{{}}"),
        ("DELETE", f"{P}/models/sentiment/aliases/{{}}"),
        ("DELETE", f"{P}/models/{{}}/versions/1"),
        ("DELETE", f"{P}/models/sentiment/versions/{{}}"),
        ("DELETE", f"{P}/keys/{{}}"),
    ]
    for method, template in templates:
        for payload in URL_TRAVERSALS:
            url = template.format(payload)
            r = client.request(
                method, url, headers=admin, json={"version": 1} if method == "PUT" else None
            )
            assert 400 <= r.status_code < 500, (method, url, r.status_code, r.text)
            assert CANARY not in r.text and "root:x:" not in r.text, (method, url)
    assert _tree(trained_home) == before, "no file under the home was written or deleted"
    assert (trained_home / "canary").read_text() == CANARY
    assert (trained_home.parent / "canary").read_text() == CANARY
    model = client.get(f"{P}/models/sentiment", headers=admin).json()
    assert model["aliases"]["production"] == 1
    assert client.get(f"{P}/models/sentiment/versions/1", headers=admin).status_code == 200
