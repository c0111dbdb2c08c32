"""A queue's recent model time, weighed by the consumer and written only when it moved."""

from __future__ import annotations

from worker.batches import RecentCost


def test_the_first_batch_is_written_as_measured() -> None:
    assert RecentCost().observe(2.0, 8.0, now=100.0) == ("2.0000", "8.0000")


def test_a_steady_cost_is_written_again_only_after_a_second() -> None:
    recent = RecentCost()
    recent.observe(2.0, 8.0, now=100.0)
    assert recent.observe(2.1, 8.2, now=100.5) == ("", "")  # moved under a fifth
    assert recent.observe(2.0, 8.0, now=101.1) == ("2.0160", "8.0320")  # the weighed means


def test_a_cost_that_moved_by_a_fifth_is_written_at_once() -> None:
    recent = RecentCost()
    recent.observe(2.0, 8.0, now=100.0)
    # 0.8 * 2 + 0.2 * 5 = 2.6: 30% above what was written
    assert recent.observe(5.0, 8.0, now=100.1) == ("2.6000", "8.0000")
    assert recent.observe(2.6, 8.0, now=100.2) == ("", "")  # measured against 2.6 now


def test_a_batch_time_that_moved_is_written_with_the_cost() -> None:
    recent = RecentCost()
    recent.observe(2.0, 8.0, now=100.0)
    assert recent.observe(2.0, 20.0, now=100.1) == ("2.0000", "10.4000")
