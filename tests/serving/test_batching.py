"""The micro-batcher's release rule, its records, and its tail-latency bound."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from aimass.errors import InvalidArgument, Unavailable
from aimass.serving.batching import CPU_MAX_TOKENS, BatchPolicy, MicroBatcher, bucket_of
from aimass.settings import Settings


class Fake:
    """A model that records its batches and takes ``cost`` seconds per batch."""

    def __init__(self, cost=0.0):
        self.cost = cost
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()
        self.running = self.peak = 0  # batches at once, now and at most

    def run(self, texts):
        with self.lock:
            self.batches.append(list(texts))
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(self.cost)
        with self.lock:
            self.running -= 1
        return [{"echo": t} for t in texts]

    @staticmethod
    def lengths(texts):
        return [len(t) for t in texts]  # one "token" per character


def batcher(fake, records=None, concurrency=1, **policy):
    return MicroBatcher(
        "m",
        fake.run,
        lengths=fake.lengths,
        policy=BatchPolicy(**policy),
        on_batch=(records.append if records is not None else None),
        concurrency=concurrency,
    )


def test_buckets_are_powers_of_two_from_8():
    assert [bucket_of(n) for n in (1, 8, 9, 16, 17, 100, 129)] == [8, 8, 16, 16, 32, 128, 256]
    with pytest.raises(InvalidArgument):
        BatchPolicy(max_batch_size=0)


def test_the_token_budget_follows_the_device_unless_set():
    on_cpu = BatchPolicy.from_settings(Settings(device="cpu"))
    assert (on_cpu.max_tokens, on_cpu.max_batch_size) == (CPU_MAX_TOKENS, 32)
    # Short inputs still batch 32 at a time on a CPU; long ones go a few at a time.
    assert (on_cpu.limit(8), on_cpu.limit(64), on_cpu.limit(512)) == (32, 4, 1)
    assert BatchPolicy.from_settings(Settings(device="cpu", batch_max_tokens=8192)).limit(64) == 32
    with pytest.raises(ValueError, match="batch_max_tokens"):
        Settings(batch_max_tokens=0)


def test_results_come_back_in_order_for_each_caller():
    fake = Fake()

    async def main():
        b = batcher(fake, max_wait=0.01)
        outs = await asyncio.gather(*(b.predict([f"t{i}", f"u{i}"]) for i in range(10)))
        await b.close()
        return outs

    for i, out in enumerate(asyncio.run(main())):
        assert out == [{"echo": f"t{i}"}, {"echo": f"u{i}"}]


def test_a_full_bucket_is_released_at_once_and_says_so():
    fake, records = Fake(), []

    async def main():
        b = batcher(fake, records, max_batch_size=4, max_wait=10.0)
        await asyncio.gather(*(b.predict(["x" * 5]) for _ in range(8)))
        await b.close()

    asyncio.run(main())
    assert [r.size for r in records] == [4, 4]
    assert {r.reason for r in records} == {"full"}


def test_the_token_budget_caps_batches_of_long_inputs():
    fake, records = Fake(), []

    async def main():
        b = batcher(fake, records, max_batch_size=32, max_tokens=256, max_wait=10.0)
        await asyncio.gather(*(b.predict(["y" * 100]) for _ in range(4)))  # bucket 128
        await b.close()

    asyncio.run(main())
    assert [(r.size, r.bucket, r.tokens, r.reason) for r in records] == [
        (2, 128, 256, "tokens"),
        (2, 128, 256, "tokens"),
    ]


def test_short_and_long_inputs_are_never_padded_together():
    fake, records = Fake(cost=0.01), []

    async def main():
        b = batcher(fake, records, max_wait=0.02)
        texts = ["s" * 5, "L" * 60] * 8
        await asyncio.gather(*(b.predict([t]) for t in texts))
        await b.close()

    asyncio.run(main())
    for batch in fake.batches:
        assert len({bucket_of(len(t)) for t in batch}) == 1, batch
    assert {r.reason for r in records} == {"wait"}


def test_a_lone_request_waits_at_most_max_wait():
    fake, records = Fake(), []

    async def main():
        b = batcher(fake, records, max_wait=0.05)
        await b.predict(["alone"])
        await b.close()

    asyncio.run(main())
    (record,) = records
    assert record.reason == "wait" and record.size == 1
    assert 0.05 <= record.wait < 0.5


def test_waiting_is_first_come_first_served_across_buckets():
    fake = Fake(cost=0.02)

    async def main():
        b = batcher(fake, max_batch_size=2, max_wait=0.0)
        first = asyncio.ensure_future(b.predict(["a" * 100]))
        await asyncio.sleep(0.005)
        rest = [asyncio.ensure_future(b.predict(["b"])) for _ in range(6)]
        await asyncio.gather(first, *rest)
        await b.close()

    asyncio.run(main())
    assert fake.batches[0] == ["a" * 100]


def test_a_failing_batch_fails_only_its_callers():
    calls = []

    def run(texts):
        calls.append(texts)
        if "boom" in texts:
            raise RuntimeError("boom")
        return [{"ok": t} for t in texts]

    async def main():
        b = MicroBatcher(
            "m",
            run,
            lengths=lambda ts: [len(t) for t in ts],
            policy=BatchPolicy(max_wait=0.0, max_batch_size=1),
        )
        bad = b.predict(["boom"])
        good = b.predict(["fine"])
        results = await asyncio.gather(bad, good, return_exceptions=True)
        await b.close()
        return results

    bad, good = asyncio.run(main())
    assert isinstance(bad, RuntimeError) and good == [{"ok": "fine"}]


def test_with_two_runners_two_batches_run_at_once_never_three():
    fake = Fake(cost=0.05)

    async def main():
        b = batcher(fake, concurrency=2, max_batch_size=2)
        outs = await asyncio.gather(*(b.predict([f"t{i}"]) for i in range(12)))
        await b.close()
        return outs

    outs = asyncio.run(main())
    assert outs == [[{"echo": f"t{i}"}] for i in range(12)]
    assert fake.peak == 2


def test_closing_lets_batches_in_flight_finish_and_fails_the_queued():
    fake = Fake(cost=0.2)

    async def main():
        b = batcher(fake, max_batch_size=1)
        first = asyncio.ensure_future(b.predict(["a"]))
        queued = asyncio.ensure_future(b.predict(["b"]))
        while not fake.batches:  # until "a" is running; "b" waits for the one runner
            await asyncio.sleep(0.01)
        await b.close()
        return await asyncio.gather(first, queued, return_exceptions=True)

    first, queued = asyncio.run(main())
    assert first == [{"echo": "a"}]
    assert isinstance(queued, Unavailable)
