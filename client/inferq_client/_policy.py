"""The rules both clients follow: when to retry, how long to wait, what a request looks like."""

from __future__ import annotations

import email.utils
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from inferq_client._errors import ApiError, JobFailedError

RETRIED_STATUSES = {429, 503}
TERMINAL = {"succeeded", "failed", "expired", "canceled"}
LONG_POLL_S = 30.0  # one wait=true slice; the server caps it too


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # tries in all, the first included
    base_s: float = 0.5
    cap_s: float = 30.0  # no single wait longer than this, whatever Retry-After says

    def delay_s(self, attempt: int, response: httpx.Response | None) -> float:
        """How long to wait before try `attempt + 1`: Retry-After if given, else backoff."""
        if response is not None:
            told = retry_after_s(response.headers.get("retry-after"))
            if told is not None:
                return min(self.cap_s, told)
        # Capped exponential backoff with full jitter, so retrying clients spread out.
        return random.uniform(0, min(self.cap_s, self.base_s * 2**attempt))


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Retry-After in seconds: a number of seconds, or an HTTP date (RFC 9110)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def is_retried(response: httpx.Response) -> bool:
    return response.status_code in RETRIED_STATUSES


def submit_request(
    input: dict[str, Any],
    model: str | None,
    priority: str | None,
    deadline_s: float | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The body of a POST /jobs and its headers, with a fresh Idempotency-Key.

    The same key goes with every retry of this one submit, so a retried submit never
    creates a second job.
    """
    body: dict[str, Any] = {"input": input}
    for name, value in (("model", model), ("priority", priority), ("deadline_s", deadline_s)):
        if value is not None:
            body[name] = value
    return body, {"Idempotency-Key": uuid.uuid4().hex}


def checked(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a success; ApiError for an error answer."""
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            raise ApiError(response.status_code, error["code"], error["message"])
        except (ValueError, KeyError, TypeError):
            raise ApiError(response.status_code, "http_error", response.text[:200]) from None
    body: dict[str, Any] = response.json()
    return body


def result_of(job: dict[str, Any]) -> Any:
    """The result of a finished job, or JobFailedError carrying the job."""
    if job["status"] != "succeeded":
        raise JobFailedError(job)
    return job["result"]


def headers_for(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}
