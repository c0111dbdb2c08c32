"""Reads of the whole service for operators: queues, consumers and the recent past."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from redis.asyncio import Redis

from api.decode import text
from core.history import BUCKET_S, RETENTION_S, bucket_of, summarize
from core.jobs import BAND_WIDTH, Priority
from core.keys import RedisKeys

PATHS = ("queued", "direct")


@dataclass(frozen=True)
class QueueState:
    model: str  # name@version
    priority: Priority
    queued: int
    oldest_age_s: float | None  # of the computation that has waited longest at this priority


async def queue_states(redis: Redis, keys: RedisKeys) -> list[QueueState]:
    """Every model queue at every priority: range counts per band, and each band's oldest."""
    queues = sorted(text(q) for q in await redis.smembers(keys.queues))
    cells = [(queue, priority) for queue in queues for priority in Priority]
    async with redis.pipeline(transaction=False) as pipe:
        for queue, priority in cells:
            low, high = priority.band, f"({priority.band + BAND_WIDTH}"
            pipe.zcount(queue, low, high)
            # Lowest score in a band is its oldest arrival (scores are band + arrival number).
            pipe.zrangebyscore(queue, low, high, start=0, num=1)
        replies = await pipe.execute()
    counts, heads = replies[::2], replies[1::2]
    leaders = [text(h[0]) if h else None for h in heads]  # a queue member is its leader's id
    async with redis.pipeline(transaction=False) as pipe:
        for leader in leaders:
            if leader:
                pipe.hget(keys.job(leader), "created_at")
        created = iter(await pipe.execute())
    now, prefix = time.time(), len(keys.queue_prefix)
    states = []
    for (queue, priority), count, leader in zip(cells, counts, leaders, strict=True):
        stamp = next(created) if leader else None
        age = round(max(0.0, now - float(stamp)), 3) if stamp else None
        states.append(QueueState(queue[prefix:].replace(":", "@", 1), priority, count, age))
    return states


async def consumers(redis: Redis, keys: RedisKeys, ttl_s: float) -> list[dict[str, str]]:
    """Live consumer workers (heartbeat within `ttl_s`), as each last described itself."""
    live = await redis.zrangebyscore(keys.heartbeats, time.time() - ttl_s, "+inf")
    ids = [text(i) for i in live if isinstance(i, bytes | str)]
    async with redis.pipeline(transaction=False) as pipe:
        for worker_id in ids:
            pipe.hgetall(keys.consumer(worker_id))
        described = await pipe.execute()
    return [
        {"id": worker_id} | {text(k): text(v) for k, v in about.items()}
        for worker_id, about in zip(ids, described, strict=True)
    ]


async def history(redis: Redis, keys: RedisKeys, minutes: int) -> list[dict[str, object]]:
    """One point per bucket over the last `minutes`, oldest first (empty buckets included)."""
    last = bucket_of(time.time())
    span = min(minutes * 60, RETENTION_S)
    buckets = list(range(last - span + BUCKET_S, last + 1, BUCKET_S))
    async with redis.pipeline(transaction=False) as pipe:
        for bucket in buckets:
            pipe.hgetall(keys.history(bucket))
        tallies = await pipe.execute()
    return [
        summarize(bucket, Counter({text(k): int(v) for k, v in raw.items()}), PATHS)
        for bucket, raw in zip(buckets, tallies, strict=True)
    ]
