"""What the client raises: the API's error (code, message, status) or a job that failed."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """The API answered with an error body `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class JobFailedError(Exception):
    """A job ended without a result (`failed`, `expired` or `canceled`); `job` is its record."""

    def __init__(self, job: dict[str, Any]) -> None:
        error = job.get("error") or {}
        super().__init__(f"job {job['id']} {job['status']}: {error.get('message', '')}".strip())
        self.job = job
