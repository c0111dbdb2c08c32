"""Job responses: 200 once the job is finished, 202 while it is queued or running."""

from __future__ import annotations

from fastapi import Response

from core.jobs import JobRecord


def job_response(job: JobRecord, retry_after_s: int, location: bool = False) -> Response:
    headers: dict[str, str] = {}
    if not job.status.is_terminal:
        headers["Retry-After"] = str(retry_after_s)
    if location:
        headers["Location"] = f"/jobs/{job.id}"
    return Response(
        job.model_dump_json(),
        status_code=200 if job.status.is_terminal else 202,
        media_type="application/json",
        headers=headers,
    )
