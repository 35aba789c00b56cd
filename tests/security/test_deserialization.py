"""Code execution through deserialization (field notes rows 3, 6, 7 and 8: MLflow
CVE-2024-37052…37060, torch.load ``weights_only`` bypasses CVE-2025-32434 and
CVE-2026-24747, "nullifAI" broken and 7z-wrapped pickles on hubs, BentoML pickle
request bodies CVE-2025-27520).

The control is never to unpickle, not a scanner: each payload below creates a
marker file when unpickled, and every test ends by proving the marker absent.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import pickle
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import aimass
from aimass.artifacts.bundle import MANIFEST, BundleWriter, verify_bundle
from aimass.errors import BundleFormatError, InvalidArgument, UnsupportedModel
from aimass.models.torch_zip import read_state_dict
from aimass.server.console.urls import is_console_path
from tests.artifacts.test_bundle import make_bundle
from tests.security.conftest import WritesMarker, api_routes, concrete

SOURCE = Path(aimass.__file__).parent


def payload(marker: Path) -> bytes:
    return pickle.dumps(WritesMarker(marker))


def wrapped_payloads(marker: Path) -> dict[str, bytes]:
    """The same payload as each form an attacker has used to slip past a scanner."""
    raw = payload(marker)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("archive/data.pkl", raw)
        archive.writestr("archive/version", "3\n")
    saved = io.BytesIO()
    torch.save({"w": torch.ones(1), "x": WritesMarker(marker)}, saved)
    return {
        "raw": raw,
        "gzip": gzip.compress(raw),
        "zip": zipped.getvalue(),
        "torch-save": saved.getvalue(),
        # nullifAI: the payload's opcodes first, then a stream that breaks the unpickler
        # after they have run (and a 7z signature scanners skip).
        "broken": raw[:-1] + b"\x00garbage",
        "7z": b"7z\xbc\xaf\x27\x1c\x00\x04" + raw,
    }


# -- row 3: the bundle format is an allow-list -------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["pytorch_model.bin", "model.pt", "model.pkl", "x.ckpt", "model.joblib", "tf_model.h5"],
)
def test_pickle_formats_are_refused_when_writing(tmp_path, name):
    writer = BundleWriter(tmp_path / "b")
    with pytest.raises(BundleFormatError, match="pickle"):
        writer.add_bytes(name, b"x")


def test_a_manifest_listing_a_pickle_is_refused(tmp_path):
    make_bundle(tmp_path / "b")
    manifest = json.loads((tmp_path / "b" / MANIFEST).read_text())
    manifest["files"]["pytorch_model.bin"] = {"sha256": "0", "size": 1}
    (tmp_path / "b" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleFormatError, match="pickle"):
        verify_bundle(tmp_path / "b")


def test_a_pickle_bundle_never_executes(tmp_path):
    marker = tmp_path / "PWNED"
    bundle = tmp_path / "b"
    make_bundle(bundle)
    (bundle / "model.safetensors").unlink()
    (bundle / "pytorch_model.bin").write_bytes(payload(marker))
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from aimass.serving.predictor import load_predictor\n"
        "try:\n    load_predictor(Path(sys.argv[1]))\nexcept Exception as e:\n"
        "    print(type(e).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(bundle)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "BundleFormatError"
    assert not marker.exists()


# Imports a base from each directory named on the command line, in a fresh interpreter (a
# payload that ran would run there, and leave its marker), and prints one line per import.
_IMPORT_EACH = """
import sys
from pathlib import Path
from aimass.settings import Settings
from aimass.workspace import Workspace
from aimass.models.hf import load_pretrained

ws = Workspace(Settings(home=Path(sys.argv[1]), device="cpu"))
for directory in sys.argv[2:]:
    name = Path(directory).name
    try:
        ws.bases.import_(directory, name=name)
        outcome = "imported"
    except Exception as exc:
        outcome = type(exc).__name__
    try:
        load_pretrained(Path(directory), family="encoder")
        loaded = "loaded"
    except Exception as exc:
        loaded = type(exc).__name__
    print(name, outcome, loaded)
ws.close()
"""


def test_pickled_weights_in_every_wrapping_are_refused_and_never_run(tiny_bert_dir, tmp_path):
    """Rows 3, 6 and 7: a base directory whose only weights are a pickle (raw, gzip, zip,
    torch.save, broken-stream, 7z-wrapped; as .bin, .pt, .pkl, .joblib) is refused by the
    import and by the loader, in a fresh interpreter, and the payload never runs."""
    marker = tmp_path / "PWNED"
    directories = []
    for form, data in wrapped_payloads(marker).items():
        for filename in ("pytorch_model.bin", "model.pt", "model.pkl", "model.joblib"):
            directory = tmp_path / f"evil-{form}-{filename.replace('.', '-').replace('_', '-')}"
            shutil.copytree(tiny_bert_dir, directory)
            (directory / "model.safetensors").unlink()
            (directory / filename).write_bytes(data)
            directories.append(directory)
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, str(tmp_path / "home"), *map(str, directories)],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = out.stdout.split("\n")
    results = {line.split()[0]: line.split()[1:] for line in lines if line.strip()}
    assert len(results) == len(directories), out.stderr[-2000:]
    for name, (imported, loaded) in results.items():
        assert imported == "UnsupportedModel", (name, imported)
        assert loaded == "UnsupportedModel", (name, loaded)
    assert not marker.exists()


def test_a_pickle_beside_safetensors_is_left_out_of_the_bundle(workspace, tiny_bert_dir, tmp_path):
    marker = tmp_path / "PWNED"
    directory = tmp_path / "mixed"
    shutil.copytree(tiny_bert_dir, directory)
    (directory / "pytorch_model.bin").write_bytes(payload(marker))
    (directory / "extra.pkl").write_bytes(payload(marker))
    base, _ = workspace.bases.import_(str(directory), name="mixed")
    bundle = workspace.artifacts.resolve(base.uri)
    files = set(verify_bundle(bundle).files)
    assert not any(f.endswith((".bin", ".pkl")) for f in files), files
    from aimass.models.hf import load_pretrained

    load_pretrained(directory, family="encoder")  # safetensors chosen; the pickle never read
    assert not marker.exists()


def test_pickle_only_directories_are_refused_without_unpickling(workspace, tiny_bert_dir, tmp_path):
    evil = tmp_path / "evil"
    shutil.copytree(tiny_bert_dir, evil)
    (evil / "model.safetensors").unlink()
    marker = tmp_path / "PWNED"
    (evil / "pytorch_model.bin").write_bytes(payload(marker))
    with pytest.raises(UnsupportedModel, match="never unpickles"):
        workspace.bases.import_(str(evil), name="evil")
    assert not marker.exists()
    assert workspace.store.bases.list("default") == []


def test_remote_code_is_never_trusted(workspace, tiny_bert_dir, tmp_path):
    custom = tmp_path / "custom"
    shutil.copytree(tiny_bert_dir, custom)
    config = (custom / "config.json").read_text()
    (custom / "config.json").write_text(
        config.replace(
            '"model_type": "bert"', '"model_type": "evil", "auto_map": {"AutoModel": "m.M"}'
        )
    )
    marker = tmp_path / "PWNED"
    (custom / "m.py").write_text(f"open({str(marker)!r}, 'w')\n")
    with pytest.raises(UnsupportedModel):
        workspace.bases.import_(str(custom), name="custom")
    assert not marker.exists()


def test_a_dataset_upload_in_a_pickle_format_is_refused(client, admin, tmp_path):
    import base64

    marker = tmp_path / "PWNED"
    content = base64.b64encode(payload(marker)).decode()
    for fmt in ("pickle", "pkl", "joblib", "npy", "torch"):
        body = {"name": "pickled", "format": fmt, "content_base64": content}
        r = client.post("/v1/projects/default/datasets", headers=admin, json=body)
        assert r.status_code == 400, (fmt, r.text)
    assert not marker.exists()


# -- row 6: torch checkpoints are parsed, never torch.load-ed ----------------------------------


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"

    class MakesDir:
        def __reduce__(self):
            import os

            return (os.mkdir, (str(marker),))

    path = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.ones(1), "x": MakesDir()}, path, pickle_protocol=protocol)
    with pytest.raises(InvalidArgument, match=r"(posix|os)\.mkdir") as caught:
        read_state_dict(path)
    assert "mkdir" in caught.value.message
    assert not marker.exists()


@pytest.mark.parametrize("form", ["raw", "gzip", "zip", "torch-save", "broken", "7z"])
def test_the_checkpoint_parser_refuses_every_wrapping(tmp_path, form):
    marker = tmp_path / "PWNED"
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(wrapped_payloads(marker)[form])
    with pytest.raises(InvalidArgument):
        read_state_dict(path)
    assert not marker.exists()


def test_aimass_never_calls_an_unpickler():
    """No ``torch.load``/``pickle.load`` in the source: checkpoints go through the parser."""
    needles = (
        "torch.load(",
        "pickle.load",
        "pickle.Unpickler",
        "joblib.load",
        "cloudpickle",
        "dill.load",
        "allow_pickle=True",
        "weights_only=False",
    )
    offenders = [
        f"{path.relative_to(SOURCE)}: {needle}"
        for path in SOURCE.rglob("*.py")
        for needle in needles
        if needle in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_torch_has_the_weights_only_fixes():
    """CVE-2025-32434 was fixed in torch 2.6, CVE-2026-24747 in 2.10."""
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    assert (major, minor) >= (2, 10), torch.__version__


def _from_pretrained_calls() -> list[tuple[Path, str, str]]:
    """``(file, enclosing function source, call source)`` of every ``*.from_pretrained(...)``."""
    found = []
    for path in SOURCE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "from_pretrained(" not in text:
            continue
        tree = ast.parse(text)
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "from_pretrained"
                ):
                    found.append(
                        (
                            path,
                            ast.get_source_segment(text, function) or "",
                            ast.get_source_segment(text, node) or "",
                        )
                    )
    return found


def test_every_from_pretrained_is_local_without_remote_code_and_loads_safetensors():
    calls = _from_pretrained_calls()
    assert len(calls) >= 3, "the calls were found"
    remote_off = re.compile(r"""trust_remote_code["']?\s*[=:]\s*False""")
    for path, function, call in calls:
        where = f"{path.relative_to(SOURCE)}: {call[:120]}"
        assert remote_off.search(function), where
        assert "trust_remote_code=True" not in function, where
        # Weights: safetensors only (GGUF files carry tensors and metadata, no pickle).
        if re.search(r"AutoModel\w*\.from_pretrained|loader\.from_pretrained", call):
            assert "use_safetensors=True" in function or "gguf_file" in function, where


# -- row 8: pickle (and every other non-JSON) request body, on every route --------------------

PICKLE_TYPES = [
    "application/vnd.bentoml+pickle",
    "application/octet-stream",
    "application/x-python-pickle",
    "application/python-pickle",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
]


def test_pickle_and_other_non_json_bodies_are_refused_on_every_route(app, client, admin, tmp_path):
    marker = tmp_path / "unpickled.marker"
    body = payload(marker)
    checked = 0
    for method, path in api_routes(app):
        if method == "GET":
            continue
        for content_type in PICKLE_TYPES:
            for headers in (admin, {}):
                answer = client.request(
                    method,
                    concrete(path),
                    content=body,
                    headers={**headers, "Content-Type": content_type},
                )
                if is_console_path(path) and content_type.endswith("x-www-form-urlencoded"):
                    # The console's forms: read as text fields (urllib's parse_qs), never
                    # as objects; the marker below proves nothing was unpickled.
                    assert answer.status_code in (200, 303, 401, 403), (method, path)
                    continue
                assert answer.status_code == 415, (method, path, content_type, answer.text)
                assert answer.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
                checked += 1
    assert checked > 100
    assert not marker.exists()


def test_a_pickle_body_without_a_content_type_is_refused(client, admin, tmp_path):
    marker = tmp_path / "unpickled.marker"
    r = client.post(
        "/v1/projects/default/models/sentiment:predict", headers=admin, content=payload(marker)
    )
    assert r.status_code in (400, 415), r.text
    assert not marker.exists()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/projects", {"name": "a\nb"}),
        ("/v1/projects/default/keys", {"name": "k\nRUN rm -rf /", "scopes": ["read"]}),
        (
            "/v1/projects/default/datasets",
            {"name": "d\n", "format": "jsonl", "content": '{"text": "a", "label": "b"}\n'},
        ),
        ("/v1/projects/default/jobs", {"kind": "train", "dataset": "reviews", "model": "m\nx"}),
    ],
)
def test_names_holding_a_newline_are_refused(client, admin, path, body):
    """Row 8's Dockerfile injection (CVE-2026-44345): a newline in a name never gets stored."""
    r = client.post(path, headers=admin, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "INVALID_ARGUMENT"
