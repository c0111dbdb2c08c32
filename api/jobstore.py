"""Job records in Redis, seen from the API: submit, read, cancel. Every call is async."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from api.coalesce import CoalescedScript
from api.decode import text
from api.runtimes import BatchRunTimes
from config import Settings
from core import admission
from core.errors import (
    DeadlineUnmeetableError,
    IdempotencyKeyReusedError,
    IntakePausedError,
    JobNotCancelableError,
    JobNotFoundError,
    OverloadedError,
    QueueFullError,
)
from core.jobs import (
    BAND_WIDTH,
    BANDS,
    DEADLINE_EXCEEDED,
    JobRecord,
    JobStatus,
    Priority,
    now_ts,
)
from core.keys import RedisKeys
from worker import scripts

PAUSED_RETRY_S = 5


@dataclass(frozen=True)
class PreparedJob:
    """A validated request, ready to become a job."""

    id: str
    model: str
    model_version: str
    priority: Priority
    input_json: str
    cache_key: str | None
    deadline_s: float | None = None
    owner: str = ""
    idempotency: tuple[str, str] | None = None  # its Redis key, the request's fingerprint


Route = Literal["enqueued", "attached", "cached", "existing"]


@dataclass(frozen=True)
class Submitted:
    job: JobRecord
    route: Route
    result_json: str | None = None


class JobStore:
    def __init__(self, redis: Redis, keys: RedisKeys, settings: Settings) -> None:
        self._redis, self._keys = redis, keys
        self._settings = settings
        self._job_ttl = settings.job_ttl_s
        self._share_results = settings.result_cache_ttl_s > 0
        self._run_times = BatchRunTimes(redis, keys.stats)
        self._submit = CoalescedScript(
            redis,
            scripts.SUBMIT,
            shared_keys=[
                keys.heartbeats,
                keys.stats,
                keys.queue_tokens,
                keys.sequence,
                keys.queues,
                keys.leases,
                keys.overlapping_arrivals,
                keys.paused,
            ],
            shared_args=[
                self._job_ttl,
                settings.queue_max_depth,
                settings.heartbeat_ttl_s,
                BAND_WIDTH,
                keys.job_prefix,
                keys.result("") if self._share_results else "",
                keys.queue_prefix,
                len(BANDS),
                *(priority.value for priority in BANDS),
            ],
        )
        self._record_cached = redis.register_script(scripts.RECORD_CACHED)
        self._cancel = redis.register_script(scripts.CANCEL)
        self._expire_due = redis.register_script(scripts.EXPIRE_DUE)

    async def submit(self, job: PreparedJob) -> Submitted:
        """Answer from the shared cache, attach to an identical computation, or enqueue.

        Raises QueueFullError or DeadlineUnmeetableError when admission refuses it.
        """
        created = now_ts()
        deadline_at = f"{float(created) + job.deadline_s:.6f}" if job.deadline_s else ""
        # SUBMIT builds the job's keys itself (see worker/scripts.py): per-job arguments
        # cost Redis work, so the rare ones travel as one.
        options = ""
        if deadline_at or job.idempotency or job.owner:
            idem_key, fingerprint = job.idempotency or ("", "")
            options = "\n".join((deadline_at, idem_key, fingerprint, job.owner))
        queue = self._keys.queue(job.model, job.model_version)
        reply = await self._submit(
            keys=[],
            args=[
                job.id,
                job.model,
                job.model_version,
                job.priority.value,
                created,
                job.input_json,
                job.cache_key or "",
                options,
            ],
            quick=self._run_times.is_quick(queue),
        )
        if isinstance(reply, bytes):
            route_taken: Route = "attached" if reply == b"attached" else "enqueued"
            return Submitted(self._queued_record(job, created), route_taken)
        route = reply[0].decode()
        if route == "existing":
            existing, _ = await self.get(reply[1].decode(), job.owner)
            return Submitted(existing, "existing")
        if route == "rejected" and reply[1] == b"idempotency_mismatch":
            raise IdempotencyKeyReusedError("this Idempotency-Key was used for a different request")
        if route == "rejected":
            _, reason, ahead, consumers, work_ms, run_ms = reply
            raise self._refusal(
                job, reason.decode(), int(ahead), int(consumers), float(work_ms), float(run_ms)
            )
        if route == "cached":
            result_json = reply[1].decode()
            return Submitted(
                self._finished_record(job, created, result_json), "cached", result_json
            )
        return Submitted(self._queued_record(job, created), route)

    async def record_cached(self, job: PreparedJob, result_json: str) -> JobRecord:
        """Store a job answered from this process's LRU, so GET can read it."""
        created = now_ts()
        await self._record_cached(
            keys=[self._keys.job(job.id)],
            args=[
                *self._identity(job, created),
                result_json,
                job.cache_key or "",
                job.owner,
            ],
        )
        return self._finished_record(job, created, result_json)

    async def get(self, job_id: str, owner: str | None) -> tuple[JobRecord, dict[str, str]]:
        """The job and its raw hash; JobNotFoundError if unknown, expired or not `owner`'s.

        `owner` None reads any tenant's job (an operator).
        """
        fields = await self._redis.hgetall(self._keys.job(job_id))
        raw = {text(k): text(v) for k, v in fields.items()}
        if not raw or (owner is not None and raw.get("owner", "") != owner):
            raise JobNotFoundError(f"no job {job_id!r} (unknown or expired)")
        return JobRecord.from_hash(job_id, raw), raw

    async def cancel(self, job_id: str, owner: str | None) -> JobRecord:
        """Cancel a queued job; a running or finished one cannot be. None: any tenant's."""
        if owner is None:
            _, raw = await self.get(job_id, None)
            owner = raw.get("owner", "")
        reply: bytes = await self._cancel(
            keys=[self._keys.job(job_id), self._keys.queue_tokens],
            args=[now_ts(), self._keys.done_channel, job_id, owner, *self._prefixes],
        )
        outcome = reply.decode()
        if outcome == "missing":
            raise JobNotFoundError(f"no job {job_id!r} (unknown or expired)")
        if outcome != "ok":
            raise JobNotCancelableError(f"job {job_id!r} is {outcome}; only queued jobs cancel")
        job, _ = await self.get(job_id, owner)
        return job

    async def live_consumers(self) -> int:
        """Consumer worker processes that beat within the heartbeat TTL."""
        since = time.time() - self._settings.heartbeat_ttl_s
        count: int = await self._redis.zcount(self._keys.heartbeats, since, "+inf")
        return count

    async def expire_if_due(self, job_id: str) -> bool:
        """Expire a queued job whose deadline has passed; True if this call expired it."""
        expired: int = await self._expire_due(
            keys=[self._keys.job(job_id), self._keys.queue_tokens],
            args=[
                now_ts(),
                self._keys.done_channel,
                job_id,
                "",
                *self._prefixes,
                DEADLINE_EXCEEDED.model_dump_json(),
            ],
        )
        return bool(expired)

    @property
    def _prefixes(self) -> list[str]:
        """Key prefixes the cancel and expire scripts build keys from (see _DROP_IF_DEAD)."""
        keys = self._keys
        return [keys.computation_prefix, keys.queue_prefix, keys.job_prefix]

    def _refusal(
        self,
        job: PreparedJob,
        reason: str,
        ahead: int,
        consumers: int,
        work_ms: float,
        run_ms: float,
    ) -> OverloadedError:
        if reason == "paused":
            return IntakePausedError("an operator has paused intake of new jobs", PAUSED_RETRY_S)
        if reason == "queue_full":
            limit = self._settings.queue_max_depth
            retry = admission.queue_full_retry_after_s(ahead, limit, work_ms, consumers)
            return QueueFullError(
                f"{ahead} jobs are queued at priority {job.priority} or above (limit {limit})",
                retry,
            )
        deadline = job.deadline_s or 0
        wait, run = admission.estimated_wait_s(work_ms, consumers), run_ms / 1000
        retry = admission.deadline_retry_after_s(wait, run, deadline)
        estimate = (
            "no live consumer"
            if consumers == 0
            else f"estimated wait {wait:.2f}s plus run {run:.2f}s"
        )
        return DeadlineUnmeetableError(f"{estimate} exceeds the deadline of {deadline:g}s", retry)

    def _identity(self, job: PreparedJob, created: str) -> list[str | int]:
        """The leading arguments of the scripts that create a job record."""
        return [job.id, job.model, job.model_version, job.priority.value, created, self._job_ttl]

    @staticmethod
    def _queued_record(job: PreparedJob, created: str) -> JobRecord:
        fields = _base_fields(job, created) | {"status": JobStatus.QUEUED}
        return JobRecord.from_hash(job.id, fields)

    @staticmethod
    def _finished_record(job: PreparedJob, created: str, result_json: str) -> JobRecord:
        fields = _base_fields(job, created) | {
            "status": JobStatus.SUCCEEDED,
            "cached": "1",
            "result": result_json,
            "started_at": created,
            "finished_at": created,
        }
        return JobRecord.from_hash(job.id, fields)


def _base_fields(job: PreparedJob, created: str) -> dict[str, str]:
    return {
        "model": job.model,
        "model_version": job.model_version,
        "priority": job.priority.value,
        "created_at": created,
        "attempts": "0",
    }
