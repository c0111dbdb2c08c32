"""The service at a glance, for operators' tools (`inferq status`, the dashboard)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api import overview
from api.admin import Controls
from api.auth import CallerDep
from api.options import one_value_each
from api.schemas import ErrorBody
from api.services import ServicesDep
from core.history import BUCKET_S
from core.jobs import INDEXED_STATUSES

router = APIRouter(tags=["status"])
ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody}, 429: {"model": ErrorBody}}


class QueueDepth(BaseModel):
    model: str = Field(description="name@version")
    priority: str
    queued: int
    oldest_age_s: float | None = Field(description="how long the oldest queued job has waited")


class Consumer(BaseModel):
    id: str
    host: str | None = None
    pid: str | None = None
    models: str | None = None
    started_at: float | None = None
    last_heartbeat: float | None = Field(None, description="epoch seconds")
    jobs_done: int = 0
    current_model: str | None = Field(None, description="the model of the batch it runs now")
    current_batch: int = 0
    current_since: float | None = None
    current_jobs: list[str] = Field([], description="the running batch's job ids (up to 5)")


class Status(BaseModel):
    queues: list[QueueDepth]
    oldest_queued_age_s: float | None
    consumers_live: int
    consumers: list[Consumer]
    paused: bool
    jobs_last_minute: dict[str, int] = Field(
        description="jobs created in the last 60 s (`created`), and how many of them have "
        "ended failed, expired or canceled"
    )


class HistoryPoint(BaseModel):
    t: int = Field(description="start of the bucket, epoch seconds")
    queued: dict[str, float | int | None]
    direct: dict[str, float | int | None]
    wait_p50_ms: float | None
    wait_p99_ms: float | None
    refused: dict[str, int]


class History(BaseModel):
    bucket_s: int
    points: list[HistoryPoint]


@router.get("/status", response_model=Status, responses=ERRORS)
async def status(services: ServicesDep, caller: CallerDep) -> Status:
    """Queues (depth, oldest age), live consumers, intake, and the last minute's jobs."""
    redis, keys = services.redis, services.keys
    queues = await overview.queue_states(redis, keys)
    since = time.time() - 60
    # The job index has a set for every job and one per rare end (core.jobs.INDEXED_STATUSES).
    counted = {"created": keys.job_index()} | {
        state.value: keys.job_index(status=state.value) for state in sorted(INDEXED_STATUSES)
    }
    async with redis.pipeline(transaction=False) as pipe:
        for index in counted.values():
            pipe.zcount(index, since, "+inf")
        counts = await pipe.execute()
    live = await overview.consumers(redis, keys, services.settings.heartbeat_ttl_s)
    ages = [q.oldest_age_s for q in queues if q.oldest_age_s is not None]
    return Status(
        queues=[
            QueueDepth(
                model=q.model,
                priority=q.priority.value,
                queued=q.queued,
                oldest_age_s=q.oldest_age_s,
            )
            for q in queues
            if q.queued
        ],
        oldest_queued_age_s=max(ages, default=None),
        consumers_live=len(live),
        consumers=[_consumer(about) for about in live],
        paused=await Controls(redis, keys).paused_by() is not None,
        jobs_last_minute={
            name: count for name, count in zip(counted, counts, strict=True) if count
        },
    )


@router.get(
    "/status/history",
    response_model=History,
    responses=ERRORS,
    dependencies=[Depends(one_value_each)],
)
async def status_history(
    services: ServicesDep,
    caller: CallerDep,
    minutes: Annotated[int, Query(ge=1, le=60)] = 15,
) -> History:
    """Throughput, p50/p99 latency, queue wait, batch sizes and refusals, per time bucket."""
    points = await overview.history(services.redis, services.keys, minutes)
    return History(bucket_s=BUCKET_S, points=[HistoryPoint.model_validate(p) for p in points])


def _consumer(about: dict[str, str]) -> Consumer:
    def number(name: str) -> float | None:
        return float(about[name]) if about.get(name) else None

    return Consumer(
        id=about["id"],
        host=about.get("host"),
        pid=about.get("pid"),
        models=about.get("models"),
        started_at=number("started_at"),
        last_heartbeat=number("beat_at"),
        jobs_done=int(about.get("jobs_done", "0")),
        current_model=about.get("current_model") or None,
        current_batch=int(about.get("current_batch", "0")),
        current_since=number("current_since"),
        current_jobs=[i for i in about.get("current_jobs", "").split(",") if i],
    )
