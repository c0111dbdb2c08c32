"""CoalescedScript against a real redis-server: which calls share one script call."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio

from api.coalesce import COSTLY_PART, QUICK_PART, CoalescedScript
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


# Answers every item with its run's number and its own argument: whose reply is whose.
ECHO_SCRIPT = """
local run = redis.call('INCR', KEYS[1])
local replies = {}
for i = 1, #ARGV do replies[i] = run .. ':' .. ARGV[i] end
return replies
"""


def _burst(redis_server: RedisServer, count: int, quick: bool, turns: int = 1) -> list[str]:
    """`count` calls made in one turn of the loop, `turns` times over; each one's reply."""

    async def go() -> list[str]:
        client = redis.asyncio.Redis.from_url(redis_server.url)
        await client.script_load(ECHO_SCRIPT)
        script = CoalescedScript(client, ECHO_SCRIPT, [unique("runs")], [])
        calls: list[asyncio.Future[Any]] = []
        for turn in range(turns):
            calls += [
                asyncio.ensure_future(script(keys=[], args=[str(i)], quick=quick))
                for i in range(turn * count, (turn + 1) * count)
            ]
            await asyncio.sleep(0.05)  # the next burst comes in a later turn
        replies = await asyncio.gather(*calls)
        await client.aclose()
        return [r.decode() for r in replies]

    return asyncio.run(go())


def _call_sizes(replies: list[str], count: int) -> list[int]:
    """How many items each script call carried, in call order, after checking each reply
    is its caller's."""
    assert [r.split(":")[1] for r in replies] == [str(i) for i in range(count)]
    runs = [int(r.split(":")[0]) for r in replies]
    return [runs.count(run) for run in sorted(set(runs))]


def test_the_first_part_of_a_burst_goes_within_its_turn_the_rest_at_its_end(
    redis_server: RedisServer,
) -> None:
    assert (QUICK_PART, COSTLY_PART) == (16, 32)
    assert _call_sizes(_burst(redis_server, 50, quick=True), 50) == [16, 34]
    assert _call_sizes(_burst(redis_server, 50, quick=False), 50) == [32, 18]


def test_only_one_part_goes_early_per_turn_and_every_turn_may_send_one(
    redis_server: RedisServer,
) -> None:
    # A model call costs its fixed part once per batch: a second early part would be a
    # second batch. The next turn's burst again sends its first part at once.
    sizes = _call_sizes(_burst(redis_server, 80, quick=True, turns=2), 160)
    assert sizes == [16, 64, 16, 64]


def test_a_burst_short_of_a_part_goes_as_one_call_at_the_end_of_its_turn(
    redis_server: RedisServer,
) -> None:
    assert _call_sizes(_burst(redis_server, 10, quick=True), 10) == [10]
    assert _call_sizes(_burst(redis_server, 31, quick=False), 31) == [31]
