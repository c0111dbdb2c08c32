"""The recent past, for the dashboard: counts and latency histograms in time buckets.

Every API and consumer process tallies what it sees in memory and adds its tally to
Redis every second or two (one pipelined round trip, never one per job), into one hash
per `BUCKET_S`-second bucket that expires after `RETENTION_S`. So every API process and
replica reads the same picture, and a restart does not blank it. Latencies go into
geometric bins (each 20% wider than the last), so a percentile read back is within
about 10% of the true one, from any number of processes added together.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable, Mapping

BUCKET_S = 10
RETENTION_S = 3600
_BIN_BASE_MS, _BIN_GROWTH, _BINS = 0.1, 1.2, 100


def latency_bin(seconds: float) -> int:
    """The histogram bin of a duration."""
    ms = max(seconds * 1000, _BIN_BASE_MS)
    return min(_BINS - 1, int(math.log(ms / _BIN_BASE_MS) / math.log(_BIN_GROWTH)))


def bin_ms(index: int) -> float:
    """The geometric middle of a bin, in milliseconds."""
    return float(_BIN_BASE_MS * _BIN_GROWTH ** (index + 0.5))


def percentile_ms(bins: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0..1) of the durations counted in `bins`, or None if there are none."""
    total = sum(bins.values())
    if not total:
        return None
    rank, seen = q * total, 0
    for index in sorted(bins):
        seen += bins[index]
        if seen >= rank:
            return round(bin_ms(index), 3)
    return round(bin_ms(max(bins)), 3)


def bucket_of(epoch_s: float) -> int:
    return int(epoch_s // BUCKET_S) * BUCKET_S


class Tally:
    """What one process saw since its last flush, by bucket; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[int, Counter[str]] = {}

    def add(self, at: float, *fields: str, n: int = 1) -> None:
        with self._lock:
            bucket = self._buckets.setdefault(bucket_of(at), Counter())
            for name in fields:
                bucket[name] += n

    def finished(self, at: float, path: str, status: str, latency_s: float) -> None:
        """A job (or /predict request) ended: its status and end-to-end latency."""
        self.add(at, f"{status}:{path}", f"lat:{path}:{latency_bin(latency_s)}")

    def waited(self, at: float, wait_s: float) -> None:
        """A queued job started after waiting `wait_s` in the queue."""
        self.add(at, f"wait:{latency_bin(wait_s)}")

    def batch(self, at: float, path: str, size: int) -> None:
        self.add(at, f"batches:{path}")
        self.add(at, f"batched:{path}", n=size)

    def refused(self, at: float, reason: str) -> None:
        self.add(at, f"refused:{reason}")

    def drain(self) -> dict[int, Counter[str]]:
        """Everything tallied so far, emptied; on a failed flush, `restore` puts it back."""
        with self._lock:
            taken, self._buckets = self._buckets, {}
        return taken

    def restore(self, taken: Mapping[int, Counter[str]]) -> None:
        with self._lock:
            for bucket, fields in taken.items():
                self._buckets.setdefault(bucket, Counter()).update(fields)


def summarize(bucket: int, fields: Mapping[str, int], paths: Iterable[str]) -> dict[str, object]:
    """One bucket as the dashboard draws it: rates per second, percentiles in ms."""
    point: dict[str, object] = {"t": bucket}
    for path in paths:
        bins = _bins(fields, f"lat:{path}:")
        batches = fields.get(f"batches:{path}", 0)
        point[path] = {
            "per_s": round(
                (fields.get(f"succeeded:{path}", 0) + fields.get(f"failed:{path}", 0)) / BUCKET_S, 3
            ),
            "failed": fields.get(f"failed:{path}", 0),
            "expired": fields.get(f"expired:{path}", 0),
            "p50_ms": percentile_ms(bins, 0.5),
            "p99_ms": percentile_ms(bins, 0.99),
            "mean_batch": round(fields.get(f"batched:{path}", 0) / batches, 2) if batches else None,
        }
    waits = _bins(fields, "wait:")
    point["wait_p50_ms"] = percentile_ms(waits, 0.5)
    point["wait_p99_ms"] = percentile_ms(waits, 0.99)
    point["refused"] = {k[8:]: v for k, v in fields.items() if k.startswith("refused:")}
    return point


def _bins(fields: Mapping[str, int], prefix: str) -> dict[int, int]:
    return {int(k[len(prefix) :]): v for k, v in fields.items() if k.startswith(prefix)}
