import math

from core.admission import (
    NO_CONSUMER_RETRY_S,
    deadline_retry_after_s,
    estimated_wait_s,
    queue_full_retry_after_s,
)


def test_wait_is_work_ahead_over_consumers() -> None:
    assert estimated_wait_s(ahead=10, consumers=2, service_ms=100) == 0.5
    assert estimated_wait_s(ahead=0, consumers=1, service_ms=100) == 0
    assert math.isinf(estimated_wait_s(ahead=1, consumers=0, service_ms=100))


def test_queue_full_retry_after_grows_with_the_excess() -> None:
    small = queue_full_retry_after_s(ahead=100, max_depth=100, consumers=2, service_ms=100)
    large = queue_full_retry_after_s(ahead=400, max_depth=100, consumers=2, service_ms=100)
    assert small == 1 and large == 16  # 301 jobs x 0.1 s / 2 consumers = 15.05 s


def test_deadline_retry_after_is_the_wait_beyond_the_deadline() -> None:
    assert deadline_retry_after_s(ahead=40, consumers=2, service_ms=100, deadline_s=1) == 1
    assert deadline_retry_after_s(ahead=100, consumers=1, service_ms=100, deadline_s=2) == 8


def test_no_consumer_means_retry_later_not_never() -> None:
    assert deadline_retry_after_s(1, 0, 100, 1) == NO_CONSUMER_RETRY_S
    assert queue_full_retry_after_s(5, 1, 0, 100) == NO_CONSUMER_RETRY_S
