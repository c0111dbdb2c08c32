"""The dashboard's history: bins, percentiles, and tallies that add up across processes."""

from __future__ import annotations

import random
from collections import Counter

from core.history import BUCKET_S, Tally, bin_ms, latency_bin, percentile_ms, summarize


def test_a_duration_reads_back_within_ten_percent() -> None:
    for ms in (0.5, 1, 3.7, 12, 250, 999, 42_000):
        assert abs(bin_ms(latency_bin(ms / 1000)) - ms) / ms <= 0.1


def test_percentiles_of_many_processes_add_up() -> None:
    rng = random.Random(7)
    samples = [rng.expovariate(1 / 0.02) for _ in range(20_000)]
    tallies = [Tally() for _ in range(4)]
    for n, seconds in enumerate(samples):
        tallies[n % 4].finished(1000.0, "queued", "succeeded", seconds)
    merged: Counter[str] = Counter()
    for tally in tallies:
        (bucket,) = tally.drain().values()
        merged.update(bucket)
    point = summarize(1000, merged, ["queued"])
    queued = point["queued"]
    assert isinstance(queued, dict)
    exact = sorted(samples)
    for q, key in ((0.5, "p50_ms"), (0.99, "p99_ms")):
        true_ms = exact[int(q * len(exact))] * 1000
        assert abs(queued[key] - true_ms) / true_ms <= 0.12
    assert queued["per_s"] == len(samples) / BUCKET_S


def test_a_tally_buckets_by_time_and_restores_after_a_failed_flush() -> None:
    tally = Tally()
    tally.refused(1000.0, "queue_full")
    tally.refused(1009.9, "queue_full")
    tally.refused(1010.0, "paused")
    tally.batch(1010.0, "direct", 8)
    tally.batch(1011.0, "direct", 4)
    taken = tally.drain()
    assert tally.drain() == {}
    tally.restore(taken)
    again = tally.drain()
    assert again[1000] == Counter({"refused:queue_full": 2})
    point = summarize(1010, again[1010], ["direct"])
    assert point["refused"] == {"paused": 1}
    assert isinstance(point["direct"], dict) and point["direct"]["mean_batch"] == 6


def test_no_samples_means_no_percentile() -> None:
    assert percentile_ms({}, 0.5) is None
