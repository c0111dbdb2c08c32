"""Consumer heartbeats: one sorted-set entry per worker process, scored by time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class Heartbeat:
    """A daemon thread that records `worker_id` as alive every `interval` seconds.

    With each beat it also writes `describe()` to `about_key` (what the dashboard shows
    of a consumer), expiring with the heartbeat. `on_beat` runs after each beat in the
    same thread (the lease reaper, the history flush).
    """

    def __init__(
        self,
        redis: Redis,
        key: str,
        worker_id: str,
        interval: float,
        on_beat: Callable[[], None] | None = None,
        about_key: str = "",
        describe: Callable[[], dict[str, str]] | None = None,
        ttl: float = 0,
    ) -> None:
        self._redis, self._key, self._worker_id = redis, key, worker_id
        self._interval, self._on_beat = interval, on_beat
        self._about_key, self._describe = about_key, describe
        self._ttl = max(1, int(ttl or 3 * interval))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        # A beat under way would write the entry back after it is removed (and open a
        # connection its owner may be closing): let it finish first.
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval + 5)
        try:
            self._redis.zrem(self._key, self._worker_id)
            if self._about_key:
                self._redis.delete(self._about_key)
        except RedisError:
            log.warning("could not remove heartbeat of %s", self._worker_id)

    def beat(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(self._key, {self._worker_id: time.time()})
        if self._about_key and self._describe is not None:
            about: dict[Any, Any] = self._describe()  # redis-py's mapping type is invariant
            pipe.hset(self._about_key, mapping=about)
            pipe.expire(self._about_key, self._ttl)
        try:
            pipe.execute()
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
