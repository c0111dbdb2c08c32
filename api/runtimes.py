"""Which models' batches are quick, from the consumers' measured time per batch."""

from __future__ import annotations

import asyncio
import contextlib
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.decode import text

FRESH_S = 1.0
# A batch under this is quick: the API parses about ten requests in that time, so a
# consumer that starts on the first part of a burst answers it before the rest is ready.
QUICK_BATCH_MS = 1.0


class BatchRunTimes:
    """The recent model time per batch of each queue (the `run:` fields of the stats hash).

    `is_quick` never waits: a submit must not yield to other requests before it joins its
    turn's call (that would reorder the turn's arrivals). When what it knows is over
    FRESH_S old it starts one read in the background and answers from what it knows.
    """

    def __init__(self, redis: Redis, stats_key: str) -> None:
        self._redis, self._key = redis, stats_key
        self._run_ms: dict[str, float] = {}
        self._read_at = float("-inf")
        self._reading: asyncio.Task[None] | None = None

    def is_quick(self, queue: str) -> bool:
        """True when `queue`'s batches have been measured, and take under QUICK_BATCH_MS."""
        if time.monotonic() - self._read_at > FRESH_S and self._reading is None:
            self._read_at = time.monotonic()  # one read a second, even if this one fails
            self._reading = asyncio.ensure_future(self._read())
        run_ms = self._run_ms.get(queue)
        return run_ms is not None and run_ms < QUICK_BATCH_MS

    async def _read(self) -> None:
        try:
            with contextlib.suppress(RedisError):  # Redis down: keep what was known
                fields = await self._redis.hgetall(self._key)
                self._run_ms = {
                    text(name)[4:]: float(value)
                    for name, value in fields.items()
                    if text(name).startswith("run:")
                }
        finally:
            self._reading = None
