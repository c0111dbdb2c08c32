"""This process's tally of the recent past (core/history.py), and its flush to Redis."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

from core.history import BUCKET_S, RETENTION_S, Tally
from core.keys import RedisKeys

log = logging.getLogger(__name__)
# One per process, like the prometheus metrics beside it; it holds counts only.
TALLY = Tally()


def flush(redis: Redis, keys: RedisKeys) -> None:
    """Add this process's tally to Redis (consumers: from the heartbeat thread)."""
    taken = TALLY.drain()
    if not taken:
        return
    pipe = redis.pipeline(transaction=False)
    _queue_adds(pipe, keys, taken)
    try:
        pipe.execute()
    except RedisError as exc:
        TALLY.restore(taken)
        log.warning("history flush failed: %s", exc)


async def flush_async(redis: AsyncRedis, keys: RedisKeys) -> None:
    """Add this process's tally to Redis (the API: from a task of its lifespan)."""
    taken = TALLY.drain()
    if not taken:
        return
    try:
        async with redis.pipeline(transaction=False) as pipe:
            _queue_adds(pipe, keys, taken)
            await pipe.execute()
    except RedisError as exc:
        TALLY.restore(taken)
        log.warning("history flush failed: %s", exc)


def _queue_adds(pipe: Any, keys: RedisKeys, taken: Mapping[int, Counter[str]]) -> None:
    for bucket, fields in taken.items():
        key = keys.history(bucket)
        for name, n in fields.items():
            pipe.hincrby(key, name, n)
        pipe.expireat(key, bucket + BUCKET_S + RETENTION_S)
