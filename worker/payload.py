"""What a consumer takes off a model queue for one computation: plain text, never a pickle."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Computation:
    """One model input and the Redis keys its jobs and shared result live under.

    TAKE returns the key, the leader's id, its cache key, the input and what it started
    of the computation (`started`: its stamp, then id, attempts, priority, created_at per
    job), which FINISH takes back so it need not read those jobs again; the shared result
    goes under the cache key, when the model has one.
    """

    key: str
    leader: str
    cache_key: str
    result_key: str
    input_json: str
    started: tuple[str, ...]

    def jobs(self) -> list[tuple[str, str, str]]:
        """Job id, priority and created_at of each job TAKE started of this computation."""
        s = self.started
        return [(s[i], s[i + 2], s[i + 3]) for i in range(1, len(s), 4)]
