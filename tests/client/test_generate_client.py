"""The SDK's generate calls and dataset kinds over HTTP: in process (async) and against a live
uvicorn server (sync, real streaming)."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from aimass.client import AsyncClient, Client
from aimass.client._transport import ServerSentEvents
from aimass.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
    UnsupportedModel,
)
from aimass.server import create_app
from aimass.settings import Settings
from tests.conftest import live_server, ner_rows, pair_rows, write_jsonl


def test_sse_parser_handles_fields_comments_and_errors():
    events = ServerSentEvents("http://x")
    lines = [": keep-alive", "", "event: token", 'data: {"text": "a"}', "", "id: 7"]
    lines += ["event: done", 'data: {"done": true,', 'data: "text": "a"}', ""]
    found = [e for e in map(events.feed, lines) if e is not None]
    assert found == [{"text": "a"}, {"done": True, "text": "a"}] and events.done
    events.end()
    failing = ServerSentEvents("http://x")
    failing.feed("event: error")
    failing.feed('data: {"code": "NOT_FOUND", "type": "NotFound", "message": "gone"}')
    with pytest.raises(NotFound, match="gone"):
        failing.feed("")
    cut = ServerSentEvents("http://x")
    cut.feed('data: {"text": "a"}')
    with pytest.raises(Unavailable, match="ended before"):
        cut.end()


def test_sync_client_generates_and_streams_from_a_live_server(live_gen):
    url, key, app = live_gen
    local = app.state.aimass.workspace.serving.generate("echo@1", "repeat cat", max_new_tokens=6)
    with Client(url, key) as client:
        whole = client.generate("echo@production", "repeat cat", max_new_tokens=6)
        assert whole["text"] == local["text"] and set(whole) == set(local)
        events = list(client.generate_stream("echo", "repeat cat", max_new_tokens=6, stop=("zz",)))
        assert events[-1]["done"] is True and events[-1]["text"] == local["text"]
        assert "".join(e["text"] for e in events[:-1]) == local["text"]
        assert events[-1]["usage"] == local["usage"]
        with pytest.raises(UnsupportedModel):
            list(client.generate_stream("mlm", "hi"))
        with pytest.raises(InvalidArgument, match="context"):
            client.generate("echo", "cat " * 300)
        with pytest.raises(NotFound):
            client.generate("ghost", "hi")
        reader = client.keys.create("gen-reader", scopes=["read"])
        with Client(url, reader.key) as weak, pytest.raises(PermissionDenied):
            next(weak.generate_stream("echo", "hi"))


def test_closing_the_stream_early_stops_the_generation(live_gen, monkeypatch):
    url, key, app = live_gen
    ws = app.state.aimass.workspace
    predictor = ws.serving.generator(ws.models.get("echo@1"))
    closed = threading.Event()

    def endless(prompt, **options):
        try:
            while True:
                time.sleep(0.001)
                yield {"text": "x"}
        finally:
            closed.set()

    monkeypatch.setattr(predictor, "generate_stream", endless)
    with Client(url, key) as client:
        stream = client.generate_stream("echo@1", "hi")
        assert next(stream) == {"text": "x"}
        stream.close()
    assert closed.wait(timeout=10), "the server kept generating for a client that left"


def test_a_failure_mid_stream_raises_the_servers_error(live_gen, monkeypatch):
    url, key, app = live_gen
    ws = app.state.aimass.workspace
    predictor = ws.serving.generator(ws.models.get("echo@1"))

    def failing(prompt, **options):
        yield {"text": "a"}
        raise ResourceExhausted("out of memory")

    monkeypatch.setattr(predictor, "generate_stream", failing)
    with Client(url, key) as client:
        stream = client.generate_stream("echo@1", "hi")
        assert next(stream) == {"text": "a"}
        with pytest.raises(ResourceExhausted, match="out of memory"):
            next(stream)


def test_async_client_generates_in_process(gen_home):
    app = create_app(Settings(home=gen_home, device="cpu", serve_runners=0), job_workers=0)
    app.state.aimass.start(workers=0)
    key = (gen_home / "admin.key").read_text().strip()

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with AsyncClient("http://localhost", key, transport=transport) as client:
            whole = await client.generate("echo", "repeat dog", max_new_tokens=5)
            events = [
                e async for e in client.generate_stream("echo", "repeat dog", max_new_tokens=5)
            ]
            assert events[-1]["text"] == whole["text"] and events[-1]["done"]
            with pytest.raises(UnsupportedModel):
                await client.generate("mlm", "hi")
            with pytest.raises(InvalidArgument, match="AIMASS_MAX_NEW_TOKENS"):
                async for _ in client.generate_stream("echo", "hi", max_new_tokens=100_000):
                    pass
        await app.state.aimass.stop()

    asyncio.run(main())


def test_pairs_tokens_and_conll_datasets_upload_over_http(live_gen, tmp_path):
    url, key, _ = live_gen
    pairs = write_jsonl(tmp_path / "p.jsonl", pair_rows(24))
    tokens = write_jsonl(tmp_path / "t.jsonl", ner_rows(30))
    conll = tmp_path / "n.conll"
    conll.write_text(
        "\n\n".join(
            "\n".join(f"{t} {g}" for t, g in zip(r["tokens"], r["tags"], strict=True))
            for r in ner_rows(30, seed=1)
        )
        + "\n"
    )
    with Client(url, key) as client:
        p = client.datasets.upload(pairs, name="up-pairs", kind="pairs")
        assert p.data_schema.kind == "pairs" and p.num_rows == 24
        assert p.data_schema.text_field == "prompt"
        t = client.datasets.upload(tokens, name="up-tokens", kind="tokens")
        assert t.data_schema.kind == "tokens" and t.num_rows == 30
        c = client.datasets.upload(conll, name="up-conll")
        assert c.data_schema.kind == "tokens" and c.num_rows == 30
        bad = write_jsonl(tmp_path / "bad.jsonl", [{"tokens": ["a"], "tags": ["I-PER"]}])
        with pytest.raises(InvalidArgument, match="line 1"):
            client.datasets.upload(bad, name="up-bad", kind="tokens")
        with pytest.raises(InvalidArgument, match="kind"):
            client.datasets.upload(pairs, name="up-x", kind="images")
        assert "up-bad" not in {d.name for d in client.datasets.list()}


@pytest.mark.subprocess  # a real runner process loads the model
def test_generation_runs_in_the_runner_that_serves_predictions(gen_home):
    """One copy of the model: generate, and an early close, go through the version's runner."""
    for url, key, app in live_server(gen_home, serve_runners=1):
        with Client(url, key) as client:
            whole = client.generate("echo@1", "repeat cat", max_new_tokens=4)
            events = list(client.generate_stream("echo@1", "repeat cat", max_new_tokens=4))
            assert events[-1]["text"] == whole["text"] and whole["finish_reason"]
            pids = app.state.aimass.runner_pids()
            assert (
                list(pids.values()) == [pids["default/echo@1"]] and len(pids["default/echo@1"]) == 1
            )
            early = client.generate_stream("echo@1", "repeat cat", max_new_tokens=64)
            next(early)
            early.close()  # cancelled in the runner, which then serves the next call
            again = client.generate("echo@1", "repeat dog", max_new_tokens=2)
            assert again["finish_reason"] and app.state.aimass.runner_pids() == pids
            with pytest.raises(UnsupportedModel):
                client.generate("mlm@1", "hi")
