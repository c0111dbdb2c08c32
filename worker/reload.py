"""Model reload without downtime, in every consumer worker process.

A daemon thread looks for changes in INFERQ_MODEL_DIR every INFERQ_MODEL_RELOAD_S (a
stat of each file) and for an operator's POST /models/reload (a counter in Redis) every
second. On a change it builds and loads the new registry beside the old one, then offers
it to the runner, which switches between batches: a batch already taken finishes on the
version it started with, and the old models are dropped with the last batch using them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from core.models import ModelRegistry
from core.models.repository import fingerprint

log = logging.getLogger(__name__)


class ModelReloader:
    def __init__(
        self,
        redis: Redis,
        counter_key: str,
        repository: str,
        every_s: float,
        build: Callable[[], ModelRegistry],
        offer: Callable[[ModelRegistry], None],
    ) -> None:
        self._redis, self._counter_key = redis, counter_key
        self._root, self._every_s = Path(repository), every_s
        self._build, self._offer = build, offer
        self._seen = (fingerprint(self._root), self._requests())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-reload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        last_scan = time.monotonic()
        while not self._stop.wait(1.0):
            requests = self._requests()
            due = time.monotonic() - last_scan >= self._every_s
            if requests == self._seen[1] and not due:
                continue
            last_scan = time.monotonic()
            state = (fingerprint(self._root), requests)
            if state != self._seen:
                self._seen = state
                self.reload()

    def reload(self) -> None:
        began = time.monotonic()
        try:
            models = self._build()
            models.load_all()
        except Exception:
            log.exception("model reload failed; serving the models loaded before")
            return
        self._offer(models)
        log.info("models reloaded in %.0f ms", 1000 * (time.monotonic() - began))

    def _requests(self) -> int:
        try:
            return int(self._redis.get(self._counter_key) or 0)
        except RedisError:
            return -1
