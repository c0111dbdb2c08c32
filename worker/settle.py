"""What FINISH is told about a batch run, and what it answers."""

from __future__ import annotations

import json
from dataclasses import dataclass

from config import Settings
from core.jobs import now_ts
from core.keys import RedisKeys
from core.predict import ItemOutcome
from worker.batches import Batch
from worker.payload import Computation

# A completion message up to this size goes out from FINISH itself, saving a round trip
# per batch; a longer one (a batch's records) is published after it, because every byte
# of a string that enters Redis's Lua is hashed (counted: 5,600 more instructions per job
# of a 64-job `digits` batch, on the one Redis thread, against a round trip saved per 64).
INLINE_MESSAGE_MAX = 4096


@dataclass
class FinishCall:
    """FINISH's keys and arguments; the jobs (id, priority, status) its completion message
    tells; and that message when it is published after FINISH rather than by it."""

    keys: list[str]
    args: list[str | int | float]
    told: list[tuple[str, str, str]]
    message: str


def finish_call(
    keys: RedisKeys,
    settings: Settings,
    batch: Batch,
    outcomes: list[ItemOutcome],
    elapsed: float,
    stats: tuple[str, str],
) -> FinishCall:
    """FINISH's keys and arguments for a batch run to `outcomes`."""
    now = now_ts()
    told: list[dict[str, str]] = []  # the records of the completion message
    per_computation: list[str | int] = []
    retries = "0"
    for computation, outcome in zip(batch.computations, outcomes, strict=True):
        status = _status(outcome)
        if status == "retry":
            retries = "1"
        value = outcome.error.model_dump_json() if outcome.error else outcome.result_json
        if status != "retry":  # FINISH decides what a retry comes to
            told += _records(computation, status, now, value)
        jobs = computation.jobs()
        per_computation += [
            computation.key,
            computation.result_key or "-",
            status,
            value,
            *_started(jobs, with_created=status != "succeeded"),
        ]
    message = json.dumps(told, separators=(",", ":")) if told else ""
    args: list[str | int | float] = [
        keys.job_prefix,
        now,
        settings.result_cache_ttl_s,
        keys.done_channel,
        stats[0],
        f"{elapsed * 1000:.3f}",
        settings.retries + 1,
        settings.retry_delay_s,
        stats[1],
        retries,
        message if len(message) <= INLINE_MESSAGE_MAX else "",
        *per_computation,
    ]
    priority = {job_id: prio for job_id, prio, _ in batch.started}
    return FinishCall(
        [batch.lease, keys.leases, keys.stats, batch.queue.key, keys.delayed],
        args,
        [(r["id"], priority[r["id"]], r["status"]) for r in told],
        "" if args[10] else message,
    )


def _records(computation: Computation, status: str, now: str, value: str) -> list[dict[str, str]]:
    """The settled record of each job TAKE started of `computation`, as FINISH writes it."""
    outcome = "result" if status == "succeeded" else "error"
    s = computation.started
    return [
        {
            "id": s[i],
            "status": status,
            "finished_at": now,
            "started_at": s[0],
            "attempts": s[i + 1],
            "cache_key": computation.cache_key,
            outcome: value,
        }
        for i in range(1, len(s), 4)
    ]


def _started(jobs: list[tuple[str, str, str]], with_created: bool) -> list[str | int]:
    """n, then the id (and created_at) of each job: FINISH's view of what TAKE started."""
    values: list[str | int] = [
        v for job_id, _, created_at in jobs for v in (job_id, created_at)[: 1 + with_created]
    ]
    return [len(values), *values]


def settled_beyond(batch: Batch, flat: list[str]) -> list[tuple[str, str, str]]:
    """Job id, priority, status of each job FINISH listed as settled beyond its message."""
    priority = {job_id: prio for job_id, prio, _ in batch.started}
    return [
        (job_id, prio or priority[job_id], status)
        for job_id, prio, status in zip(flat[::3], flat[1::3], flat[2::3], strict=True)
    ]


def _status(outcome: ItemOutcome) -> str:
    if outcome.is_ok:
        return "succeeded"
    return "retry" if outcome.retryable else "failed"
