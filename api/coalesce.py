"""Calls of one script made in one turn of the event loop go to Redis as one script call.

Under load many requests reach their submit in the same turn. Sending them as one call
costs the API one connection checkout, one write and one read instead of one each, and
Redis one wake-up and one script run, in which whatever the calls share (reading the
queues for admission, say) is done once. A lone request waits for nothing: the flush
runs as soon as the current turn ends. While a call is in Redis, the calls made
meanwhile wait for its reply and then go as the next call (as Nagle's algorithm does
for small TCP writes): under load each call carries the arrivals of a round trip, not
of one turn, and the service pays one Redis wake-up for many jobs. The script takes the
shared keys and arguments first, then each item's, and returns a list with one reply
per item.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

Args = Sequence[str | int | float | bytes]
# Items per script call at most: Redis runs nothing else while a script runs.
MOST_PER_CALL = 128


class CoalescedScript:
    """Call like a registered script, once per item: `await script(keys=[...], args=[...])`."""

    def __init__(self, redis: Redis, source: str, shared_keys: Args, shared_args: Args) -> None:
        self._redis, self._source = redis, source
        self._shared_keys, self._shared_args = list(shared_keys), list(shared_args)
        self._sha = hashlib.sha1(source.encode()).hexdigest()
        self._pending: list[tuple[Args, Args, asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def __call__(self, keys: Args, args: Args) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending and not self._sending:
            loop.call_soon(self._flush)
        self._pending.append((keys, args, future))
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for first in range(0, len(pending), MOST_PER_CALL):
            task = asyncio.ensure_future(self._send(pending[first : first + MOST_PER_CALL]))
            self._sending.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if self._pending and not self._sending:  # what arrived meanwhile goes now
            self._flush()

    async def _send(self, items: list[tuple[Args, Args, asyncio.Future[Any]]]) -> None:
        try:
            try:
                replies = await self._execute(items)
            except NoScriptError:  # Redis restarted and lost its scripts
                await self._redis.script_load(self._source)
                replies = await self._execute(items)
        except Exception as exc:
            replies = [exc] * len(items)
        for (_, _, future), reply in zip(items, replies, strict=True):
            if future.done():  # its request went away
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _execute(self, items: list[tuple[Args, Args, asyncio.Future[Any]]]) -> list[Any]:
        keys = [*self._shared_keys, *(key for item_keys, _, _ in items for key in item_keys)]
        args = [*self._shared_args, *(arg for _, item_args, _ in items for arg in item_args)]
        replies: list[Any] = await self._redis.evalsha(self._sha, len(keys), *keys, *args)
        return replies
