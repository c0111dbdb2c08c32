"""The one huey instance. Importing this must stay cheap: the API imports it to enqueue."""

from __future__ import annotations

import logging
import struct
import time
from typing import Any

from huey import PriorityRedisHuey
from huey.serializer import SignedSerializer
from huey.storage import PriorityRedisStorage
from redis import ConnectionPool
from redis.exceptions import TimeoutError as RedisTimeoutError

from config import Settings, get_settings
from core.keys import RedisKeys
from worker import scripts
from worker.identity import claim_field, worker_identity

log = logging.getLogger(__name__)


class InferqStorage(PriorityRedisStorage):  # type: ignore[misc]
    """huey's sorted-set priority queue, with a dequeue that cannot lose a message.

    huey pops with BZPOPMIN: a consumer killed between that pop and the job's START
    script takes the message with it. Here the pop and a claim naming the popping
    thread are one Lua script (`scripts.CLAIM`), and START turns the claim into a lease,
    so the reaper can put back the message of a consumer that died in between. Lua
    cannot block, so consumers block on a token list instead (one token per message,
    pushed by whoever enqueues), pipelined with the claim script: one round trip.
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

    def dequeue(self) -> bytes | None:
        pipe = self.conn.pipeline(transaction=False)
        if self.blocking:
            pipe.blpop([self.keys.queue_tokens], timeout=self.read_timeout)
        # EVAL, not a registered Script: redis-py sends SCRIPT EXISTS ahead of any
        # pipeline holding a Script, a round trip per dequeue (seen in py-spy).
        pipe.eval(
            scripts.CLAIM,
            3,
            self.queue_key,
            self.keys.queue_tokens,
            self.keys.claims,
            claim_field(),
            worker_identity(),
            f"{time.time():.6f}",
        )
        try:
            message = pipe.execute()[-1]
        except RedisTimeoutError:
            return None
        return bytes(message[8:]) if message else None

    def release_claim(self) -> None:
        """Forget this thread's claim: its message will not run (say, a forgery)."""
        self.conn.hdel(self.keys.claims, claim_field())


class InferqHuey(PriorityRedisHuey):  # type: ignore[misc]
    """huey without per-task revocation look-ups.

    inferq cancels through job records, never through huey's revoke flags, so the
    flag read before each task and the flag delete after it are two Redis round
    trips per job that buy nothing (profiled: about a fifth of the queue overhead).
    """

    max_delay_s = 1.0

    def is_revoked(self, task: object, timestamp: object = None, peek: bool = True) -> bool:
        return False

    def delete(self, key: str) -> bool:
        if key.startswith("r:"):  # a task's revoke flag; see the class docstring
            return False
        return bool(super().delete(key))

    storage_class = InferqStorage

    def deserialize_task(self, data: bytes) -> Any:
        # Messages are HMAC-signed with the queue secret: anything else was not
        # written by inferq (a forgery, or another deployment's secret). Drop it,
        # loudly, without unpickling it.
        try:
            return super().deserialize_task(data)
        except ValueError as exc:
            log.error("rejected a queue message without a valid signature: %s", exc)
            self.storage.release_claim()
            return None

    def create_consumer(self, **options: Any) -> Any:
        # huey's idle/error back-off grows to 10 s by default, so consumers would
        # notice a Redis that came back only that late; cap it.
        options["max_delay"] = min(options.get("max_delay", 10.0), self.max_delay_s)
        return super().create_consumer(**options)


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
    return huey


settings = get_settings()
keys = RedisKeys(settings.namespace)
huey = make_huey(settings)
