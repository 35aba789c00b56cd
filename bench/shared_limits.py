"""What sharing the rate limits costs a request: in memory vs in the metadata database.

``AIMASS_SHARED_RATE_LIMITS=true`` counts the rate limits in the database so that
the servers on it share them; every counted request then writes a counter row.
This benchmark serves ``GET /v1/whoami`` (authentication, the rate checks, the
audit-free read path) from one app per side on the same home, in process through
FastAPI's test client, alternating the sides round by round, and prints the
median latency of each and their ratio:

* ``memory``: the default, counters in the process's memory;
* ``shared``: ``shared_rate_limits=True``, counters in the home's database.

    python bench/shared_limits.py [--rounds 7] [--requests 300] [--database-url URL] [--out FILE]

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
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--out", default="shared-limits.json")
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from aimass.server import create_app
    from aimass.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="aimass-limits-")) / "home"
    common: dict[str, Any] = {"home": home, "device": "cpu", "requests_per_key": "1000000/minute"}
    if args.database_url:
        common["database_url"] = _fresh_database(args.database_url)
    sides = {"memory": False, "shared": True}
    clients = {}
    for name, shared in sides.items():
        app = create_app(Settings(**common, shared_rate_limits=shared), job_workers=0)
        clients[name] = TestClient(app, base_url="http://localhost").__enter__()
    headers = {"Authorization": f"Bearer {(home / 'admin.key').read_text().strip()}"}
    for client in clients.values():  # warm: imports, the key cache, the first connections
        _round(client, headers, 20)
    medians: dict[str, list[float]] = {name: [] for name in sides}
    for index in range(args.rounds):
        order = list(sides) if index % 2 == 0 else list(reversed(sides))
        for name in order:
            medians[name].append(statistics.median(_round(clients[name], headers, args.requests)))
    for client in clients.values():
        client.__exit__(None, None, None)
    result = {
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
        print(f"{name:>7}: median {value:.2f} ms per GET /v1/whoami ({result['database']})")
    print(f"shared / memory: {result['ratio_shared_over_memory']:.2f}x")
    out = Path(args.out)
    out = out if out.parent != Path(".") else RESULTS / out
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
