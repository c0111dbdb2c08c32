"""Hard time limits for model calls in process workers, enforced from the consumer's parent.

A model stuck in C code (a regular-expression backtrack, a native loop) never sees a
Python signal, and a thread cannot stop it; only killing its process can. So each
worker process writes, in memory shared with the consumer's main process, when its
current model call must end; the main process checks every tenth of a second, kills an
overdue worker with SIGKILL, settles the jobs it held and starts a replacement at once
(as Celery's hard time limit and RQ's work-horse monitor do).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_slot: tuple[Any, int] | None = None  # (shared array, index) in a watched worker process


class RunClock:
    """When each worker slot's current model call must end (monotonic seconds; 0: idle)."""

    def __init__(self, slots: int) -> None:
        # Shared anonymous memory, inherited by the forked workers; no lock: each slot
        # has one writer (its worker) and a torn read only delays a check by 0.1 s.
        self._ends = multiprocessing.get_context("fork").RawArray(ctypes.c_double, slots)

    def enter(self, index: int) -> None:
        """In a worker process: this process owns slot `index` from now on."""
        global _slot
        self._ends[index] = 0.0
        _slot = (self._ends, index)

    def overdue(self) -> list[int]:
        """Slots whose call has run past its end."""
        now = time.monotonic()
        return [i for i, end in enumerate(self._ends) if 0 < end < now]

    def clear(self, index: int) -> None:
        self._ends[index] = 0.0


def is_watched() -> bool:
    """True in a process worker whose consumer enforces time limits."""
    return _slot is not None


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Let the consumer kill this process if the block runs longer than `seconds`."""
    if _slot is None:
        yield
        return
    ends, index = _slot
    ends[index] = time.monotonic() + seconds
    try:
        yield
    finally:
        ends[index] = 0.0
