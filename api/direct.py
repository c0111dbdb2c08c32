"""The direct path: models run in this API process's own process pool, with load shedding."""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from api.metrics import DIRECT_IN_FLIGHT, DIRECT_SHED, DIRECT_WAITING
from config import Settings
from core.errors import DirectPathBusyError, ModelError
from worker import inline
from worker.metrics import JOBS_REJECTED

log = logging.getLogger(__name__)


class DirectPool:
    """Runs predictions in `direct_workers` processes; refuses past `direct_max_pending`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._workers = settings.direct_workers
        self._pending = 0
        self._service_s = 0.0  # recent mean service time, for Retry-After
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn, not fork: forking a process that runs an event loop and threads is unsafe.
        return ProcessPoolExecutor(
            self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=inline.load_models,
            initargs=(self._settings.models, self._settings.burn_iterations_per_ms),
        )

    async def warm_up(self) -> None:
        """Start every child and load its models before the first request."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._executor, inline.warm_up) for _ in range(self._workers))
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def predict(self, model: str, input_json: str) -> str:
        """The model's output as JSON; DirectPathBusyError when shedding refuses it."""
        if self._settings.direct_shedding and self._pending >= self._settings.direct_max_pending:
            DIRECT_SHED.labels(model).inc()
            # /predict has no priority; "normal" is what its PreparedJob carries.
            JOBS_REJECTED.labels(model, "normal", "shed").inc()
            raise DirectPathBusyError(
                f"{self._pending} predictions are running or waiting "
                f"(limit {self._settings.direct_max_pending})",
                self._retry_after_s(),
            )
        self._pending += 1
        self._publish_gauges()
        began = asyncio.get_running_loop().time()
        try:
            return await self._run(model, input_json)
        finally:
            self._pending -= 1
            self._publish_gauges()
            elapsed = asyncio.get_running_loop().time() - began
            self._service_s = (
                elapsed if not self._service_s else 0.8 * self._service_s + 0.2 * elapsed
            )

    async def _run(self, model: str, input_json: str) -> str:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._executor, inline.predict_json, model, input_json
            )
        except BrokenProcessPool:
            log.error("a direct-path model process died; starting a new pool")
            self._executor = self._new_executor()
            raise DirectPathBusyError("the model process died; retry", 1) from None
        except Exception as exc:
            log.error("model %s failed on the direct path: %r", model, exc)
            raise ModelError(f"{type(exc).__name__}: {exc}"[:500]) from None

    def _publish_gauges(self) -> None:
        DIRECT_IN_FLIGHT.set(min(self._pending, self._workers))
        DIRECT_WAITING.set(max(0, self._pending - self._workers))

    def _retry_after_s(self) -> int:
        drain_s = self._pending * self._service_s / self._workers
        return max(1, math.ceil(drain_s))
