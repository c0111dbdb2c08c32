"""Listing jobs newest first from the job index (worker/scripts.py `_INDEX`), never a scan.

The listing walks one sorted set (a rare status's, an owner's, or every job's), newest
first, and reads the records it meets in pipelined batches, filtering on what that set
does not already select. A cursor is the creation time of the last job returned; a page
that read `MOST_READ` records without filling up ends early, with a cursor to go on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from api.decode import text
from core.jobs import INDEXED_STATUSES, JobRecord, JobStatus, Priority
from core.keys import RedisKeys

CHUNK = 200
MOST_READ = 5_000  # records read per request at most; past it, a cursor to go on
FIELDS = (
    "status",  # first: every record has it, so None means there is no record
    "model",
    "model_version",
    "priority",
    "result",
    "error",
    "cached",
    "attempts",
    "created_at",
    "started_at",
    "finished_at",
    "owner",
)


@dataclass(frozen=True)
class JobFilter:
    owner: str | None  # None: every tenant's (an operator)
    status: JobStatus | None = None
    model: str | None = None
    priority: Priority | None = None
    since: float | None = None  # creation time, epoch seconds, inclusive
    until: float | None = None  # exclusive

    def admits(self, fields: dict[str, str]) -> bool:
        return (
            (self.owner is None or fields.get("owner", "") == self.owner)
            and (self.status is None or fields.get("status") == self.status)
            and (self.model is None or fields.get("model") == self.model)
            and (self.priority is None or fields.get("priority") == self.priority)
        )


async def list_jobs(
    redis: Redis, keys: RedisKeys, job_ttl_s: int, where: JobFilter, limit: int, cursor: str | None
) -> tuple[list[JobRecord], str | None]:
    """Up to `limit` jobs matching `where`, newest first, and the cursor for the next page."""
    status = where.status if where.status in INDEXED_STATUSES else None
    index = keys.job_index(owner=where.owner, status=status)
    # Entries older than any record are gone with their records: drop them first.
    await redis.zremrangebyscore(index, "-inf", time.time() - job_ttl_s)
    upper = f"({cursor}" if cursor else (f"({where.until}" if where.until is not None else "+inf")
    lower = where.since if where.since is not None else "-inf"
    found: list[JobRecord] = []
    read = 0
    while read < MOST_READ:
        entries = cast(
            list[tuple[bytes, float]],
            await redis.zrevrangebyscore(index, upper, lower, start=0, num=CHUNK, withscores=True),
        )
        if not entries:
            return found, None
        records = await _read(redis, keys, [text(job_id) for job_id, _ in entries])
        read += len(entries)
        for (job_id, score), fields in zip(entries, records, strict=True):
            upper = f"({score!r}"
            if fields is None:  # expired with its TTL: the index forgets it too
                await redis.zrem(index, job_id)
            elif where.admits(fields):
                found.append(JobRecord.from_hash(text(job_id), fields))
                if len(found) == limit:
                    return found, repr(score)
    return found, upper[1:]


async def _read(redis: Redis, keys: RedisKeys, job_ids: list[str]) -> list[dict[str, str] | None]:
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), FIELDS)
        rows = await pipe.execute()
    return [
        None
        if row[0] is None
        else {
            name: text(value) for name, value in zip(FIELDS, row, strict=True) if value is not None
        }
        for row in rows
    ]
