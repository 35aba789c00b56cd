"""What sharing the limits costs a request: in memory vs in the metadata database.

``AIMASS_SHARED_RATE_LIMITS=true`` counts the rate limits in the database so that
the servers on it share them; every counted request then writes a counter row.
With ``--what rates`` (the default) this benchmark serves ``GET /v1/whoami``
(authentication, the rate checks, the audit-free read path) from one app per side
on the same home, in process through FastAPI's test client, alternating the sides
round by round, and prints the median latency of each and their ratio:

* ``memory``: the default, counters in the process's memory;
* ``shared``: ``shared_rate_limits=True``, counters in the home's database.

``AIMASS_SHARED_CONCURRENCY_LIMITS=true`` counts each key's calls in flight as
leases in the database. With ``--what slots`` the rounds time what a predict or
generate call does around its work: take one of the key's slots and give it back
(``Throttle.holding`` on an event loop, as the routes call it), one throttle per side
over the same database, so the difference is the slot's own cost per call.

    python bench/shared_limits.py [--what rates|slots] [--rounds 7] [--requests 300]
        [--database-url URL] [--out FILE]

Without ``--database-url`` the home is a fresh SQLite one; with it (a PostgreSQL
server's URL; ``python -m tests.plugins.postgres DIR`` starts one on loopback), the
metadata lives in a fresh database made on that server (and dropped after), as for
several servers. Writes ``bench/results/shared-limits.json``
(or ``--out``: a bare file name goes under ``bench/results/`` too).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def _round(client: Any, headers: dict[str, str], requests: int) -> list[float]:
    """Latencies (ms) of ``requests`` sequential ``GET /v1/whoami`` calls."""
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get("/v1/whoami", headers=headers)
        times.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"GET /v1/whoami answered {response.status_code}: {response.text}")
    return times


def _slot_round(throttle: Any, requests: int) -> list[float]:
    """Latencies (ms) of ``requests`` sequential take-and-give-back cycles of a slot."""
    import asyncio

    async def cycles() -> list[float]:
        times = []
        for _ in range(requests):
            start = time.perf_counter()
            async with throttle.holding("bench-key", "predict"):
                pass
            times.append((time.perf_counter() - start) * 1000)
        return times

    return asyncio.run(cycles())


def _fresh_database(server_url: str) -> str:
    """A new, empty database on the PostgreSQL server of ``server_url``; its URL."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"aimass_bench_{uuid.uuid4().hex[:12]}"
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    """Run the rounds and print medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--what", choices=("rates", "slots"), default="rates")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from aimass.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="aimass-limits-")) / "home"
    common: dict[str, Any] = {"home": home, "device": "cpu", "requests_per_key": "1000000/minute"}
    if args.database_url:
        common["database_url"] = _fresh_database(args.database_url)
    sides = {"memory": False, "shared": True}
    if args.what == "slots":
        medians = _slot_rounds(Settings(**common), sides, args.rounds, args.requests)
        what = "take and give back a predict slot"
    else:
        medians = _rate_rounds(common, sides, args.rounds, args.requests)
        what = "GET /v1/whoami"
    result = {
        "what": args.what,
        "database": "postgresql" if args.database_url else "sqlite",
        "rounds": args.rounds,
        "requests_per_round": args.requests,
        "median_ms": {name: statistics.median(values) for name, values in medians.items()},
        "round_medians_ms": medians,
    }
    result["ratio_shared_over_memory"] = (
        result["median_ms"]["shared"] / result["median_ms"]["memory"]
    )
    for name, value in result["median_ms"].items():
        print(f"{name:>7}: median {value:.3f} ms per {what} ({result['database']})")
    added = result["median_ms"]["shared"] - result["median_ms"]["memory"]
    result["added_ms"] = added
    print(f"shared / memory: {result['ratio_shared_over_memory']:.2f}x; {added:.2f} ms more")
    out = Path(args.out or f"shared-{'limits' if args.what == 'rates' else 'slots'}.json")
    out = out if out.parent != Path(".") else RESULTS / out
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)


def _rate_rounds(
    common: dict[str, Any], sides: dict[str, bool], rounds: int, requests: int
) -> dict[str, list[float]]:
    """Each side's round medians of ``GET /v1/whoami``, sides alternating."""
    from fastapi.testclient import TestClient

    from aimass.server import create_app
    from aimass.settings import Settings

    clients = {}
    for name, shared in sides.items():
        app = create_app(Settings(**common, shared_rate_limits=shared), job_workers=0)
        clients[name] = TestClient(app, base_url="http://localhost").__enter__()
    headers = {"Authorization": f"Bearer {(common['home'] / 'admin.key').read_text().strip()}"}
    for client in clients.values():  # warm: imports, the key cache, the first connections
        _round(client, headers, 20)
    medians: dict[str, list[float]] = {name: [] for name in sides}
    for index in range(rounds):
        order = list(sides) if index % 2 == 0 else list(reversed(sides))
        for name in order:
            medians[name].append(statistics.median(_round(clients[name], headers, requests)))
    for client in clients.values():
        client.__exit__(None, None, None)
    return medians


def _slot_rounds(
    settings: Any, sides: dict[str, bool], rounds: int, requests: int
) -> dict[str, list[float]]:
    """Each side's round medians of a slot's take-and-give-back cycle, sides alternating."""
    from aimass.server.throttle import Throttle
    from aimass.store import Store

    settings.home.mkdir(parents=True, exist_ok=True)
    store = Store(settings.resolved_store_uri)
    throttles = {
        name: Throttle(settings, on_decision=print, slots=store.slots if shared else None)
        for name, shared in sides.items()
    }
    for throttle in throttles.values():  # warm: the first connections, the worker threads
        _slot_round(throttle, 20)
    medians: dict[str, list[float]] = {name: [] for name in sides}
    for index in range(rounds):
        order = list(sides) if index % 2 == 0 else list(reversed(sides))
        for name in order:
            medians[name].append(statistics.median(_slot_round(throttles[name], requests)))
    store.close()
    return medians


if __name__ == "__main__":
    main()
