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
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.decode import text
from api.services import Services
from core.checks import CheckResult, has_reference
from core.jobs import JobError, now_ts
from core.keys import RedisKeys
from core.models import ModelRegistry, spec_of
from core.models.repository import fingerprint
from worker import scripts
from worker.models import configured_models

log = logging.getLogger(__name__)
REMOVED = JobError(
    code="model_version_removed",
    message="the model version this job was queued for was removed before it ran",
)


async def read_checks(redis: Redis, keys: RedisKeys) -> dict[str, CheckResult]:
    """The latest check of every version that has been checked, by name@version."""
    raw = await redis.hgetall(keys.checks)
    return {text(spec): CheckResult.from_json(result) for spec, result in raw.items()}


class ApiReloader:
    def __init__(self, app: FastAPI, services: Services) -> None:
        self._app, self._services = app, services
        self._lock = asyncio.Lock()
        self._seen: tuple[str, int, int] = ("", 0, 0)
        self._scanned_at = 0.0
        self._purge = services.redis.register_script(scripts.PURGE)

    async def start_state(self) -> None:
        """Note where things stand, and choose current versions around failed checks."""
        try:
            self._seen = (await self._fingerprint(), *await self._counters())
            await self._choose_current()
        except RedisError as exc:  # Redis down at start: the watch catches up once it is back
            log.warning("model checks not read at startup: %s", exc)

    async def watch(self) -> None:
        """Forever: reload when the repository changes or an operator asks for it; choose
        the current versions again when a consumer records a check."""
        self._scanned_at = time.monotonic()
        while True:
            await asyncio.sleep(1)
            try:
                await self._look()
            except RedisError as exc:
                log.warning("model reload check failed: %s", exc)
            except Exception:
                log.exception("model reload failed; serving the models loaded before")

    async def _look(self) -> None:
        requests, checked = await self._counters()
        settings = self._services.settings
        due = settings.model_dir and time.monotonic() - self._scanned_at >= settings.model_reload_s
        if requests != self._seen[1] or due:
            self._scanned_at = time.monotonic()
            found = await self._fingerprint()
            if (found, requests) != self._seen[:2]:
                self._seen = (found, requests, checked)
                await self.reload()  # which also chooses around the checks
                return
        if checked != self._seen[2]:
            self._seen = (self._seen[0], self._seen[1], checked)
            await self._choose_current()

    async def reload(self) -> float:
        """Load what the repository holds now and switch to it; returns the seconds it took."""
        async with self._lock:
            began = time.monotonic()
            services = self._services
            models = await asyncio.to_thread(configured_models, services.settings)
            models = models.holding_back(await self._held_back(models))
            await services.direct.reload(models)
            removed = _specs(services.models) - _specs(models)
            services.models = models
            self._app.openapi_schema = None  # rebuilt, with the new versions, when next asked
            for spec in sorted(removed):
                await self._fail_queued(spec)
            took = time.monotonic() - began
            log.info("models reloaded in %.0f ms: %s", took * 1000, sorted(_specs(models)))
            return took

    async def _choose_current(self) -> None:
        async with self._lock:
            models = self._services.models
            chosen = models.holding_back(await self._held_back(models))
            changed = [
                f"{m.name}@{chosen.current_version(m.name)}"
                for m in chosen
                if chosen.current_version(m.name) != models.current_version(m.name)
            ]
            self._services.models = chosen
            if changed:
                self._app.openapi_schema = None
                log.info("current versions now %s, after model checks", sorted(set(changed)))

    async def _held_back(self, models: ModelRegistry) -> set[str]:
        """Versions with reference data whose check has not passed (yet)."""
        results = await read_checks(self._services.redis, self._services.keys)
        return {
            spec
            for model in models
            if has_reference(model)
            and not ((spec := spec_of(model)) in results and results[spec].passed)
        }

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

    async def _counters(self) -> tuple[int, int]:
        keys = self._services.keys
        requests, checked = await self._services.redis.mget(keys.model_reloads, keys.check_results)
        return int(requests or 0), int(checked or 0)


def _specs(models: ModelRegistry) -> set[str]:
    return {spec_of(m) for m in models}
