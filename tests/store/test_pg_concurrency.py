"""Several processes on one PostgreSQL store: each job claimed once, one audit chain,
consistent version numbers and aliases, one schema.

Each worker is a real process (``python -m tests.store.test_pg_concurrency TASK URL
ARGS``): it opens its own Store, says ``ready``, waits for ``go`` on stdin so all of
them start together, runs its task and prints its result as JSON.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from aimass.entities import JobStatus
from aimass.errors import Conflict, FailedPrecondition, NotFound
from aimass.store import AuditRecord, Store
from tests.store.conftest import register

pytestmark = [pytest.mark.services, pytest.mark.subprocess]

ROOT = Path(__file__).resolve().parents[2]
KEY = b"k" * 32
WORKERS = 4


def run_workers(url: str, tasks: list[tuple[str, dict]]) -> list:
    """Start one process per ``(task, args)``, release them together, return their results."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.store.test_pg_concurrency", task, url, json.dumps(args)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for task, args in tasks
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", line + (proc.stderr.read() if proc.stderr else "")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def pg_store(postgres_url):
    store = Store.open(postgres_url)
    yield store
    store.close()


def test_processes_opening_one_new_database_create_its_schema_once(postgres_url):
    results = run_workers(postgres_url, [("open", {})] * WORKERS)
    assert results == [["default"]] * WORKERS


def test_servers_starting_together_on_a_new_database_make_one_admin_key(
    pg_store, postgres_url, tmp_path
):
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    home = str(tmp_path / "home")
    results = run_workers(postgres_url, [("bootstrap", {"home": home, "url": postgres_url})] * 3)
    assert sorted(created for [created] in results) == [False, False, True]
    ws = Workspace(Settings(home=home, database_url=postgres_url))
    assert ws.store.keys.count_admins() == 1
    key = (tmp_path / "home" / "admin.key").read_text().strip()
    assert ws.keys.authenticate(key).is_global_admin
    ws.close()


def test_every_job_is_claimed_by_exactly_one_process(pg_store, postgres_url):
    ids = [pg_store.jobs.create("default", "train", {"n": i}).id for i in range(40)]
    results = run_workers(
        postgres_url, [("claim", {"ids": ids, "seed": i}) for i in range(WORKERS)]
    )
    claimed = [job_id for result in results for job_id in result]
    assert sorted(claimed) == sorted(ids)  # each once: no job lost, none claimed twice
    assert sum(1 for result in results if result) > 1, "one process claimed everything"
    jobs = [pg_store.jobs.get(job_id) for job_id in ids]
    assert {(j.status, j.attempt) for j in jobs} == {(JobStatus.RUNNING, 1)}


def test_a_running_job_is_finished_once_when_processes_race_to_finish_it(pg_store, postgres_url):
    ids = [pg_store.jobs.create("default", "train", {"n": i}).id for i in range(30)]
    for job_id in ids:
        pg_store.jobs.claim(job_id)
    results = run_workers(
        postgres_url, [("finish", {"ids": ids, "who": i}) for i in range(WORKERS)]
    )
    finished = [job_id for result in results for job_id in result]
    # As a worker finishing its job and stale-job sweeps on two servers would: one wins.
    assert sorted(finished) == sorted(ids)
    winners = {job_id: i for i, result in enumerate(results) for job_id in result}
    for job_id in ids:
        assert pg_store.jobs.get(job_id).error == f"finished by {winners[job_id]}"


def test_the_queue_hands_out_each_job_once(pg_store, postgres_url):
    ids = [pg_store.jobs.create("default", "train", {"n": i}).id for i in range(30)]
    results = run_workers(postgres_url, [("queue", {})] * WORKERS)
    claimed = [job_id for result in results for job_id in result]
    assert sorted(claimed) == sorted(ids)
    assert pg_store.jobs.next_queued() is None


def test_concurrent_appends_from_processes_keep_one_chain(pg_store, postgres_url):
    results = run_workers(
        postgres_url, [("audit", {"batches": 15, "who": i}) for i in range(WORKERS)]
    )
    seqs = [seq for result in results for seq in result]
    total = sum(len(range(1 + b % 3)) for b in range(15)) * WORKERS
    assert sorted(seqs) == list(range(1, total + 1))  # no gap, no seq given twice (no fork)
    verified = pg_store.audit.verify(key=KEY)
    assert verified.ok, verified.problems
    assert (verified.rows, verified.head_seq) == (total, total)


def test_processes_racing_for_a_shared_slot_never_hold_more_than_its_limit(pg_store, postgres_url):
    pg_store.rates.clear("slot-holders")
    tasks = [("hold-slots", {"tries": 60, "limit": 2, "who": f"server-{i}"}) for i in range(4)]
    results = run_workers(postgres_url, tasks)
    assert max(most for most, _ in results) <= 2  # never three holders at once
    assert sum(admitted for _, admitted in results) > 0
    assert pg_store.slots.count("predict:key:race") == 0  # every lease given back


def test_processes_registering_one_model_get_distinct_versions(pg_store, postgres_url):
    results = run_workers(postgres_url, [("register", {"count": 8})] * WORKERS)
    versions = sorted(v for result in results for v in result)
    assert versions == list(range(1, 8 * WORKERS + 1))
    assert pg_store.registry.get_model("default", "churn").latest_version == 8 * WORKERS


def test_concurrent_alias_moves_leave_one_alias_on_a_real_version(pg_store, postgres_url):
    for _ in range(5):
        register(pg_store)
    results = run_workers(
        postgres_url, [("move", {"seed": i, "moves": 15}) for i in range(WORKERS)]
    )
    model = pg_store.registry.get_model("default", "churn")
    assert set(model.aliases) == {"production", "staging"}
    # Each process's moves are the only writes: the alias ends where one of them left it.
    assert model.aliases["production"] in {result[-1] for result in results}
    held = [v for v in pg_store.registry.list_versions("default", "churn") if v.aliases]
    assert sorted(a for v in held for a in v.aliases) == ["production", "staging"]


def test_an_alias_never_lands_on_a_version_deleted_at_the_same_time(pg_store, postgres_url):
    count = 30
    for _ in range(count):
        register(pg_store)
    versions = list(range(1, count + 1))
    aliased, deleted = run_workers(
        postgres_url,
        [("alias-each", {"versions": versions}), ("delete-each", {"versions": versions})],
    )
    # Either the alias was set first (the delete is refused) or the version went first
    # (setting the alias finds no version): never both, never neither.
    assert sorted(aliased + deleted) == versions
    left = {v.version: v.aliases for v in pg_store.registry.list_versions("default", "churn")}
    assert set(left) == set(aliased)
    assert all(left[v] == (f"a{v}",) for v in aliased)


# -- the worker side ---------------------------------------------------------------


def _record(who: int, i: int) -> AuditRecord:
    return AuditRecord(actor=f"key:{who}", action="test.append", resource=f"/{i}", outcome="ok")


def _claim(store: Store, args: dict) -> list:
    ids = list(args["ids"])
    random.Random(args["seed"]).shuffle(ids)
    claimed = []
    for job_id in ids:
        try:
            claimed.append(store.jobs.claim(job_id).id)
        except FailedPrecondition:
            continue
    return claimed


def _queue(store: Store, args: dict) -> list:
    claimed = []
    while (job := store.jobs.next_queued()) is not None:
        try:
            claimed.append(store.jobs.claim(job.id).id)
        except FailedPrecondition:
            continue  # another process got there first: take the next one
    return claimed


def _finish(store: Store, args: dict) -> list:
    finished = []
    for job_id in args["ids"]:
        try:
            store.jobs.finish(
                job_id, JobStatus.FAILED, error=f"finished by {args['who']}", attempt=1
            )
        except Conflict:
            continue
        finished.append(job_id)
    return finished


def _bootstrap(store: Store, args: dict) -> list:
    ws = args["workspace"]
    try:
        return [ws.keys.ensure_admin()[1]]
    finally:
        ws.close()


def _open_workspace(args: dict) -> object:
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    ws = Workspace(Settings(home=args["home"], database_url=args["url"]))
    ws.store.keys.count_admins()  # connected and warm: only the bootstrap itself races
    return ws


def _audit(store: Store, args: dict) -> list:
    seqs = []
    for batch in range(args["batches"]):
        records = [_record(args["who"], i) for i in range(1 + batch % 3)]
        seqs += [event.seq for event in store.audit.append(records, key=KEY)]
    return seqs


def _register(store: Store, args: dict) -> list:
    return [register(store).version for _ in range(args["count"])]


def _move(store: Store, args: dict) -> list:
    rng = random.Random(args["seed"])
    moved = []
    for _ in range(args["moves"]):
        version = rng.randint(1, 5)
        store.registry.set_alias("default", "churn", "production", version)
        store.registry.set_alias("default", "churn", "staging", rng.randint(1, 5))
        moved.append(version)
    return moved


def _alias_each(store: Store, args: dict) -> list:
    done = []
    for version in args["versions"]:
        try:
            store.registry.set_alias("default", "churn", f"a{version}", version)
        except NotFound:
            continue
        done.append(version)
    return done


def _delete_each(store: Store, args: dict) -> list:
    done = []
    for version in args["versions"]:
        try:
            store.registry.delete_version("default", "churn", version)
        except Conflict:
            continue
        done.append(version)
    return done


def _hold_slots(store: Store, args: dict) -> list:
    """Take the shared slot again and again; while holding it, count the holders on a
    shared counter. ``[most holders seen at once, times admitted]``."""
    most, admitted = 0, 0
    for _ in range(args["tries"]):
        lease = store.slots.acquire("predict:key:race", args["limit"], holder=args["who"], ttl=60)
        if lease is None:
            continue
        admitted += 1
        most = max(most, store.rates.incr("slot-holders", 600))
        store.rates.decr("slot-holders")
        store.slots.release(lease)
    return [most, admitted]


TASKS = {
    "open": lambda store, args: [p.name for p in store.projects.list()],
    "claim": _claim,
    "queue": _queue,
    "finish": _finish,
    "bootstrap": _bootstrap,
    "audit": _audit,
    "register": _register,
    "move": _move,
    "alias-each": _alias_each,
    "delete-each": _delete_each,
    "hold-slots": _hold_slots,
}


def _worker(task: str, url: str, args: dict) -> None:
    # Everything but the task itself happens before "ready", so the tasks overlap; for
    # "open", opening the store (of an empty database) is the task.
    store = None if task == "open" else Store.open(url)
    if task == "bootstrap":
        args = {**args, "workspace": _open_workspace(args)}
    print("ready", flush=True)
    sys.stdin.readline()
    store = store or Store.open(url)
    try:
        print(json.dumps(TASKS[task](store, args)), flush=True)
    finally:
        store.close()


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
