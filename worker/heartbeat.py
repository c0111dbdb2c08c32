"""Consumer heartbeats: one sorted-set entry per worker process, scored by time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class Heartbeat:
    """A daemon thread that records `worker_id` as alive every `interval` seconds.

    `on_beat` runs after each beat in the same thread (the lease reaper).
    """

    def __init__(
        self,
        redis: Redis,
        key: str,
        worker_id: str,
        interval: float,
        on_beat: Callable[[], None] | None = None,
    ) -> None:
        self._redis, self._key, self._worker_id = redis, key, worker_id
        self._interval, self._on_beat = interval, on_beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            self._redis.zrem(self._key, self._worker_id)
        except RedisError:
            log.warning("could not remove heartbeat of %s", self._worker_id)

    def beat(self) -> None:
        try:
            self._redis.zadd(self._key, {self._worker_id: time.time()})
        except RedisError as exc:
            log.warning("heartbeat failed: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.beat()
            if self._on_beat is not None:
                try:
                    self._on_beat()
                except RedisError as exc:
                    log.warning("after-beat task failed: %s", exc)
