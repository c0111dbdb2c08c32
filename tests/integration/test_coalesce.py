"""CoalescedScript against a real redis-server: which calls share one script call."""

from __future__ import annotations

import asyncio

import redis.asyncio

from api.coalesce import CoalescedScript
from tests.support.stack import RedisServer, unique

# Counts its own runs in KEYS[1] and answers every item with that run's number; an item
# whose argument is 'slow' holds Redis for about 300 ms first (so its call is in flight).
SCRIPT = """
local run = redis.call('INCR', KEYS[1])
local replies = {}
for i = 1, #ARGV do
  if ARGV[i] == 'slow' then
    local t = redis.call('TIME')
    local until_us = t[1] * 1000000 + t[2] + 300000
    repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] >= until_us
  end
  replies[i] = run
end
return replies
"""


def _runs(redis_server: RedisServer, *batches: list[str], answered: bool = False) -> list[int]:
    """Submit each batch in its own event-loop turn; the run number each item went in.

    With `answered`, each batch is submitted once the one before has its replies.
    """

    async def go() -> list[int]:
        client = redis.asyncio.Redis.from_url(redis_server.url)
        await client.script_load(SCRIPT)
        script = CoalescedScript(client, SCRIPT, [unique("runs")], [])
        calls: list[asyncio.Future[int]] = []
        for batch in batches:
            calls += [asyncio.ensure_future(script(keys=[], args=[arg])) for arg in batch]
            if answered:
                await asyncio.gather(*calls)
            else:
                await asyncio.sleep(0.01)  # the next batch comes in a later turn
        replies = await asyncio.gather(*calls)
        await client.aclose()
        return [int(r) for r in replies]

    return asyncio.run(go())


def test_calls_of_one_turn_go_as_one_script_call(redis_server: RedisServer) -> None:
    assert _runs(redis_server, ["a", "b", "c"]) == [1, 1, 1]


def test_a_lone_call_goes_at_once_and_later_turns_go_separately(
    redis_server: RedisServer,
) -> None:
    # Nothing waits for company: each call goes alone when nothing is in flight.
    assert _runs(redis_server, ["a"], ["b"], ["c"], answered=True) == [1, 2, 3]


def test_calls_made_while_one_is_in_redis_go_together_after_it(
    redis_server: RedisServer,
) -> None:
    # 'slow' holds Redis for 300 ms; the calls of the two turns meanwhile wait for its
    # reply, then go as one call, not one each.
    assert _runs(redis_server, ["slow"], ["b"], ["c", "d"]) == [1, 2, 2, 2]
