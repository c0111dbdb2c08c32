"""What a consumer takes off a model queue for one computation: plain text, never a pickle."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Computation:
    """One model input and the Redis keys its jobs and shared result live under.

    TAKE returns the key, the leader's id, its cache key and the input; the shared
    result goes under the cache key, when the model has one.
    """

    key: str
    leader: str
    result_key: str
    input_json: str
