"""Admission arithmetic: whether a deadline can be met, and when a refusal is worth retrying."""

from __future__ import annotations

import math

NO_CONSUMER_RETRY_S = 5


def estimated_wait_s(work_ahead_ms: float, consumers: int) -> float:
    """Queue wait of a new job: the measured cost of the work ahead, spread over consumers."""
    if consumers == 0:
        return math.inf
    return work_ahead_ms / consumers / 1000


def queue_full_retry_after_s(
    ahead: int, max_depth: int, work_ahead_ms: float, consumers: int
) -> int:
    """Seconds until the backlog ahead has drained below the bound."""
    share = (ahead - max_depth + 1) / ahead if ahead else 1.0
    return _whole_seconds(estimated_wait_s(work_ahead_ms * share, consumers))


def deadline_retry_after_s(wait_s: float, run_s: float, deadline_s: float) -> int:
    """Seconds until a job with this deadline could be admitted: wait plus run over budget."""
    return _whole_seconds(wait_s + run_s - deadline_s)


def _whole_seconds(seconds: float) -> int:
    if math.isinf(seconds):
        return NO_CONSUMER_RETRY_S
    return max(1, math.ceil(seconds))
