"""Operator requeue: a job that ended `failed` or `expired` runs again as a new, linked job.

A new job rather than a new attempt of the old one: the old record stays what its client
was told (a `failed` job never turns `succeeded` under a poller's feet), and the two link
both ways (`requeued_as` on the old record, `requeued_from` on the new one). The new job
has the old one's model version, priority, owner and input, and no deadline: its client
was already told the old job expired, and the operator is asking for it to run anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from redis.asyncio import Redis

from api.decode import text
from api.jobstore import JobStore, PreparedJob
from core.errors import OverloadedError
from core.jobs import JobStatus, Priority, new_job_id
from core.keys import RedisKeys

log = logging.getLogger(__name__)
_FIELDS = ("model", "model_version", "priority", "owner", "input", "cache_key", "requeued_as")


@dataclass
class RequeueOutcome:
    candidates: list[str] = field(default_factory=list)
    requeued: dict[str, str] = field(default_factory=dict)  # old id -> new id
    refused: dict[str, str] = field(default_factory=dict)  # old id -> reason


class Requeuer:
    def __init__(self, redis: Redis, keys: RedisKeys, store: JobStore) -> None:
        self._redis, self._keys, self._store = redis, keys, store

    async def requeue(
        self, operator: str, status: JobStatus, model: str | None, dry_run: bool, limit: int
    ) -> RequeueOutcome:
        """Requeue up to `limit` of the newest jobs in `status` (of `model`), once each."""
        outcome = RequeueOutcome()
        for old_id, raw in await self._candidates(status, model, limit):
            outcome.candidates.append(old_id)
            if not dry_run:
                await self._requeue_one(old_id, raw, outcome)
        log.warning(
            "operator %s %s %d %s jobs (model=%s): %s",
            operator,
            "would requeue" if dry_run else "requeued",
            len(outcome.candidates if dry_run else outcome.requeued),
            status.value,
            model or "any",
            ",".join(f"{a}->{b}" for a, b in list(outcome.requeued.items())[:20])
            or ",".join(outcome.candidates[:20]),
        )
        return outcome

    async def _candidates(
        self, status: JobStatus, model: str | None, limit: int
    ) -> list[tuple[str, dict[str, str]]]:
        # Scan a little past `limit`: already-requeued jobs stay in the status index.
        index = self._keys.job_index(status=status.value)
        newest = await self._redis.zrevrange(index, 0, 4 * limit - 1)
        ids = [text(i) for i in newest if isinstance(i, bytes | str)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(self._keys.job(job_id), _FIELDS)
            rows = await pipe.execute()
        found = []
        for job_id, values in zip(ids, rows, strict=True):
            raw = {k: text(v) for k, v in zip(_FIELDS, values, strict=True) if v is not None}
            wanted = model is None or raw.get("model") == model
            if wanted and raw.get("input") and not raw.get("requeued_as"):
                found.append((job_id, raw))
        return found[:limit]

    async def _requeue_one(self, old_id: str, raw: dict[str, str], outcome: RequeueOutcome) -> None:
        new_id = new_job_id()
        old_key = self._keys.job(old_id)
        # Claim first, so two operators requeuing at once make one new job, not two.
        if not await self._redis.hsetnx(old_key, "requeued_as", new_id):
            return
        job = PreparedJob(
            new_id,
            raw["model"],
            raw["model_version"],
            Priority(raw["priority"]),
            raw["input"],
            raw.get("cache_key") or None,
            owner=raw.get("owner", ""),
        )
        try:
            await self._store.submit(job)
        except OverloadedError as exc:
            await self._redis.hdel(old_key, "requeued_as")
            outcome.refused[old_id] = exc.code
            return
        await self._redis.hset(self._keys.job(new_id), "requeued_from", old_id)
        outcome.requeued[old_id] = new_id
