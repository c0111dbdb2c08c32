"""Runs one batch: maybe wait for more inputs, one model call, settle every job, under a lease."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar, cast

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config import Settings
from core.batching import ArrivalRate, policy_for
from core.jobs import JobError, now_ts
from core.keys import RedisKeys
from core.models import ModelRegistry, time_limit_s
from core.predict import ItemOutcome, predict_batch
from worker import metrics, scripts
from worker.batches import Batch, ServedQueue, Taken, WorkSource
from worker.history import TALLY
from worker.identity import claim_field
from worker.settle import finish_call, settled_beyond
from worker.timelimit import time_limit

log = logging.getLogger(__name__)
WORKER_LOST = JobError(code="worker_lost", message="the worker running the job was lost")
T = TypeVar("T")


def served_queues(keys: RedisKeys, models: ModelRegistry, settings: Settings) -> list[ServedQueue]:
    """One queue per loaded model version, each with its batching policy."""
    return [
        ServedQueue(
            model.name,
            model.version,
            keys.queue(model.name, model.version),
            policy_for(model, settings.batch_max_size, settings.batch_max_wait_ms),
        )
        for model in models
    ]


class ComputationRunner:
    """Per worker process: the loaded models, the queues they serve, and the scripts."""

    def __init__(
        self,
        redis: Redis,
        keys: RedisKeys,
        models: ModelRegistry,
        settings: Settings,
        worker_id: str,
        huey_queue: str,
    ) -> None:
        self.keys, self.models, self.settings, self.worker_id = keys, models, settings, worker_id
        self.queues = served_queues(keys, models, settings)
        self.source = WorkSource(
            redis,
            keys,
            self.queues,
            worker_id,
            huey_queue,
            settings.heartbeat_ttl_s,
            settings.lifo_after_s,
        )
        self.arrivals = ArrivalRate()
        self._offered: ModelRegistry | None = None
        # What runs now, for the dashboard: model, batch size, since, its (first) job ids.
        self.current: tuple[str, int, float, list[str]] | None = None
        self.jobs_done = 0
        self._finish = redis.register_script(scripts.FINISH)
        self._publish = redis.publish
        self._reap = redis.register_script(scripts.REAP)
        self._untake = redis.register_script(scripts.UNTAKE)
        # Per consumer thread: the batch taken in FINISH's round trip, to run next.
        self._prefetched: dict[str, Taken] = {}

    def offer(self, models: ModelRegistry) -> None:
        """Serve `models` from the next take on (another thread loaded them)."""
        self._offered = models

    def _switch(self, models: ModelRegistry) -> None:
        # In the worker thread, between batches: a batch in hand keeps its model object,
        # so it finishes on the version it started with.
        kept = {(q.model, q.version): q for q in self.queues}
        fresh = served_queues(self.keys, models, self.settings)
        self.queues = [kept.get((q.model, q.version), q) for q in fresh]
        self.models, self.source.queues = models, self.queues
        log.info("serving models %s", sorted(f"{q.model}@{q.version}" for q in self.queues))

    def take(self) -> Batch | bytes | None:
        """The next batch for this thread, a huey task message, or None."""
        prefetched = self._prefetched.pop(claim_field(), None)
        if prefetched is not None:  # taken before any models were offered: run it first
            self._account(prefetched)
            return prefetched.batch
        offered, self._offered = self._offered, None
        if offered is not None:
            self._switch(offered)
        taken = self.source.take(self.keys.lease(claim_field()))
        if taken is None or isinstance(taken, bytes):
            return taken
        self._account(taken)
        return taken.batch

    def run(self, batch: Batch) -> None:
        """Run and settle a batch; a failure of inferq's own fails its jobs, never strands them."""
        try:
            self._fill(batch)
            outcomes, elapsed = self._predict(batch)
        except Exception as exc:
            log.exception("batch of %s failed outside the model", batch.queue.model)
            failure = ItemOutcome(error=JobError(code="internal_error", message=repr(exc)[:500]))
            outcomes, elapsed = [failure] * len(batch.computations), 0.0
        self._finish_batch(batch, outcomes, elapsed)

    def _predict(self, batch: Batch) -> tuple[list[ItemOutcome], float]:
        model = batch.queue.model
        ids = ",".join(job_id for job_id, _, _ in batch.started)
        log.info(
            "jobs %s running model=%s batch=%d worker=%s",
            ids,
            model,
            len(batch.computations),
            self.worker_id,
        )
        metrics.BATCH_SIZE.labels(model, "queued").observe(len(batch.computations))
        metrics.BATCH_FORM_WAIT.labels(model, "queued").observe(time.monotonic() - batch.taken_at)
        TALLY.batch(time.time(), "queued", len(batch.computations))
        leaders = [job_id for job_id, _, _ in batch.started[:5]]
        self.current = (model, len(batch.computations), time.time(), leaders)
        began = time.perf_counter()
        served = self.models.get(f"{model}@{batch.queue.version}")
        limit_s = time_limit_s(served, self.settings.model_timeout_s)
        with metrics.JOBS_IN_FLIGHT.labels(model).track_inprogress(), time_limit(limit_s):
            outcomes = predict_batch(served, [c.input_json for c in batch.computations])
            elapsed = time.perf_counter() - began
        metrics.RUN_TIME.labels(model).observe(elapsed)
        return outcomes, elapsed

    def _finish_batch(self, batch: Batch, outcomes: list[ItemOutcome], elapsed: float) -> None:
        model = batch.queue.model
        began = time.perf_counter()
        stats = batch.queue.recent.observe(
            elapsed * 1000 / len(outcomes), elapsed * 1000, time.monotonic()
        )
        call = finish_call(self.keys, self.settings, batch, outcomes, elapsed, stats)
        keys, args, told, message = call.keys, call.args, call.told, call.message
        # Counted before FINISH runs, since it may publish the answers itself: a client
        # that has its answer and then reads /metrics finds its job counted.
        self._count_settled(batch, told)
        if message or self._offered is not None:  # publish first; or switch models first
            exact, flat = _with_retries(lambda: self._finish(keys=keys, args=args))
        else:
            exact, flat = self._finish_and_take(batch, keys, args)
        listed = settled_beyond(batch, [v.decode() for v in flat])
        if exact != b"1":
            # A lease taken back: FINISH listed the told jobs it still settled. One it did
            # not (settled again elsewhere, or its record expired) was counted all the same.
            still = {job_id for job_id, _, _ in listed}
            told = [t for t in told if t[0] in still]
        elif message:  # after FINISH: a retried FINISH would find the lease gone
            _with_retries(lambda: self._publish(self.keys.done_channel, message))
        counted = {job_id for job_id, _, _ in told}
        listed = [s for s in listed if s[0] not in counted]
        self._count_settled(batch, listed)
        self.current = None
        self._log_settled(batch, told + listed, elapsed)
        # The cost of a batch includes its settle round trip: the fixed cost batching saves.
        cost = elapsed + time.perf_counter() - began
        batch.queue.policy.observe(len(batch.computations), cost)
        metrics.BATCH_TARGET.labels(model, "queued").set(batch.queue.policy.target)

    def _log_settled(
        self, batch: Batch, settled: list[tuple[str, str, str]], elapsed: float
    ) -> None:
        done = {job_id for job_id, _, _ in settled}
        for job_id, _, _ in batch.started:
            if job_id not in done:
                log.info("job %s failed transiently; queued to retry", job_id)
        for job_id, _, status in settled:
            log.info(
                "job %s %s in %.1f ms model=%s batch=%d worker=%s",
                job_id,
                status,
                elapsed * 1000,
                batch.queue.model,
                len(batch.computations),
                self.worker_id,
            )

    def _finish_and_take(
        self, batch: Batch, keys: list[str], args: list[str | int | float]
    ) -> tuple[bytes, list[bytes]]:
        """FINISH, and take this thread's next batch in the same round trip."""
        # Under the other of the thread's two lease names: if the reply is lost, the
        # batch's own FINISH can run again without touching what the take leased.
        lease = batch.lease[:-1] if batch.lease.endswith("+") else batch.lease + "+"
        try:
            finished, reply = self.source.finish_and_take(self._finish, keys, args, lease)
        except (RedisConnectionError, RedisTimeoutError):
            # The reply was lost, so either may have run: what the take leased goes back,
            # and FINISH runs again (a no-op once its lease is gone).
            self._hand_back(lease)
            finished = _with_retries(lambda: self._finish(keys=keys, args=args))
            return cast(tuple[bytes, list[bytes]], finished)
        # A pipeline runs every command: each reply stands alone.
        if isinstance(reply, Exception):
            self._hand_back(lease)  # a script that failed midway may have leased some
            if not isinstance(reply, NoScriptError):
                log.warning("taking the next batch after FINISH failed: %r", reply)
        else:
            taken = self.source.taken(reply, lease)
            if isinstance(taken, Taken):
                self._prefetched[claim_field()] = taken
        if isinstance(finished, NoScriptError):  # Redis lost its scripts (a restart)
            finished = _with_retries(lambda: self._finish(keys=keys, args=args))
        elif isinstance(finished, Exception):
            raise finished
        return cast(tuple[bytes, list[bytes]], finished)

    def release_prefetched(self) -> None:
        """Hand back this thread's batch taken after FINISH and not started (at shutdown)."""
        taken = self._prefetched.pop(claim_field(), None)
        if taken is not None and taken.batch is not None:
            self._hand_back(taken.batch.lease)

    def _hand_back(self, lease: str) -> None:
        keys = [self.keys.leases, self.keys.queue_tokens]
        requeued = _with_retries(
            lambda: self._untake(keys=keys, args=[self.keys.job_prefix, lease])
        )
        if requeued:
            log.info("jobs %s queued again, not started", ",".join(v.decode() for v in requeued))

    def _count_settled(self, batch: Batch, settled: list[tuple[str, str, str]]) -> None:
        model, now = batch.queue.model, time.time()
        created = {job_id: float(at) for job_id, _, at in batch.started}
        for job_id, priority, status in settled:
            metrics.JOBS_FINISHED.labels(model, priority, status).inc()
            if job_id in created:
                TALLY.finished(now, "queued", status, now - created[job_id])
                metrics.JOB_LATENCY.labels(model).observe(now - created[job_id])
            else:  # a job attached to the computation: it shares the leader's run
                TALLY.add(now, f"{status}:queued")
            self.jobs_done += 1

    def release(self, batch: Batch) -> None:
        """Hand an interrupted batch back to the queue (SIGTERM mid-run)."""
        requeued, failed = self._reap_leases(only=batch.lease)
        log.warning("interrupted: re-enqueued jobs %s, failed %s", requeued, failed)

    def reap(self) -> None:
        """Re-enqueue the work of workers whose heartbeat has gone stale."""
        requeued, failed = self._reap_leases(only="")
        if requeued or failed:
            log.warning("worker lost: re-enqueued jobs %s, failed %s", requeued, failed)

    def _fill(self, batch: Batch) -> None:
        """Delayed batching: hold a partial batch for more inputs when that pays."""
        policy = batch.queue.policy
        wait = policy.wait_s(
            len(batch.computations), self.arrivals.rate, batch.others_idle, batch.others_queued
        )
        if wait <= 0:
            return
        time.sleep(wait)
        more = self.source.take_more(batch, policy.target - len(batch.computations))
        self._account(more)
        if more.batch is not None:
            batch.computations += more.batch.computations
            batch.started += more.batch.started

    def _account(self, taken: Taken) -> None:
        if taken.arrivals >= 0:  # TAKE reads the count for a batch short of its target only
            self.arrivals.update(taken.arrivals, time.monotonic())
        for job_id, priority, _ in taken.expired:
            log.info("job %s expired before it started", job_id)
            metrics.JOBS_FINISHED.labels(taken.queue.model, priority, "expired").inc()
            TALLY.add(time.time(), "expired:queued")
        if taken.batch is None:
            return
        now = time.time()
        for _, priority, created_at in taken.batch.started:
            metrics.JOBS_STARTED.labels(taken.batch.queue.model, priority).inc()
            metrics.QUEUE_WAIT.labels(taken.batch.queue.model).observe(now - float(created_at))
            TALLY.waited(now, now - float(created_at))

    def _reap_leases(self, only: str) -> tuple[list[str], list[str]]:
        requeued, failed = self._reap(
            keys=[self.keys.leases, self.keys.heartbeats, self.keys.queue_tokens],
            args=[
                self.keys.job_prefix,
                now_ts(),
                self.settings.heartbeat_ttl_s,
                self.settings.max_attempts,
                self.keys.done_channel,
                WORKER_LOST.model_dump_json(),
                only,
            ],
        )
        return [i.decode() for i in requeued], [i.decode() for i in failed]


def _with_retries(call: Callable[[], T], give_up_s: float = 120.0) -> T:
    """Retry through a Redis outage: a lost write here would strand the jobs."""
    deadline = time.monotonic() + give_up_s
    for delay in _backoff():
        try:
            return call()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("redis unavailable (%s); retrying in %.1fs", exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _backoff() -> Iterator[float]:
    delay = 0.1
    while True:
        yield delay
        delay = min(delay * 2, 2.0)
