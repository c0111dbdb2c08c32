import math

from core.admission import (
    NO_CONSUMER_RETRY_S,
    deadline_retry_after_s,
    estimated_wait_s,
    queue_full_retry_after_s,
)


def test_wait_is_measured_work_ahead_over_consumers() -> None:
    assert estimated_wait_s(work_ahead_ms=1000, consumers=2) == 0.5
    assert estimated_wait_s(work_ahead_ms=0, consumers=1) == 0
    assert math.isinf(estimated_wait_s(work_ahead_ms=100, consumers=0))


def test_queue_full_retry_after_grows_with_the_excess() -> None:
    small = queue_full_retry_after_s(ahead=100, max_depth=100, work_ahead_ms=10_000, consumers=2)
    large = queue_full_retry_after_s(ahead=400, max_depth=100, work_ahead_ms=40_000, consumers=2)
    assert small == 1 and large == 16  # 301 jobs x 0.1 s / 2 consumers = 15.05 s


def test_deadline_retry_after_counts_the_run_too() -> None:
    assert deadline_retry_after_s(wait_s=0.5, run_s=0.4, deadline_s=1) == 1
    assert deadline_retry_after_s(wait_s=6.0, run_s=3.5, deadline_s=2) == 8


def test_no_consumer_means_retry_later_not_never() -> None:
    assert deadline_retry_after_s(math.inf, 0.1, 1) == NO_CONSUMER_RETRY_S
    assert queue_full_retry_after_s(5, 1, 500, 0) == NO_CONSUMER_RETRY_S
