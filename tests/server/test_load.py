"""Load: 10,000 predict requests from 64 concurrent clients, zero 5xx, the audit chain intact."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from aimass.server import create_app
from tests.server.conftest import serve_settings, trained_home  # noqa: F401

pytestmark = pytest.mark.long
REQUESTS = 10_000
CLIENTS = 64


def test_ten_thousand_predicts_at_64_clients(trained_home):  # noqa: F811
    # Served as `aimass serve` serves by default: batches run in two runner processes. One
    # key drives all 64 clients, so its rate and concurrency limits are raised to match.
    settings = serve_settings(
        trained_home,
        serve_runners=2,
        requests_per_key=f"{REQUESTS * 2}/minute",
        max_predicts_per_key=CLIENTS,
    )
    app = create_app(settings, job_workers=0)
    app.state.aimass.start(workers=0)
    key = (trained_home / "admin.key").read_text().strip()
    texts = ["good great film", "bad awful movie and a very boring plot", "it was fine"]

    async def main():
        state = app.state.aimass
        statuses: list[int] = []
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        url = "/v1/projects/default/models/sentiment@production:predict"
        counter = iter(range(REQUESTS))

        async def one_client():
            async with httpx.AsyncClient(
                transport=transport, base_url="http://localhost", headers=headers, timeout=120
            ) as client:
                for i in counter:
                    r = await client.post(url, json={"inputs": [texts[i % 3]]})
                    statuses.append(r.status_code)

        await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
        (pids,) = state.runner_pids().values()
        assert len(pids) == 2
        await state.stop()
        return statuses

    statuses = asyncio.run(main())
    assert len(statuses) == REQUESTS
    assert not [s for s in statuses if s >= 500]
    assert set(statuses) == {200}
    from aimass.workspace import Workspace

    ws = Workspace(serve_settings(trained_home))
    result = ws.audit.verify()
    predicts = ws.audit.list(action="models.predict", limit=REQUESTS + 10)
    ws.close()
    assert result.ok, result.problems
    assert len(predicts) >= REQUESTS
