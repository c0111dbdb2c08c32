"""Operator controls over HTTP; off unless INFERQ_OPERATOR_KEYS names at least one key."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from api.admin import Controls
from api.auth import Caller, CallerDep
from api.requeue import Requeuer
from api.schemas import ErrorBody
from api.services import ServicesDep
from core.errors import ForbiddenError
from core.jobs import JobStatus, Priority

router = APIRouter(prefix="/admin", tags=["admin"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody},
    404: {"model": ErrorBody, "description": "unknown model"},
    403: {"model": ErrorBody, "description": "not an operator key, or operator controls off"},
    422: {"model": ErrorBody},
}

BODY_ERRORS = {400: {"model": ErrorBody, "description": "the body is not JSON"}, **ERRORS}


async def require_operator(caller: CallerDep, services: ServicesDep) -> Caller:
    if not services.settings.operator_keys:
        raise ForbiddenError("operator controls are off: set INFERQ_OPERATOR_KEYS")
    if not caller.is_operator:
        raise ForbiddenError("an operator key is required")
    return caller


Operator = Annotated[Caller, Depends(require_operator)]


class Intake(BaseModel):
    paused: bool
    by: str | None = Field(None, description="the operator (tenant id) who paused it")
    at: float | None = Field(None, description="when, epoch seconds")


class PurgeRequest(BaseModel):
    model: str | None = None
    priority: Priority | None = None
    dry_run: bool = Field(True, description="report what would go without canceling it")


class PurgeResult(BaseModel):
    dry_run: bool
    count: int
    job_ids: list[str] = Field(description="up to 1000 of them")


class RequeueRequest(BaseModel):
    status: Literal["failed", "expired"]
    model: str | None = None
    dry_run: bool = Field(True, description="report what would run again without requeuing it")
    limit: int = Field(1000, ge=1, le=10000, description="at most this many, newest first")


class RequeueResult(BaseModel):
    dry_run: bool
    count: int = Field(description="jobs requeued (a dry run: jobs that would be)")
    job_ids: list[str] = Field(description="the jobs requeued, or that would be")
    requeued_as: dict[str, str] = Field(description="old job id -> the new job that runs it")
    refused: dict[str, str] = Field(description="old job id -> why admission refused it")


def _controls(services: ServicesDep) -> Controls:
    return Controls(services.redis, services.keys)


@router.get("/intake", response_model=Intake, responses=ERRORS)
async def intake(services: ServicesDep, operator: Operator) -> Intake:
    """Whether new jobs are accepted."""
    state = await _controls(services).paused_by()
    return Intake(paused=state is not None, **_when(state))


@router.post("/pause", response_model=Intake, responses=ERRORS)
async def pause(services: ServicesDep, operator: Operator) -> Intake:
    """Refuse new jobs with 503 `paused` until resumed (queued and running jobs go on)."""
    state = await _controls(services).pause(operator.tenant or "open")
    return Intake(paused=True, **_when(state))


@router.post("/resume", response_model=Intake, responses=ERRORS)
async def resume(services: ServicesDep, operator: Operator) -> Intake:
    """Accept new jobs again."""
    await _controls(services).resume(operator.tenant or "open")
    return Intake(paused=False)


@router.post(
    "/purge",
    response_model=PurgeResult,
    responses=BODY_ERRORS,
)
async def purge(body: PurgeRequest, services: ServicesDep, operator: Operator) -> PurgeResult:
    """Cancel queued jobs by model and/or priority; `dry_run` (the default) only counts."""
    if body.model is not None:
        services.models.get(body.model)  # 404 for a model this API does not know
    count, ids = await _controls(services).purge(
        operator.tenant or "open", body.model, body.priority, body.dry_run
    )
    return PurgeResult(dry_run=body.dry_run, count=count, job_ids=ids)


@router.post(
    "/requeue",
    response_model=RequeueResult,
    responses=BODY_ERRORS,
)
async def requeue(body: RequeueRequest, services: ServicesDep, operator: Operator) -> RequeueResult:
    """Run failed or expired jobs again, each as a new job linked to the old one."""
    if body.model is not None:
        services.models.get(body.model)
    outcome = await Requeuer(services.redis, services.keys, services.store).requeue(
        operator.tenant or "open", JobStatus(body.status), body.model, body.dry_run, body.limit
    )
    done = outcome.candidates if body.dry_run else list(outcome.requeued)
    return RequeueResult(
        dry_run=body.dry_run,
        count=len(done),
        job_ids=done,
        requeued_as=outcome.requeued,
        refused=outcome.refused,
    )


def _when(state: dict[str, str] | None) -> dict[str, Any]:
    return {"by": state["by"], "at": float(state["at"])} if state else {}
