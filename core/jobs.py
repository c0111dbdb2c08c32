"""Job records: the one source of truth for a job's status, timing and outcome."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def band(self) -> int:
        """Where this priority's queue scores start: lower scores run first."""
        return _BANDS[self] * BAND_WIDTH


# Statuses with a job index of their own (worker/scripts.py `_INDEX`): the rare ends an
# operator looks for. A listing by any other status filters the creation index.
INDEXED_STATUSES = frozenset({JobStatus.FAILED, JobStatus.EXPIRED, JobStatus.CANCELED})

# Priorities in band order: the first runs first.
BANDS = (Priority.HIGH, Priority.NORMAL, Priority.LOW)
_BANDS = {priority: index for index, priority in enumerate(BANDS)}
# A queue score is band + arrival number: priority first, FIFO within it. Three bands of
# 10^14 stay below 2^53, so Redis's double scores hold every one exactly.
BAND_WIDTH = 10**14


class JobError(BaseModel):
    code: str
    message: str


class JobRecord(BaseModel):
    """A job as clients see it (the worker id and cache key stay internal)."""

    id: str
    status: JobStatus
    model: str
    model_version: str
    priority: Priority
    result: Any = None
    error: JobError | None = None
    cached: bool = False
    attempts: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    requeued_as: str | None = Field(None, description="the job an operator requeued this as")
    requeued_from: str | None = Field(None, description="the job this one requeues")

    @classmethod
    def from_hash(cls, job_id: str, fields: dict[str, str]) -> JobRecord:
        """Build the record of job `job_id` from the Redis hash the API and workers write."""
        return cls(
            id=job_id,
            status=JobStatus(fields["status"]),
            model=fields["model"],
            model_version=fields["model_version"],
            priority=Priority(fields["priority"]),
            **_outcome(fields),
            cached=fields.get("cached") == "1",
            attempts=int(fields.get("attempts", "0")),
            created_at=_time_or_none(fields.get("created_at")),
            requeued_as=fields.get("requeued_as"),
            requeued_from=fields.get("requeued_from"),
        )

    def updated(self, fields: dict[str, str]) -> JobRecord:
        """This record with the fields a worker published when it settled the job."""
        changes = _outcome(fields)
        if "status" in fields:
            changes["status"] = JobStatus(fields["status"])
        if "attempts" in fields:
            changes["attempts"] = int(fields["attempts"])
        # Copied, not validated again: every change is converted above.
        return self.model_copy(update=changes)


def _outcome(fields: dict[str, str]) -> dict[str, Any]:
    """The result or error and the run's times, as record fields."""
    error = _json_or_none(fields.get("error"))
    return {
        "result": _json_or_none(fields.get("result")),
        "error": None if error is None else JobError(**error),
        "started_at": _time_or_none(fields.get("started_at")),
        "finished_at": _time_or_none(fields.get("finished_at")),
    }


DEADLINE_EXCEEDED = JobError(
    code="deadline_exceeded",
    message="the job could not finish before its deadline, so it was never started",
)


def new_job_id() -> str:
    """A fresh, unguessable job id."""
    return uuid.uuid4().hex


def now_ts() -> str:
    """Current time as the epoch-seconds string stored in job hashes."""
    return f"{datetime.now(UTC).timestamp():.6f}"


def _json_or_none(raw: str | None) -> Any:
    return None if raw is None or raw == "" else json.loads(raw)


def _time_or_none(raw: str | None) -> datetime | None:
    return None if not raw else datetime.fromtimestamp(float(raw), UTC)
