from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from api import joblist, submission, waiting
from api.auth import Caller, CallerDep, Tenant
from api.options import PARAMETERS, Timeout, Wait, one_value_each, submit_options
from api.responses import job_response
from api.schemas import ErrorBody, JobPage, JobRequest
from api.services import Services, ServicesDep
from core.jobs import JobRecord, JobStatus, Priority
from worker.metrics import JOBS_FINISHED

log = logging.getLogger(__name__)
router = APIRouter(prefix="/jobs", tags=["jobs"])

BAD_BODY: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the body could not be read as JSON"}
}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "API keys are on and none valid was given"},
    404: {"model": ErrorBody},
    413: {"model": ErrorBody, "description": "request body over the size limit"},
    429: {"model": ErrorBody, "description": "over this key's rate limit; see Retry-After"},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody},
    503: {"model": ErrorBody, "description": "overloaded or Redis unavailable; see Retry-After"},
}
FINISHED: dict[int | str, dict[str, Any]] = {
    200: {"model": JobRecord, "description": "the job has finished"}
}


def _wait_seconds(services: Services, wait: bool, timeout: float | None) -> float | None:
    if not wait:
        return None
    settings = services.settings
    return min(timeout or settings.wait_timeout_default_s, settings.wait_timeout_max_s)


@router.post(
    "",
    status_code=202,
    response_model=JobRecord,
    responses={**FINISHED, **BAD_BODY, **ERRORS},
    openapi_extra={"parameters": PARAMETERS},  # read by submit_options: see api/options.py
)
async def submit_job(
    body: JobRequest, request: Request, services: ServicesDep, tenant: Tenant
) -> Response:
    """Submit a prediction: 202 with Location while it runs, 200 once it has finished."""
    options = submit_options(request)
    prepared = submission.prepare(services, body, tenant, options.idempotency_key)
    if body.model and "@" in body.model:  # pinned: fail now, not after a wait in the queue
        await submission.ensure_loaded(services, f"{prepared.model}@{prepared.model_version}")
    wait_s = _wait_seconds(services, options.wait, options.timeout)
    if wait_s is None:
        job = await submission.create_job(services, prepared)
    else:
        job = await waiting.submit_and_wait(services, prepared, wait_s, request)
    return job_response(job, services.settings.poll_retry_after_s, location=True)


@router.get("", response_model=JobPage, responses=ERRORS, dependencies=[Depends(one_value_each)])
async def list_jobs(
    services: ServicesDep,
    caller: CallerDep,
    status: JobStatus | None = None,
    model: str | None = None,
    priority: Priority | None = None,
    since: Annotated[
        float | None, Query(ge=0, description="created at or after (epoch seconds)")
    ] = None,
    until: Annotated[
        float | None, Query(ge=0, description="created before (epoch seconds)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]+(\.[0-9]+)?$")] = None,
) -> JobPage:
    """Jobs newest first (a tenant's own; an operator's key sees every tenant's), paginated."""
    where = joblist.JobFilter(
        owner=_owner(caller),
        status=status,
        model=model,
        priority=priority,
        since=since,
        until=until,
    )
    jobs, next_cursor = await joblist.list_jobs(
        services.redis, services.keys, services.settings.job_ttl_s, where, limit, cursor
    )
    return JobPage(jobs=jobs, next_cursor=next_cursor)


@router.get(
    "/{job_id}",
    status_code=202,
    response_model=JobRecord,
    responses={**FINISHED, **ERRORS},
    dependencies=[Depends(one_value_each)],
)
async def get_job(
    job_id: str,
    services: ServicesDep,
    caller: CallerDep,
    wait: Wait = False,
    timeout: Timeout = None,
) -> Response:
    """Read a job (never consumes its result); with wait=true, long-poll until it finishes."""
    wait_s = _wait_seconds(services, wait, timeout)
    owner = _owner(caller)
    if wait_s is None:
        job, _ = await submission.read_job(services, job_id, owner)
    else:
        job = await waiting.wait_for_job(services, job_id, owner, wait_s)
    return job_response(job, services.settings.poll_retry_after_s)


@router.delete("/{job_id}", response_model=JobRecord, responses=ERRORS)
async def cancel_job(job_id: str, services: ServicesDep, caller: CallerDep) -> Response:
    """Cancel a queued job so it never runs; 409 once it is running or finished."""
    job = await services.store.cancel(job_id, _owner(caller))
    JOBS_FINISHED.labels(job.model, job.priority.value, "canceled").inc()
    if caller.is_operator:
        log.warning("operator %s canceled job %s", caller.tenant or "open", job_id)
    return job_response(job, services.settings.poll_retry_after_s)


def _owner(caller: Caller) -> str | None:
    """Whose jobs the caller may see: its own, or (an operator) every tenant's."""
    return None if caller.is_operator else caller.tenant
