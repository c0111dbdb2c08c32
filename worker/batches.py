"""Taking work off the queues: a BLPOP on the tokens plus TAKE, or a TAKE behind FINISH."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.batching import BatchPolicy
from core.jobs import BAND_WIDTH, DEADLINE_EXCEEDED
from core.keys import RedisKeys
from worker import scripts
from worker.payload import Computation

EXPIRED_ERROR = DEADLINE_EXCEEDED.model_dump_json()


class RecentCost:
    """A queue's recent model time per computation and per batch, as admission reads them.

    Exponentially weighted means (a fifth of each new batch), kept by the consumer and
    written to the shared stats hash with FINISH only when one moved by a fifth since it
    was last written, or a second has passed: reading and weighing them in Redis on every
    FINISH cost Redis more than anything else in an unbatched settle but the job writes.
    """

    WEIGHT, MOVED, EVERY_S = 0.2, 0.2, 1.0

    def __init__(self) -> None:
        self.cost_ms: float | None = None
        self.run_ms: float | None = None
        self._written: tuple[float, float] | None = None
        self._written_at = 0.0

    def observe(self, cost_ms: float, run_ms: float, now: float) -> tuple[str, str]:
        """Weigh one batch in; the two means to write now, or ('', '') for none."""
        w = self.WEIGHT
        self.cost_ms = cost_ms if self.cost_ms is None else self.cost_ms * (1 - w) + cost_ms * w
        self.run_ms = run_ms if self.run_ms is None else self.run_ms * (1 - w) + run_ms * w
        if self._written is not None and now - self._written_at < self.EVERY_S:
            cost_was, run_was = self._written
            if not (_moved(self.cost_ms, cost_was) or _moved(self.run_ms, run_was)):
                return "", ""
        self._written, self._written_at = (self.cost_ms, self.run_ms), now
        return f"{self.cost_ms:.4f}", f"{self.run_ms:.4f}"


def _moved(value: float, was: float) -> bool:
    return abs(value - was) > RecentCost.MOVED * max(abs(was), 1e-6)


@dataclass
class ServedQueue:
    """A model version this consumer serves: its queue, batching policy and recent cost."""

    model: str
    version: str
    key: str
    policy: BatchPolicy
    recent: RecentCost = field(default_factory=RecentCost)


@dataclass
class Batch:
    """Computations of one model version, leased to this consumer thread."""

    queue: ServedQueue
    lease: str
    computations: list[Computation]
    started: list[tuple[str, str, str]]  # job id, priority, created_at
    others_queued: bool = False
    others_idle: bool = False
    taken_at: float = field(default_factory=time.monotonic)


@dataclass
class Taken:
    """One TAKE reply: a batch (maybe empty), jobs that expired, and the arrival count."""

    queue: ServedQueue
    batch: Batch | None
    expired: list[tuple[str, str, str]]
    arrivals: int  # the running count of overlapping arrivals; -1 when TAKE did not read it


class WorkSource:
    """Pops batches for the model queues of one consumer process."""

    def __init__(
        self,
        redis: Redis,
        keys: RedisKeys,
        queues: list[ServedQueue],
        worker_id: str,
        huey_queue: str,
        heartbeat_ttl_s: float,
        standing_queue_s: float,
        block_s: float = 1.0,
    ) -> None:
        self.redis, self.keys, self.queues, self.worker_id = redis, keys, queues, worker_id
        self.huey_queue, self.heartbeat_ttl_s, self.block_s = huey_queue, heartbeat_ttl_s, block_s
        self.standing_queue_s = standing_queue_s
        self._script = redis.register_script(scripts.TAKE)
        self._sha = self._script.sha

    def take(self, lease: str) -> Taken | bytes | None:
        """Block briefly for work; a huey task message, a batch, or None when idle."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.blpop([self.keys.queue_tokens], timeout=self.block_s)
        pipe.evalsha(self._sha, *self._take_args(lease, None, 0))
        try:
            reply = pipe.execute(raise_on_error=False)[-1]
        except RedisTimeoutError:
            return None
        if isinstance(reply, NoScriptError):  # a restarted Redis: load it, take again
            reply = self._take_alone(lease, None, 0)
        return self.taken(reply, lease)

    def finish_and_take(
        self, finish: Script, keys: list[str], args: list[Any], lease: str
    ) -> tuple[Any, Any]:
        """FINISH's reply and TAKE's (raw, or an exception): one round trip, neither raised."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.evalsha(finish.sha, len(keys), *keys, *args)
        pipe.evalsha(self._sha, *self._take_args(lease, None, 0, after_finish=True))
        finished, reply = pipe.execute(raise_on_error=False)
        return finished, reply

    def taken(self, reply: Any, lease: str) -> Taken | bytes | None:
        """TAKE's reply as a batch taken, a huey task message, or None."""
        if isinstance(reply, Exception):
            raise reply
        if not reply:
            return None
        if reply[0] == b"task":
            return bytes(reply[1])
        return self._parse(reply, lease)

    def take_more(self, batch: Batch, want: int) -> Taken:
        """Add up to `want` computations of the batch's model to it (after a wait)."""
        if batch.queue not in self.queues:  # a reload stopped serving it meanwhile
            return Taken(batch.queue, None, [], 0)
        return self._parse(self._take_alone(batch.lease, batch.queue, want), batch.lease)

    def _take_alone(self, lease: str, append_to: ServedQueue | None, want: int) -> Any:
        # EVALSHA through a registered Script: it loads the script when Redis lacks it.
        numkeys, *rest = self._take_args(lease, append_to, want)
        return self._script(keys=rest[:numkeys], args=rest[numkeys:])

    def _take_args(
        self, lease: str, append_to: ServedQueue | None, want: int, after_finish: bool = False
    ) -> list[Any]:
        """numkeys, keys, then arguments of TAKE (see worker/scripts.py)."""
        number = "-" if after_finish else ""
        if append_to is not None:
            number = str(self.queues.index(append_to) + 1)
        per_queue: list[int | str] = []
        for queue in self.queues:
            target = want if queue is append_to else queue.policy.target
            per_queue += [target, f"{queue.policy.expected_s(target):.4f}"]
        return [
            8 + len(self.queues),
            self.keys.queue_tokens,
            self.keys.leases,
            lease,
            self.huey_queue,
            self.keys.overlapping_arrivals,
            self.keys.heartbeats,
            self.keys.delayed,
            self.keys.solo,
            *(q.key for q in self.queues),
            self.worker_id,
            BAND_WIDTH,
            self.keys.job_prefix,
            EXPIRED_ERROR,
            self.keys.done_channel,
            self.heartbeat_ttl_s,
            number,
            self.standing_queue_s,
            *per_queue,
        ]

    def _parse(self, reply: list[Any], lease: str) -> Taken:
        _, number, flat, expired, others, busy, live, seq = reply
        queue = self.queues[int(number) - 1]
        batch = None
        if flat:
            computations = self._computations(flat)
            batch = Batch(
                queue,
                lease,
                computations,
                [job for c in computations for job in c.jobs()],
                others_queued=bool(others),
                others_idle=int(busy) < int(live),
            )
        return Taken(queue, batch, _triples(expired), int(seq))

    def _computations(self, flat: list[Any]) -> list[Computation]:
        """TAKE's leader, cache key, input, started per computation, as Computations."""
        found, at = [], 0
        while at < len(flat):
            raw_leader, raw_key, input_json, n = flat[at : at + 4]
            started = flat[at + 4 : at + 4 + n]
            at += 4 + n
            leader, cache_key = raw_leader.decode(), raw_key.decode()
            result_key = self.keys.result(cache_key) if cache_key else ""
            found.append(
                Computation(
                    self.keys.computation(cache_key or f"job:{leader}"),
                    leader,
                    cache_key,
                    result_key,
                    input_json.decode(),
                    tuple(v.decode() for v in started),
                )
            )
        return found


def _triples(flat: list[bytes]) -> list[tuple[str, str, str]]:
    values = [v.decode() for v in flat]
    return list(zip(values[::3], values[1::3], values[2::3], strict=True))
