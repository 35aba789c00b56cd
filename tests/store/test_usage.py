"""Query-budget counters in the store: all or nothing, never past the budget, migrated."""

from __future__ import annotations

import threading
from datetime import date

from sqlalchemy import text

from aimass.store import Store
from aimass.store.schema import upgrade
from aimass.store.session import make_engine

DAY = date(2026, 12, 2)


def new_key(store: Store, key_id: str = "abcdef012345") -> str:
    store.keys.create(key_id, name="k", project="default", scopes=["predict"], secret_hash="0" * 64)
    return key_id


def test_spending_is_all_or_nothing_and_per_day(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'u.db'}")
    key = new_key(store)
    assert store.usage.spend(key, 8, budget=10, day=DAY).accepted
    refused = store.usage.spend(key, 3, budget=10, day=DAY)
    assert not refused.accepted and refused.used == 8 and refused.left == 2
    assert store.usage.spend(key, 2, budget=10, day=DAY).left == 0
    assert not store.usage.spend(key, 11, budget=10, day=date(2026, 12, 3)).accepted
    assert store.usage.spend(key, 1, budget=10, day=date(2026, 12, 3)).used == 1
    assert store.usage.used(key, day=DAY) == 0, "older days are dropped when a new one starts"


def test_concurrent_spenders_never_pass_the_budget(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    key = new_key(store)
    accepted = []

    def spend():
        for _ in range(10):
            if store.usage.spend(key, 1, budget=25, day=DAY).accepted:
                accepted.append(1)

    threads = [threading.Thread(target=spend) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) == 25 and store.usage.used(key, day=DAY) == 25


def test_upgrading_a_0002_database_keeps_its_keys(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0002")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO api_keys (id, name, project_id, scopes, secret_hash, created_at, "
                "revoked) VALUES ('abcdef012345', 'old', NULL, '[\"admin\"]', :h, "
                "'2026-01-01 00:00:00', 0)"
            ),
            {"h": "0" * 64},
        )
    upgrade(engine)
    engine.dispose()
    store = Store.open(f"sqlite:///{tmp_path / 'old.db'}")
    key = store.keys.get("abcdef012345")
    assert key.predict_budget is None and key.output_policy is None and key.limits == {}
    assert store.projects.get("default").limits == {}
    assert store.usage.spend(key.id, 1, budget=1, day=DAY).accepted
