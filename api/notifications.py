"""One pub/sub subscription per API process that wakes the requests waiting on jobs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.jobs import JobRecord

log = logging.getLogger(__name__)


@dataclass(eq=False)  # identity semantics: watches live in sets
class Watch:
    """A waiter's view of one job: set when the job may have changed.

    `record` holds the job's fields when the completion message carried them
    (workers publish settled records), sparing the waiter a read.
    """

    event: asyncio.Event = field(default_factory=asyncio.Event)
    record: dict[str, str] | None = None
    known: JobRecord | None = None  # the job as the waiter last saw it
    disconnected: bool = False

    def take_record(self) -> dict[str, str] | None:
        record, self.record = self.record, None
        self.event.clear()
        return record


class CompletionHub:
    """Maps job ids to local waiters; workers publish finished jobs on one channel.

    A message is either comma-separated job ids (canceled or expired: waiters
    re-read) or a JSON list of settled job records.
    """

    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis, self._channel = redis, channel
        self._waiters: dict[str, set[Watch]] = {}
        self._task: asyncio.Task[None] | None = None
        self.is_subscribed = False
        self._first_subscribe = asyncio.Event()

    async def start(self, within_s: float) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="completion-hub")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_subscribe.wait(), within_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.aclose()

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[Watch]:
        """A watch on `job_id`, live until the block exits.

        Enter this before reading the job's status (or before submitting it): a
        completion published after that point is delivered, so none is missed
        between the read and the wait.
        """
        watch = Watch()
        self._waiters.setdefault(job_id, set()).add(watch)
        try:
            yield watch
        finally:
            watches = self._waiters.get(job_id)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._waiters[job_id]

    def _wake(self, job_id: str, record: dict[str, str] | None = None) -> None:
        for watch in self._waiters.get(job_id, ()):
            watch.record = record
            watch.event.set()

    def _wake_all(self) -> None:
        for job_id in self._waiters:
            self._wake(job_id)

    def _dispatch(self, data: bytes) -> None:
        if data.startswith(b"["):
            for record in json.loads(data):
                self._wake(record["id"], record)
        else:
            for job_id in data.decode().split(","):
                self._wake(job_id)

    async def _listen_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                delay = 0.1 if self.is_subscribed else min(delay * 2, 2.0)
                log.warning("completion subscription lost (%s); retrying in %.1fs", exc, delay)
            self.is_subscribed = False
            await asyncio.sleep(delay)

    async def _listen(self) -> None:
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self._channel)
            self.is_subscribed = True
            self._first_subscribe.set()
            # Completions published while we were not subscribed are lost:
            # every waiter re-reads its job's record.
            self._wake_all()
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is not None:
                    self._dispatch(message["data"])
