"""The service at a glance, for operators' tools (the `inferq status` command)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.admin import Controls
from api.auth import CallerDep
from api.schemas import ErrorBody
from api.services import ServicesDep
from core.jobs import JobStatus

router = APIRouter(tags=["status"])
ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody}, 429: {"model": ErrorBody}}


class QueueDepth(BaseModel):
    model: str = Field(description="name@version")
    priority: str
    queued: int


class Status(BaseModel):
    queues: list[QueueDepth]
    consumers_live: int
    paused: bool
    jobs_last_minute: dict[str, int] = Field(
        description="jobs created in the last 60 s, by their status now"
    )


@router.get("/status", response_model=Status, responses=ERRORS)
async def status(services: ServicesDep, caller: CallerDep) -> Status:
    """Queue depth per model and priority, live consumers, intake, and the last minute's jobs."""
    depth = await services.store.queue_depth()
    since = time.time() - 60
    async with services.redis.pipeline(transaction=False) as pipe:
        for state in JobStatus:
            pipe.zcount(services.keys.job_index(status=state.value), since, "+inf")
        counts = await pipe.execute()
    return Status(
        queues=[
            QueueDepth(model=model, priority=priority.value, queued=count)
            for (model, priority), count in depth.items()
            if count
        ],
        consumers_live=await services.store.live_consumers(),
        paused=await Controls(services.redis, services.keys).paused_by() is not None,
        jobs_last_minute={
            state.value: count for state, count in zip(JobStatus, counts, strict=True) if count
        },
    )
