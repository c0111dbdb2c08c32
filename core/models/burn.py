"""The CPU-bound demo model: a fixed amount of hashing per request."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.jsontypes import Integer

CALIBRATION_FILE = Path.home() / ".cache" / "inferq" / "burn-calibration.json"
_CALIBRATION_ROUNDS = 20_000


class BurnInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=100_000)
    work_ms: Integer = Field(ge=0, le=10_000, description="idle-core milliseconds of hashing")


class BurnModel:
    """Hashes `text` for a fixed iteration count sized to `work_ms` on an idle core.

    The count is fixed per machine, never a wall-clock loop: under contention
    a request takes longer, as a real model's would.
    """

    name = "burn"
    version = "1"
    batchable = True
    deterministic = True
    input_schema = BurnInput
    # Its cost is all per input: the batching policy keeps it at one per call.
    max_batch_size = 8

    def __init__(self, iterations_per_ms: int = 0) -> None:
        self.iterations_per_ms = iterations_per_ms

    def load(self) -> None:
        if self.iterations_per_ms <= 0:
            self.iterations_per_ms = calibrated_iterations_per_ms(CALIBRATION_FILE)

    def predict(self, inputs: list[Any]) -> list[Any]:
        return [self._burn(item.text, item.work_ms * self.iterations_per_ms) for item in inputs]

    @staticmethod
    def _burn(text: str, iterations: int) -> dict[str, Any]:
        digest = _hash_rounds(hashlib.sha256(text.encode()).digest(), iterations)
        return {"digest": digest.hex(), "iterations": iterations}


def _hash_rounds(digest: bytes, rounds: int) -> bytes:
    sha256 = hashlib.sha256
    for _ in range(rounds):
        digest = sha256(digest).digest()
    return digest


def calibrated_iterations_per_ms(cache_file: Path) -> int:
    """Hash rounds per millisecond on this machine, measured once and kept in `cache_file`."""
    machine = f"{platform.node()}/{platform.machine()}/{platform.python_version()}"
    try:
        saved = json.loads(cache_file.read_text())
        if saved.get("machine") == machine:
            return int(saved["iterations_per_ms"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    measured = measure_iterations_per_ms()
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps({"machine": machine, "iterations_per_ms": measured}))
    except OSError:
        pass  # an unwritable home only costs a re-measurement next time
    return measured


def measure_iterations_per_ms(repeats: int = 15) -> int:
    """The fastest of several short timed runs: the closest to an idle core.

    A median is not enough: calibrating while another process keeps the other core
    busy (a test suite, a load test) slows most runs, and every later `work_ms` would
    then burn for less than asked (seen here: half).
    """
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        _hash_rounds(b"calibrate", _CALIBRATION_ROUNDS)
        timings.append(time.perf_counter() - start)
    return max(1, int(_CALIBRATION_ROUNDS / (min(timings) * 1000)))
