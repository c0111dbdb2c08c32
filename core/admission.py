"""Admission arithmetic: how long until a refused request is worth retrying."""

from __future__ import annotations

import math

NO_CONSUMER_RETRY_S = 5


def estimated_wait_s(ahead: int, consumers: int, service_ms: float) -> float:
    """Queue wait of a new job: the work ahead of it spread over the live consumers."""
    if consumers == 0:
        return math.inf
    return ahead * service_ms / consumers / 1000


def queue_full_retry_after_s(ahead: int, max_depth: int, consumers: int, service_ms: float) -> int:
    """Seconds until the backlog ahead has drained below the bound."""
    excess = ahead - max_depth + 1
    return _whole_seconds(estimated_wait_s(excess, consumers, service_ms))


def deadline_retry_after_s(ahead: int, consumers: int, service_ms: float, deadline_s: float) -> int:
    """Seconds until a job with this deadline could be admitted."""
    return _whole_seconds(estimated_wait_s(ahead, consumers, service_ms) - deadline_s)


def _whole_seconds(seconds: float) -> int:
    if math.isinf(seconds):
        return NO_CONSUMER_RETRY_S
    return max(1, math.ceil(seconds))
