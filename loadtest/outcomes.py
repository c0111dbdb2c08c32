"""What a load-test request came to: one word, counted separately in the reports."""

from __future__ import annotations

from typing import Literal

Outcome = Literal["ok", "timeout", "refused", "expired", "error"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "timeout", "refused", "expired", "error")


def classify(status: int, job_status: str | None, error: BaseException | None) -> Outcome:
    """ok: a result in time; timeout: the client's (or the server's wait) ran out;
    refused: 503 at admission; expired: the job's deadline passed; error: anything else."""
    if error is not None or status == 0:
        return "timeout" if _is_timeout(error) else "error"
    if status == 503:
        return "refused"
    if status == 202:
        return "timeout"
    if status != 200:
        return "error"
    if job_status in (None, "succeeded"):
        return "ok"
    return "expired" if job_status == "expired" else "error"


def _is_timeout(error: BaseException | None) -> bool:
    return error is not None and (
        isinstance(error, TimeoutError)
        or "timed out" in str(error).lower()
        or type(error).__name__ in ("Timeout", "timeout", "ConnectionTimeout")
    )
