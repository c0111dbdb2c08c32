"""Seeded request inputs that vary in size and cost, with an optional share of repeats."""

from __future__ import annotations

import itertools
import random
import uuid
from typing import Any

from loadtest.digits import unique_pixels

TEXT_LENGTHS = (16, 64, 256, 1024, 4096)
REPEATED_POOL = 8


class InputStream:
    """Draws model inputs: text length uniform over TEXT_LENGTHS, work_ms lognormal.

    `work_ms` has median `work_ms`, spread `work_sigma` (0: fixed) and is capped
    at 10x the median; a `cached_share`
    of draws repeats one of a few fixed inputs so the caches can answer them.
    """

    def __init__(
        self, seed: int, model: str, work_ms: int, cached_share: float, work_sigma: float = 0.5
    ) -> None:
        self._rng = random.Random(seed)
        self._model, self._work_ms, self._cached_share = model, work_ms, cached_share
        self._sigma = work_sigma
        self._digits = itertools.count(self._rng.randrange(20_000_000))

    def next(self) -> dict[str, Any]:
        if self._model == "digits":
            return {"model": "digits", "input": {"pixels": unique_pixels(1, next(self._digits))}}
        if self._cached_share and self._rng.random() < self._cached_share:
            return self._build(f"repeat-{self._rng.randrange(REPEATED_POOL)}", self._work_ms, 16)
        work = min(
            10 * self._work_ms,
            max(1, round(self._rng.lognormvariate(0, self._sigma) * self._work_ms)),
        )
        return self._build(
            uuid.UUID(int=self._rng.getrandbits(128)).hex, work, self._rng.choice(TEXT_LENGTHS)
        )

    def _build(self, tag: str, work_ms: int, length: int) -> dict[str, Any]:
        text = (tag * (length // len(tag) + 1))[:length]
        if self._model == "echo":
            return {"model": "echo", "input": {"text": text}}
        return {"model": "burn", "input": {"text": text, "work_ms": work_ms}}
