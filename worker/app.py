"""The one huey instance, built on first use. Importing this builds nothing."""

from __future__ import annotations

import logging
import struct
import time
from functools import lru_cache
from typing import Any, Protocol

from huey import PriorityRedisHuey
from huey.serializer import SignedSerializer
from huey.storage import PriorityRedisStorage
from redis import ConnectionPool

from config import Settings, get_settings
from core.keys import RedisKeys
from worker.consumer import InferqConsumer

log = logging.getLogger(__name__)


class InferqStorage(PriorityRedisStorage):  # type: ignore[misc]
    """huey's sorted-set priority queue, for huey's own tasks (not for jobs).

    Jobs wait in per-model queues that the consumers take batches from
    (`worker.batches`). Consumers block on a token list (one token per queued
    message of either kind) pipelined with the TAKE script, so a dequeue is one
    round trip; huey's own enqueue pushes a token too.
    """

    def __init__(self, *args: Any, namespace: str = "inferq", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keys = RedisKeys(namespace)

    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        member = struct.pack(">Q", time.time_ns() // 1000) + data
        pipe = self.conn.pipeline(transaction=True)
        pipe.zadd(self.queue_key, {member: -(priority or 0)})
        pipe.rpush(self.keys.queue_tokens, "1")
        pipe.execute()


class WorkRunner(Protocol):
    models: Any

    def take(self) -> Any: ...

    def run(self, batch: Any) -> None: ...

    def release(self, batch: Any) -> None: ...
    def release_prefetched(self) -> None: ...


class InferqHuey(PriorityRedisHuey):  # type: ignore[misc]
    """huey whose consumers take batches of jobs, and without per-task revocation look-ups.

    inferq cancels through job records, never through huey's revoke flags, so the
    flag read before each task and the flag delete after it are two Redis round
    trips per job that buy nothing (profiled: about a fifth of the queue overhead).
    """

    max_delay_s = 1.0
    storage_class = InferqStorage
    keys = RedisKeys()
    settings: Settings | None = None
    runner: WorkRunner | None = None
    _as_task: Any = None

    def serve(self, runner: WorkRunner, as_task: Any) -> None:
        """Take work through `runner`; `as_task` wraps a batch in a huey task to execute."""
        self.runner, self._as_task = runner, as_task

    def dequeue(self) -> Any:
        if self.runner is None:  # no models loaded: nothing this process can run
            time.sleep(self.max_delay_s)
            return None
        work = self.runner.take()
        if work is None:
            return None
        if isinstance(work, bytes):  # one of huey's own tasks, signed and pickled
            return self.deserialize_task(work[8:])
        return self._as_task(work)

    def is_revoked(self, task: object, timestamp: object = None, peek: bool = True) -> bool:
        return False

    def delete(self, key: str) -> bool:
        if key.startswith("r:"):  # a task's revoke flag; see the class docstring
            return False
        return bool(super().delete(key))

    def deserialize_task(self, data: bytes) -> Any:
        # Messages are HMAC-signed with the queue secret: anything else was not
        # written by inferq (a forgery, or another deployment's secret). Drop it,
        # loudly, without unpickling it.
        try:
            return super().deserialize_task(data)
        except ValueError as exc:
            log.error("rejected a queue message without a valid signature: %s", exc)
            return None

    def create_consumer(self, **options: Any) -> Any:
        # huey's idle/error back-off grows to 10 s by default, so consumers would
        # notice a Redis that came back only that late; cap it.
        options["max_delay"] = min(options.get("max_delay", 10.0), self.max_delay_s)
        return InferqConsumer(self, self.keys, **options)


def make_huey(settings: Settings) -> InferqHuey:
    """huey over a sorted-set priority queue; job records hold results, so huey's are off."""
    pool = ConnectionPool.from_url(
        settings.redis_url,
        # Above huey's 1 s blocking-pop timeout, so an idle queue is not an error.
        socket_timeout=settings.redis_timeout_s + 5,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
        client_name="inferq-worker",
    )
    huey = InferqHuey(
        RedisKeys(settings.namespace).huey_name,
        results=False,
        connection_pool=pool,
        namespace=settings.namespace,
        serializer=SignedSerializer(secret=settings.queue_secret.get_secret_value(), salt="inferq"),
    )
    huey.max_delay_s = settings.consumer_max_delay_s
    huey.keys = RedisKeys(settings.namespace)

    huey.settings = settings
    return huey


@lru_cache
def get_huey() -> InferqHuey:
    """The consumer's huey instance with inferq's tasks and hooks, from this process's settings.

    `huey_consumer worker.huey` reaches it through `worker.__getattr__`, so settings are
    read when the consumer starts, never when a module is imported.
    """
    from worker.tasks import register  # tasks import this module

    huey = make_huey(get_settings())
    register(huey)
    return huey
