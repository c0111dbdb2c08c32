"""2,000 clients blocked in wait=true on one API process share a handful of Redis connections."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from redis import Redis

from tests.support.stack import RedisServer, running_stack, wait_for

WAITERS = 2_000
POOL = 8


@pytest.mark.timeout(240)
def test_two_thousand_concurrent_waiters_complete(redis_server: RedisServer, workdir: Path) -> None:
    env = {"INFERQ_REDIS_MAX_CONNECTIONS": str(POOL), "INFERQ_QUEUE_MAX_DEPTH": str(2 * WAITERS)}
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as live:
        redis = redis_server.client()

        async def scenario() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=WAITERS + 10, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=live.url, timeout=180, limits=limits) as client:
                waiting = [
                    asyncio.create_task(
                        client.post(
                            "/jobs?wait=true&timeout=170", json={"model": "echo", "input": {"n": i}}
                        )
                    )
                    for i in range(WAITERS)
                ]
                await asyncio.to_thread(
                    wait_for,
                    lambda: _queued(redis, live.namespace) == WAITERS,
                    120,
                    "every job to be queued",
                )
                api_connections = [
                    c for c in redis.client_list() if c.get("name", "").startswith("inferq-api")
                ]
                assert len(api_connections) <= POOL + 1  # the pool plus the one subscription
                assert not any(task.done() for task in waiting)  # all still held open
                live.start_consumer(2)
                return await asyncio.gather(*waiting)

        responses = asyncio.run(scenario())
    assert [r.status_code for r in responses].count(200) == WAITERS
    results = [r.json()["result"] for r in responses]
    assert results == [{"n": i} for i in range(WAITERS)]


def _queued(redis: Redis, namespace: str) -> int:
    return sum(redis.zcard(key) for key in redis.scan_iter(match=f"{namespace}:queue:*"))
