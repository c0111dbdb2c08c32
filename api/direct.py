"""The direct path: models run in this API process's own process pool, batched, with shedding.

Concurrent /predict requests for one model are gathered here and sent to a pool
process as one call, the way BentoML's runner does; the batching policy is the
consumers' (`core.batching`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from api.metrics import DIRECT_IN_FLIGHT, DIRECT_SHED, DIRECT_WAITING
from api.modelpool import ModelProcess, started_process
from config import Settings
from core.batching import ArrivalRate, BatchPolicy, policy_for
from core.errors import (
    ClientLeftError,
    DeadlineExceededError,
    DeadlineUnmeetableError,
    DirectPathBusyError,
    InferqError,
    ModelError,
    ModelProcessDiedError,
    ModelTimeoutError,
)
from core.models import ModelRegistry, spec_of, time_limit_s
from worker.history import TALLY
from worker.metrics import BATCH_FORM_WAIT, BATCH_SIZE, BATCH_TARGET, JOBS_REJECTED

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Request:
    input_json: str
    future: asyncio.Future[str]
    arrived: float
    expires: float = math.inf  # loop time by which the answer must be back
    solo: bool = False  # was in a batch that ran out of time: runs alone from now on


@dataclass
class _ModelLane:
    """The requests of one model waiting for a pool process, and how they batch."""

    policy: BatchPolicy
    waiting: deque[_Request] = field(default_factory=deque)
    pending: int = 0  # waiting plus running
    arrivals: ArrivalRate = field(default_factory=ArrivalRate)
    overlapping: int = 0
    timer: asyncio.TimerHandle | None = None  # set while a partial batch is held
    held_once: bool = False  # the waiting batch was held already: do not hold it again


class DirectPool:
    """Runs batches in `direct_workers` processes; refuses past the pending bound."""

    def __init__(self, settings: Settings, models: ModelRegistry) -> None:
        self._settings = settings
        self._workers = settings.direct_workers
        self._idle: list[ModelProcess] = []  # started in warm_up
        # One thread per model process waits on its pipe; never one per request.
        self._threads = ThreadPoolExecutor(self._workers + 1, thread_name_prefix="direct")
        # Keyed by `name@version`: each version has its own lane and batches.
        self._limits = {spec_of(m): time_limit_s(m, settings.model_timeout_s) for m in models}
        self._lanes = {
            spec_of(model): _ModelLane(
                policy_for(model, settings.batch_max_size, settings.batch_max_wait_ms)
            )
            for model in models
        }
        self._service_s = 0.0  # recent mean time of a batch, for Retry-After
        self._running: set[asyncio.Future[None]] = set()
        self._published: dict[str, tuple[int, int]] = {}  # per model: in flight, waiting
        self._all: list[ModelProcess] = []
        self._retired: set[ModelProcess] = set()  # loaded before a reload: stop when done

    async def warm_up(self) -> None:
        """Start every model process and load its models before the first request."""
        started = await asyncio.gather(*(self._start_process() for _ in range(self._workers)))
        self._idle.extend(started)

    async def _start_process(self) -> ModelProcess:
        loop = asyncio.get_running_loop()
        settings = self._settings
        process = await loop.run_in_executor(
            self._threads,
            started_process,
            settings.models,
            settings.burn_iterations_per_ms,
            settings.model_dir,
        )
        self._all.append(process)
        return process

    async def _replace(self, dead: ModelProcess) -> None:
        """Start a model process in place of one that was killed, then serve with it."""
        self._all.remove(dead)
        if dead in self._retired:  # it was leaving anyway: its successor is running
            self._retired.discard(dead)
            return
        began = time.monotonic()
        self._idle.append(await self._start_process())
        log.warning(
            "direct-path model process replaced in %.0f ms", 1000 * (time.monotonic() - began)
        )
        self._dispatch()

    async def reload(self, models: ModelRegistry) -> None:
        """Serve `models`: new processes load them beside the old, then take over.

        An old process running a batch finishes it on the version it started with and
        then stops; requests waiting in a lane go to the new processes.
        """
        fresh = await asyncio.gather(*(self._start_process() for _ in range(self._workers)))
        for model in models:
            spec = spec_of(model)
            self._limits[spec] = time_limit_s(model, self._settings.model_timeout_s)
            if spec not in self._lanes:
                policy = policy_for(
                    model, self._settings.batch_max_size, self._settings.batch_max_wait_ms
                )
                self._lanes[spec] = _ModelLane(policy)
        retiring = [p for p in self._all if p not in fresh]
        self._retired.update(retiring)
        idle, self._idle = self._idle, list(fresh)
        for process in idle:
            self._all.remove(process)
            self._retired.discard(process)
            await asyncio.get_running_loop().run_in_executor(self._threads, process.stop)
        self._dispatch()

    def close(self) -> None:
        for process in self._all:
            process.stop()
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def predict(
        self,
        model: str,
        input_json: str,
        deadline_s: float | None = None,
        client_left: Callable[[], Awaitable[None]] | None = None,
    ) -> str:
        """The output as JSON of `model` (`name@version`).

        Refuses with DirectPathBusyError past the pending bound, DeadlineUnmeetableError
        when the estimated wait plus run exceeds `deadline_s`; a request that waits
        until it can no longer finish in time fails with DeadlineExceededError, and one
        whose client leaves before its turn is dropped.
        """
        lane = self._lanes[model]
        self._shed_if_full(model, lane)
        loop = asyncio.get_running_loop()
        request = _Request(input_json, loop.create_future(), loop.time())
        if deadline_s is not None:
            self._admit_deadline(model, lane, deadline_s)
            request.expires = request.arrived + deadline_s
        # Only arrivals that overlap other pending work can ever join a held batch;
        # a lone client's never do, so it is never held.
        lane.overlapping += any(other.pending for other in self._lanes.values())
        lane.arrivals.update(lane.overlapping, request.arrived)
        lane.waiting.append(request)
        lane.pending += 1
        self._dispatch()
        # After the dispatch, which may have sent it (and others) to a pool process: before
        # it, a request that ran at once counted as waiting until it finished.
        self._publish_gauges()
        watcher = timer = None
        if not request.future.done() and request in lane.waiting:
            if client_left is not None:
                watcher = asyncio.ensure_future(client_left())
                watcher.add_done_callback(
                    lambda _: _drop_if_waiting(lane, request, ClientLeftError("client left"))
                )
            if deadline_s is not None:
                # Answer at the last moment it could still have started, not at its client's
                # timeout: a newest-first lane may never reach it.
                late = DeadlineExceededError("it could not start in time to meet its deadline", 1)
                last_start = request.expires - lane.policy.expected_s(lane.policy.target)
                timer = loop.call_at(last_start, _drop_if_waiting, lane, request, late)
        try:
            return await request.future
        finally:
            lane.pending -= 1
            for pending in (watcher, timer):
                if pending is not None:
                    pending.cancel()
            self._publish_gauges()

    def _admit_deadline(self, model: str, lane: _ModelLane, deadline_s: float) -> None:
        """Refuse now what cannot finish in time: batches ahead over the pool, plus its own."""
        batch_s = lane.policy.expected_s(lane.policy.target)
        ahead = math.ceil(lane.pending / lane.policy.target)
        wait_s = ahead * batch_s / self._workers
        if wait_s + batch_s <= deadline_s:
            return
        JOBS_REJECTED.labels(_name(model), "normal", "deadline").inc()
        raise DeadlineUnmeetableError(
            f"estimated wait {wait_s:.2f}s plus run {batch_s:.2f}s exceeds the deadline "
            f"of {deadline_s:g}s",
            math.ceil(wait_s + batch_s - deadline_s),
        )

    def _shed_if_full(self, model: str, lane: _ModelLane) -> None:
        # A pool process serves a whole batch at a time, so the bound is in batches.
        limit = self._settings.direct_max_pending * lane.policy.target
        if not self._settings.direct_shedding or lane.pending < limit:
            return
        DIRECT_SHED.labels(_name(model)).inc()
        # /predict has no priority; "normal" is what its PreparedJob carries.
        JOBS_REJECTED.labels(_name(model), "normal", "shed").inc()
        batches = lane.pending / lane.policy.target
        retry = max(1, math.ceil(batches * self._service_s / self._workers))
        raise DirectPathBusyError(
            f"{lane.pending} predictions of {model} are running or waiting (limit {limit})", retry
        )

    def _dispatch(self) -> None:
        """Send batches to free pool processes, oldest waiting request first."""
        loop = asyncio.get_running_loop()
        while self._idle:
            ready = sorted(
                (item for item in self._lanes.items() if item[1].waiting),
                key=lambda item: item[1].waiting[0].arrived,
            )
            chosen = next(
                (item for item in ready if not self._should_hold(item[1], len(ready) > 1, loop)),
                None,
            )
            if chosen is None:
                return
            name, lane = chosen
            batch = self._take_batch(lane, loop.time())
            if not batch:
                continue
            BATCH_FORM_WAIT.labels(_name(name), "direct").observe(loop.time() - batch[0].arrived)
            self._spawn(self._run(name, lane, batch, self._idle.pop()))

    def _take_batch(self, lane: _ModelLane, now: float) -> list[_Request]:
        """The next batch of a lane: FIFO, or newest first once the lane is standing.

        Adaptive LIFO (see worker/scripts.py TAKE): once the oldest request has waited
        longer than `lifo_after_s`, its client has likely given up, so serve the newest.
        Requests that could no longer finish before their deadline fail here.
        """
        standing = self._settings.lifo_after_s
        pop = lane.waiting.popleft
        size = min(lane.policy.target, len(lane.waiting))
        if lane.waiting[0].solo:
            size = 1
        elif standing and now - lane.waiting[0].arrived > standing:
            pop = lane.waiting.pop
        batch = [pop() for _ in range(size)]
        lane.held_once = False
        finish_by = now + lane.policy.expected_s(len(batch))
        live = []
        for request in batch:
            if request.future.done():
                continue
            if request.expires < finish_by:
                request.future.set_exception(
                    DeadlineExceededError("it could no longer finish before its deadline", 1)
                )
                continue
            live.append(request)
        return live

    def _should_hold(
        self, lane: _ModelLane, others_queued: bool, loop: asyncio.AbstractEventLoop
    ) -> bool:
        """Hold a partial batch for more inputs when that pays (see BatchPolicy.wait_s)."""
        if lane.timer is not None:  # already holding: until full or the timer fires
            if len(lane.waiting) < lane.policy.target:
                return True
            lane.timer.cancel()
            lane.timer = None
            return False
        if lane.held_once:
            return False
        wait = lane.policy.wait_s(
            len(lane.waiting), lane.arrivals.rate, len(self._idle) > 1, others_queued
        )
        if wait <= 0:
            return False
        lane.timer = loop.call_later(wait, self._end_hold, lane)
        return True

    def _end_hold(self, lane: _ModelLane) -> None:
        lane.timer, lane.held_once = None, True  # this batch goes next, as it is
        self._dispatch()

    async def _run(
        self, model: str, lane: _ModelLane, batch: list[_Request], process: ModelProcess
    ) -> None:
        loop = asyncio.get_running_loop()
        BATCH_SIZE.labels(_name(model), "direct").observe(len(batch))
        TALLY.batch(time.time(), "direct", len(batch))
        began = loop.time()
        healthy = True
        try:
            outcomes = await loop.run_in_executor(
                self._threads,
                process.call,
                model,
                [r.input_json for r in batch],
                self._limits[model],
            )
        except (ModelTimeoutError, ModelProcessDiedError) as exc:
            healthy = False
            log.error("direct-path model process for %s lost: %s", model, exc.message)
            self._after_lost_process(lane, batch, exc)
        except Exception as exc:
            log.error("model %s failed on the direct path: %r", model, exc)
            _fail_all(batch, ModelError(f"{type(exc).__name__}: {exc}"[:500]))
        else:
            for request, (result_json, error) in zip(batch, outcomes, strict=True):
                if request.future.done():
                    continue
                if error is None:
                    request.future.set_result(result_json)
                else:
                    request.future.set_exception(ModelError(error["message"], error["code"]))
        finally:
            elapsed = loop.time() - began
            lane.policy.observe(len(batch), elapsed)
            BATCH_TARGET.labels(_name(model), "direct").set(lane.policy.target)
            self._service_s = (
                elapsed if not self._service_s else 0.8 * self._service_s + 0.2 * elapsed
            )
            if healthy and process in self._retired:
                self._retired.discard(process)
                self._all.remove(process)
                self._spawn(asyncio.to_thread(process.stop))
            elif healthy:
                self._idle.append(process)
            else:
                self._spawn(self._replace(process))
            self._dispatch()

    def _after_lost_process(self, lane: _ModelLane, batch: list[_Request], exc: Exception) -> None:
        """Which requests of a killed process's batch fail, and which run again alone."""
        if isinstance(exc, ModelTimeoutError) and len(batch) > 1:
            # The batch ran out of time: rerun each input alone, so only the one that
            # hangs fails (with its own full time limit).
            for request in reversed(batch):
                request.solo = True
                lane.waiting.appendleft(request)
            return
        if isinstance(exc, ModelTimeoutError):
            _fail_all(batch, exc)
        else:
            _fail_all(batch, DirectPathBusyError("the model process died; retry", 1))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._running.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._running.discard)

    def _publish_gauges(self) -> None:
        # Only the counts that changed: a dispatch may move any model's requests, but
        # setting every model's two gauges twice per request cost /predict 7% of the API's
        # CPU at 32 connections (a multiprocess gauge write is a locked mmap write).
        counts: dict[str, tuple[int, int]] = {}
        for spec, lane in self._lanes.items():
            name = _name(spec)
            running, waiting = counts.get(name, (0, 0))
            counts[name] = (running + lane.pending - len(lane.waiting), waiting + len(lane.waiting))
        for name, now in counts.items():
            if self._published.get(name) != now:
                self._published[name] = now
                DIRECT_IN_FLIGHT.labels(name).set(now[0])
                DIRECT_WAITING.labels(name).set(now[1])


def _drop_if_waiting(lane: _ModelLane, request: _Request, error: InferqError) -> None:
    """If the request has not been sent to a pool process yet, fail it with `error`."""
    if request in lane.waiting and not request.future.done():
        lane.waiting.remove(request)
        request.future.set_exception(error)


def _fail_all(batch: list[_Request], error: InferqError) -> None:
    for request in batch:
        if not request.future.done():
            request.future.set_exception(error)


def _name(spec: str) -> str:
    """The model name of a `name@version`, as metrics label it."""
    return spec.partition("@")[0]
