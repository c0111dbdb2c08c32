"""BatchRunTimes against a real redis-server: which queues count as quick."""

from __future__ import annotations

import asyncio

import redis.asyncio

from api.runtimes import QUICK_BATCH_MS, BatchRunTimes
from tests.support.stack import RedisServer, unique


def test_a_queue_is_quick_only_once_its_batches_measured_under_the_line(
    redis_server: RedisServer,
) -> None:
    stats = unique("stats")

    async def go() -> tuple[list[bool], list[bool]]:
        client = redis.asyncio.Redis.from_url(redis_server.url)
        await client.hset(
            stats,
            mapping={
                "run:q:echo": str(QUICK_BATCH_MS / 4),
                "cost:q:echo": "0.01",
                "run:q:digits": str(QUICK_BATCH_MS * 12),
            },
        )
        times = BatchRunTimes(client, stats)
        queues = ("q:echo", "q:digits", "q:never-ran")
        # The first look never waits for Redis: nothing is known yet, so nothing is quick.
        first = [times.is_quick(q) for q in queues]
        for _ in range(100):  # the read it started, in the background
            await asyncio.sleep(0.01)
            if times.is_quick("q:echo"):
                break
        found = [times.is_quick(q) for q in queues]
        await client.aclose()
        return first, found

    first, found = asyncio.run(go())
    assert first == [False, False, False]
    assert found == [True, False, False]
