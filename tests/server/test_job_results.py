"""Downloading a batch prediction's result dataset: locally, over HTTP, the SDK and the CLI.

Parquet, CSV and JSONL; Chinese text with commas, quotes and line breaks survives
each; a key with an output policy never reads more than the policy shows.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import json
import uuid

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aimass.artifacts.plaintext import shared_cache
from aimass.client import AsyncClient, Client
from aimass.errors import FailedPrecondition, InvalidArgument, NotFound, Unauthenticated
from aimass.jobs.batch import BatchPredictSpec
from aimass.server import create_app
from aimass.serving.policy import parse_policy
from aimass.settings import Settings
from aimass.workspace import Workspace
from aimass.workspace.results import _cut, open_job_results, write_job_results
from tests.conftest import write_jsonl
from tests.server.conftest import make_key, serve_settings
from tests.server.test_trust_api import through

P = "/v1/projects/default"
TEXTS = [
    '这部电影很好看，"强烈推荐"',
    "剧情拖沓, 演员表演很差",
    "第一行\n第二行：还不错",
    "great film, 很好",
    "糟糕透了；浪费时间",
    "音乐很美 🎵",
    "一般般，没什么特别",
    "导演的功力深厚",
]


@pytest.fixture(scope="module")
def scored(trained_home):
    """Batch predictions of 'sentiment' over a Chinese dataset: (job id, stored rows)."""
    ws = Workspace(Settings(home=trained_home, device="cpu"))
    try:
        rows = [
            {"text": t, "label": "pos" if i % 2 == 0 else "neg"} for i, t in enumerate(TEXTS * 3)
        ]
        ws.datasets.import_file(write_jsonl(trained_home.parent / "zh.jsonl", rows), name="zh")
        spec = BatchPredictSpec(model="sentiment@production", dataset="zh", output="zh-scored")
        job = ws.jobs.run(ws.jobs.submit_batch_predict(spec).id)
        assert job.status == "succeeded", job.error
        version = ws.datasets.get("zh-scored")
        with ws.artifacts.plaintext_scope():  # read, then the decrypted copy goes
            stored = pq.read_table(ws.artifacts.resolve(version.uri)).to_pylist()
    finally:
        ws.close()
    return job.id, stored


@pytest.fixture
def ws(trained_home):
    found = Workspace(Settings(home=trained_home, device="cpu"))
    yield found
    found.close()


def parse(fmt: str, data: bytes) -> list[dict]:
    """Rows of a downloaded file, read with the standard tools of each format."""
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(data)).to_pylist()
    if fmt == "jsonl":
        return [json.loads(line) for line in data.decode("utf-8").splitlines()]
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    return [{k: (v if v != "" else None) for k, v in row.items()} for row in rows]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_local_download_round_trips_every_row_and_the_chinese_text(scored, ws, tmp_path, fmt):
    job_id, stored = scored
    written = write_job_results(ws, job_id, tmp_path, project="default", fmt=fmt)
    assert written == tmp_path / f"zh-scored-v1.{fmt}"
    rows = parse(fmt, written.read_bytes())
    assert rows == stored
    assert {r["text"] for r in rows} == set(TEXTS)
    assert {"label", "score", "probabilities", "true_label", "split"} <= set(rows[0])
    assert not list(tmp_path.glob(".*partial")), "no temporary file is left behind"
    named = write_job_results(ws, job_id, tmp_path / "mine.out", project="default", fmt=fmt)
    assert named.read_bytes() == written.read_bytes()
    uri = ws.datasets.get("zh-scored").uri
    assert ws.artifacts.is_encrypted(uri)
    key = ws.artifacts.key_of(uri)
    assert not [k for k in shared_cache().held() if k.endswith(key)], "no decrypted copy is kept"


def test_downloads_that_cannot_be_made_say_why(scored, ws, tmp_path):
    train_job = ws.jobs.list(kind="train")[0]
    with pytest.raises(InvalidArgument, match="only batch-predict jobs"):
        open_job_results(ws, train_job.id, project="default")
    with pytest.raises(InvalidArgument, match="result format 'xlsx'"):
        open_job_results(ws, scored[0], project="default", fmt="xlsx")
    with pytest.raises(NotFound):
        open_job_results(ws, "nosuchjob", project="default")
    queued = ws.jobs.submit_batch_predict(
        BatchPredictSpec(model="sentiment@production", dataset="zh", output="later")
    )
    with pytest.raises(FailedPrecondition, match=r"is queued .*aimass jobs logs -f"):
        open_job_results(ws, queued.id, project="default")
    ws.jobs.cancel(queued.id)
    with pytest.raises(FailedPrecondition, match="ended cancelled"):
        open_job_results(ws, queued.id, project="default")
    with pytest.raises(InvalidArgument, match="does not exist"):
        write_job_results(ws, scored[0], tmp_path / "no" / "x.csv", project="default")


@pytest.mark.parametrize(
    ("fmt", "media"),
    [
        ("parquet", "application/vnd.apache.parquet"),
        ("csv", "text/csv; charset=utf-8"),
        ("jsonl", "application/x-ndjson; charset=utf-8"),
    ],
)
def test_http_download_streams_each_format_with_a_file_name(
    client, admin, scored, ws, tmp_path, fmt, media
):
    job_id, stored = scored
    r = client.get(f"{P}/jobs/{job_id}/results", headers=admin, params={"format": fmt})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == media
    assert r.headers["content-disposition"] == f'attachment; filename="zh-scored-v1.{fmt}"'
    local = write_job_results(ws, job_id, tmp_path, project="default", fmt=fmt)
    assert r.content == local.read_bytes()
    assert parse(fmt, r.content) == stored
    audited = client.get("/v1/audit", headers=admin, params={"action": "jobs.results"}).json()
    assert audited[0]["details"]["format"] == fmt and audited[0]["details"]["rows"] == 24


def test_http_download_refusals(client, admin, scored, ws):
    job_id = scored[0]
    url = f"{P}/jobs/{job_id}/results"
    assert client.get(url).status_code == 401
    bad = client.get(url, headers=admin, params={"format": "xlsx"})
    assert bad.status_code == 400 and "format" in bad.json()["error"]["message"]
    train_job = ws.jobs.list(kind="train")[0].id
    r = client.get(f"{P}/jobs/{train_job}/results", headers=admin)
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_ARGUMENT"
    other = make_key(client, admin, ["read"], project="elsewhere", name="other")
    assert (
        client.get(f"/v1/projects/elsewhere/jobs/{job_id}/results", headers=other).status_code
        == 404
    )
    assert client.get(url, headers=other).status_code == 404


def create_key(client, admin, policy, scopes=("read",)):
    body = {"name": f"p-{uuid.uuid4().hex[:6]}", "scopes": list(scopes), "output_policy": policy}
    r = client.post(f"{P}/keys", headers=admin, json=body)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}"}


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_a_labels_key_downloads_labels_only(client, admin, scored, fmt):
    job_id, stored = scored
    labels = create_key(client, admin, "labels")
    r = client.get(f"{P}/jobs/{job_id}/results", headers=labels, params={"format": fmt})
    assert r.status_code == 200, r.text
    rows = parse(fmt, r.content)
    assert "score" not in rows[0] and "probabilities" not in rows[0]
    assert [(r["text"], r["label"]) for r in rows] == [(s["text"], s["label"]) for s in stored]
    assert b"probabilities" not in r.content


def test_a_top_k_and_rounding_key_gets_the_cut_scores(client, admin, scored):
    job_id, stored = scored
    cut = create_key(client, admin, "top_k=1,round=2")
    r = client.get(f"{P}/jobs/{job_id}/results", headers=cut, params={"format": "jsonl"})
    rows = parse("jsonl", r.content)
    for row, full in zip(rows, stored, strict=True):
        probabilities = json.loads(row["probabilities"])
        assert list(probabilities) == [full["label"]]
        assert probabilities[full["label"]] == round(float(full["score"]), 2)
        assert row["score"] == str(round(float(full["score"]), 2))


def test_results_stored_under_the_submitters_policy_stay_cut_for_everyone(
    client, admin, scored, trained_home
):
    submitter = create_key(client, admin, "labels", scopes=("read", "predict", "data:write"))
    body = {"kind": "batch-predict", "model": "sentiment", "dataset": "zh", "output": "zh-labels"}
    r = client.post(f"{P}/jobs", headers=submitter, json=body)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["spec"]["output_policy"] == "labels"
    runner = Workspace(Settings(home=trained_home, device="cpu"))
    try:
        assert runner.jobs.run(job["id"]).status == "succeeded"
    finally:
        runner.close()
    r = client.get(f"{P}/jobs/{job['id']}/results", headers=admin, params={"format": "csv"})
    header = r.content.decode().splitlines()[0]
    assert "score" not in header and "probabilities" not in header and '"label"' in header


def test_a_regression_result_is_rounded_like_predict():
    batch = pa.RecordBatch.from_pydict({"text": ["a", "b"], "label": [0.123456, 2.5]})
    rounded = _cut(batch, parse_policy("round=2"), regression=True)
    assert rounded.column("label").to_pylist() == [0.12, 2.5]
    assert _cut(batch, parse_policy("full"), regression=True) is batch


def test_the_sdk_streams_results_to_a_file_or_a_folder(client, admin, scored, tmp_path):
    job_id, stored = scored
    key = admin["Authorization"].split()[1]
    with Client("http://localhost", key, transport=through(client)) as sdk:
        into_folder = sdk.jobs.results(job_id, tmp_path, fmt="csv")
        assert into_folder == tmp_path / "zh-scored-v1.csv"
        assert parse("csv", into_folder.read_bytes()) == stored
        named = sdk.jobs.results(job_id, tmp_path / "out.parquet")
        assert parse("parquet", named.read_bytes()) == stored
        with pytest.raises(NotFound):
            sdk.jobs.results("nosuchjob", tmp_path / "ghost.csv", fmt="csv")
        assert not (tmp_path / "ghost.csv").exists()
    with (
        Client("http://localhost", transport=through(client)) as anonymous,
        pytest.raises(Unauthenticated) as info,
    ):
        anonymous.jobs.results(job_id, tmp_path)
    assert "api_key=" in info.value.message and info.value.details["hint"]
    assert "Authorization: Bearer" in info.value.message, "the server's message is kept"


def test_the_async_sdk_downloads_results(trained_home, scored, tmp_path):
    job_id, stored = scored
    app = create_app(serve_settings(trained_home), job_workers=0)
    app.state.aimass.start(workers=0)
    key = (trained_home / "admin.key").read_text().strip()

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with AsyncClient("http://localhost", key, transport=transport) as sdk:
            written = await sdk.jobs.results(job_id, tmp_path, fmt="jsonl")
        await app.state.aimass.stop()
        return written

    written = asyncio.run(main())
    assert written.name == "zh-scored-v1.jsonl"
    assert parse("jsonl", written.read_bytes()) == stored


def test_the_cli_downloads_locally_and_through_a_server(
    client, admin, scored, trained_home, tmp_path, monkeypatch
):
    from aimass.cli import app

    job_id, stored = scored
    runner = CliRunner()
    env = {"AIMASS_HOME": str(trained_home), "AIMASS_DEVICE": "cpu"}
    local = runner.invoke(
        app, ["jobs", "results", job_id, "--format", "csv", "-o", str(tmp_path / "l.csv")], env=env
    )
    assert local.exit_code == 0, local.output
    assert parse("csv", (tmp_path / "l.csv").read_bytes()) == stored
    by_suffix = runner.invoke(
        app, ["jobs", "results", job_id, "-o", str(tmp_path / "s.jsonl")], env=env
    )
    assert by_suffix.exit_code == 0 and parse("jsonl", (tmp_path / "s.jsonl").read_bytes())
    mismatch = runner.invoke(
        app, ["jobs", "results", job_id, "--format", "csv", "-o", str(tmp_path / "x.jsonl")]
    )
    assert mismatch.exit_code == 1 and "--format is csv" in mismatch.stderr

    key = admin["Authorization"].split()[1]
    monkeypatch.setattr(
        "aimass.client.Client", functools.partial(Client, transport=through(client))
    )
    remote_args = ["--url", "http://localhost", "--api-key", key, "jobs", "results", job_id]
    remote = runner.invoke(
        app, [*remote_args, "--format", "jsonl", "-o", str(tmp_path), "--json"], env=env
    )
    assert remote.exit_code == 0, remote.output
    assert key not in remote.output
    written = json.loads(remote.stdout)["path"]
    assert written.endswith("zh-scored-v1.jsonl")
    assert parse("jsonl", (tmp_path / "zh-scored-v1.jsonl").read_bytes()) == stored


def test_the_cli_names_its_ways_to_pass_a_key_on_a_401(client, monkeypatch):
    from aimass.cli import app

    monkeypatch.setattr(
        "aimass.client.Client", functools.partial(Client, transport=through(client))
    )
    runner = CliRunner()
    for extra in ([], ["--api-key", "aimass_bogus0000_notarealsecret"]):
        result = runner.invoke(app, ["--url", "http://localhost", *extra, "jobs", "list"])
        assert result.exit_code == 1
        message = " ".join(result.stderr.split())
        assert "UNAUTHENTICATED" in message
        assert "AIMASS_API_KEY=aimass_..." in message and "--api-key" in message
        assert "aimass.Client(" not in message, "the SDK's hint is replaced by the CLI's"
        assert "notarealsecret" not in result.output
