"""Holding a request open until its job finishes, its deadline passes, or the client leaves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

from starlette.requests import Request

from api.disconnect import client_left
from api.jobstore import PreparedJob
from api.notifications import Watch
from api.services import Services
from api.submission import create_job, deadline_at, read_job, remember
from core.errors import JobNotCancelableError
from core.jobs import JobRecord, JobStatus
from worker.metrics import JOBS_FINISHED

log = logging.getLogger(__name__)
# A waiter starts watching for its client leaving only once its job has taken this long:
# most answers come sooner, and a watch costs each request a task (about 2% of the API's
# instructions per queued echo job under load). A client that leaves earlier is noticed
# at this point, which is still before a job that waits in a queue has started.
WATCH_CLIENT_AFTER_S = 0.1


async def submit_and_wait(
    services: Services, job: PreparedJob, wait_s: float, request: Request
) -> JobRecord:
    """Submit, then wait up to `wait_s` for the job to finish."""
    # Watch before submitting: the completion cannot slip between submit and wait.
    with services.hub.watch(job.id) as watch:
        record = await create_job(services, job)
        if record.status.is_terminal:
            return record
        if record.id != job.id:  # an earlier request with this Idempotency-Key made it
            return await wait_for_job(services, record.id, job.owner, wait_s)
        watch.known = record
        expires = time.time() + job.deadline_s if job.deadline_s else None
        # Its client never saw the job id: if it leaves, nobody can ever read the result.
        leave = request if services.settings.cancel_on_disconnect else None
        return await _wait(services, job.id, job.owner, watch, wait_s, expires, leave)


async def wait_for_job(
    services: Services, job_id: str, owner: str | None, wait_s: float
) -> JobRecord:
    """The job once it finishes, or as it stands after `wait_s` seconds (a long-poll).

    A long-poll's client knows the job id, so its leaving cancels nothing.
    """
    with services.hub.watch(job_id) as watch:
        record, raw = await read_job(services, job_id, owner)
        if record.status.is_terminal:
            return record
        watch.known = record
        return await _wait(services, job_id, owner, watch, wait_s, deadline_at(raw), None)


async def _wait(
    services: Services,
    job_id: str,
    owner: str | None,
    watch: Watch,
    wait_s: float,
    expires: float | None,
    cancel_on_leave: Request | None,
) -> JobRecord:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + wait_s
    watch_from = math.inf if cancel_on_leave is None else loop.time() + WATCH_CLIENT_AFTER_S
    watcher: asyncio.Future[None] | None = None
    try:
        while True:
            limit = (
                give_up if expires is None else min(give_up, loop.time() + expires - time.time())
            )
            woken = await _woken_by(watch, min(limit, watch_from))
            if not woken and cancel_on_leave is not None and watch_from < limit:
                watcher = asyncio.ensure_future(_note_disconnect(cancel_on_leave, watch))
                watch_from = math.inf
                continue
            if watch.disconnected:
                await _cancel_for_departed_client(services, job_id, owner)
            record = await _current(services, job_id, owner, watch)
            if record.status.is_terminal or watch.disconnected or loop.time() >= give_up:
                return record
            if record.status == JobStatus.RUNNING:
                expires = None  # a started job is past its deadline's reach
    finally:
        if watcher is not None:
            watcher.cancel()


async def _woken_by(watch: Watch, when: float) -> bool:
    """Wait for the watch to be set until loop time `when`; whether it was."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(when):
            await watch.event.wait()
    return watch.event.is_set()


async def _current(services: Services, job_id: str, owner: str | None, watch: Watch) -> JobRecord:
    """The record the completion carried, else a fresh read (which expires it if due)."""
    fields = watch.take_record()
    if fields is None or watch.known is None:
        record, _ = await read_job(services, job_id, owner)
    else:
        if fields.get("status") == "succeeded" and fields.get("cache_key"):
            remember(services, fields["cache_key"], fields.get("result"))
        record = watch.known.updated(fields)
    watch.known = record
    return record


async def _note_disconnect(request: Request, watch: Watch) -> None:
    await client_left(request)
    watch.disconnected = True
    watch.event.set()


async def _cancel_for_departed_client(services: Services, job_id: str, owner: str | None) -> None:
    with contextlib.suppress(JobNotCancelableError):
        record = await services.store.cancel(job_id, owner)
        JOBS_FINISHED.labels(record.model, record.priority.value, "canceled").inc()
        log.info("job %s canceled: its waiting client disconnected", job_id)
