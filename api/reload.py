"""Model reload in an API process: rescan the repository, switch the direct pool, then the
registry the routes read, without a request failing on the way.

Every API process looks for changes every INFERQ_MODEL_RELOAD_S and for an operator's
POST /models/reload (a counter in Redis) every second, like the consumers
(worker/reload.py). Queued jobs of a version that was removed fail with
`model_version_removed`, since no consumer will load it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from fastapi import FastAPI

from api.services import Services
from core.jobs import JobError, now_ts
from core.models import ModelRegistry
from core.models.repository import fingerprint
from worker import scripts
from worker.models import configured_models

log = logging.getLogger(__name__)
REMOVED = JobError(
    code="model_version_removed",
    message="the model version this job was queued for was removed before it ran",
)


class ApiReloader:
    def __init__(self, app: FastAPI, services: Services) -> None:
        self._app, self._services = app, services
        self._lock = asyncio.Lock()
        self._seen: tuple[str, int] = ("", 0)
        self._purge = services.redis.register_script(scripts.PURGE)

    async def start_state(self) -> None:
        self._seen = (await self._fingerprint(), await self._requests())

    async def watch(self) -> None:
        """Forever: reload when the repository changes or an operator asks for it."""
        last_scan = time.monotonic()
        every_s = self._services.settings.model_reload_s
        while True:
            await asyncio.sleep(1)
            requests = await self._requests()
            if requests == self._seen[1] and time.monotonic() - last_scan < every_s:
                continue
            last_scan = time.monotonic()
            state = (await self._fingerprint(), requests)
            if state != self._seen:
                self._seen = state
                await self.reload()

    async def reload(self) -> float:
        """Load what the repository holds now and switch to it; returns the seconds it took."""
        async with self._lock:
            began = time.monotonic()
            services = self._services
            models = await asyncio.to_thread(configured_models, services.settings)
            await services.direct.reload(models)
            removed = _specs(services.models) - _specs(models)
            services.models = models
            self._app.openapi_schema = None  # rebuilt, with the new versions, when next asked
            for spec in sorted(removed):
                await self._fail_queued(spec)
            took = time.monotonic() - began
            log.info("models reloaded in %.0f ms: %s", took * 1000, sorted(_specs(models)))
            return took

    async def request_everywhere(self) -> None:
        """Have every API and consumer process reload (each checks the counter every second)."""
        await self._services.redis.incr(self._services.keys.model_reloads)

    async def _fail_queued(self, spec: str) -> None:
        keys = self._services.keys
        name, _, version = spec.partition("@")
        count, _ = await self._purge(
            keys=[keys.queues, keys.queue_tokens],
            args=[
                keys.job_prefix,
                now_ts(),
                keys.done_channel,
                0,
                "+inf",
                "0",
                keys.queue(name, version),
                REMOVED.model_dump_json(),
                "1",
            ],
        )
        if count:
            log.warning("model %s was removed: failed its %d queued jobs", spec, count)

    async def _fingerprint(self) -> str:
        directory = self._services.settings.model_dir
        return await asyncio.to_thread(fingerprint, Path(directory)) if directory else ""

    async def _requests(self) -> int:
        value = await self._services.redis.get(self._services.keys.model_reloads)
        return int(value or 0)


def _specs(models: ModelRegistry) -> set[str]:
    return {f"{m.name}@{m.version}" for m in models}
