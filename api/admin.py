"""Operator controls: pause and resume intake, purge queued jobs. Each is logged with who."""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from api.decode import text
from core.jobs import BAND_WIDTH, Priority, now_ts
from core.keys import RedisKeys
from worker import scripts

log = logging.getLogger(__name__)


class Controls:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis, self._keys = redis, keys
        self._purge = redis.register_script(scripts.PURGE)

    async def pause(self, operator: str) -> dict[str, str]:
        """Refuse new jobs (503 `paused`) until resumed; returns who paused and when."""
        at = now_ts()
        await self._redis.hset(self._keys.paused, mapping={"by": operator, "at": at})
        state = {"by": operator, "at": at}
        log.warning("operator %s paused intake", operator)
        return state

    async def resume(self, operator: str) -> None:
        await self._redis.delete(self._keys.paused)
        log.warning("operator %s resumed intake", operator)

    async def paused_by(self) -> dict[str, str] | None:
        state = await self._redis.hgetall(self._keys.paused)
        return {text(k): text(v) for k, v in state.items()} or None

    async def purge(
        self, operator: str, model: str | None, priority: Priority | None, dry_run: bool
    ) -> tuple[int, list[str]]:
        """Cancel the queued jobs of `model` at `priority` (None: any); a dry run only counts."""
        low, high = (priority.band, priority.band + BAND_WIDTH) if priority else (0, 3 * BAND_WIDTH)
        count, ids = await self._purge(
            keys=[self._keys.queues, self._keys.queue_tokens],
            args=[
                self._keys.job_prefix,
                now_ts(),
                self._keys.done_channel,
                low,
                high,
                "1" if dry_run else "0",
                f"{self._keys.queue_prefix}{model}:" if model else "",
                "",
                "0",
            ],
        )
        job_ids = [text(i) for i in ids]
        verb = "would purge" if dry_run else "purged"
        log.warning(
            "operator %s %s %d queued jobs (model=%s priority=%s): %s",
            operator,
            verb,
            count,
            model or "any",
            priority or "any",
            ",".join(job_ids[:20]),
        )
        return int(count), job_ids
