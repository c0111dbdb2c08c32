"""Runs one computation: settle its jobs' records around one model call, under a lease."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config import Settings
from core.errors import InferqError, ModelError
from core.jobs import DEADLINE_EXCEEDED, JobError, JobStatus, now_ts
from core.keys import RedisKeys
from core.models import ModelRegistry
from worker import metrics, scripts
from worker.identity import claim_field
from worker.payload import ComputationPayload

log = logging.getLogger(__name__)
EXPIRED_ERROR = DEADLINE_EXCEEDED.model_dump_json()
WORKER_LOST = JobError(code="worker_lost", message="the worker running the job was lost")
T = TypeVar("T")
Encoder = Callable[[ComputationPayload], tuple[bytes, int]]


@dataclass
class Outcome:
    status: JobStatus
    result_json: str = ""
    error_json: str = ""


class ComputationRunner:
    """Per worker process: the loaded models and the scripts that move job records.

    `encode` turns a payload into the queue message that re-enqueues it, kept
    with the lease so another consumer can re-run the job if this one dies.
    """

    def __init__(
        self,
        redis: Redis,
        keys: RedisKeys,
        models: ModelRegistry,
        settings: Settings,
        worker_id: str,
        encode: Encoder,
        queue_key: str,
    ) -> None:
        self.keys, self.models, self.settings, self.worker_id = keys, models, settings, worker_id
        self._encode, self._queue_key = encode, queue_key
        self._start = redis.register_script(scripts.START)
        self._finish = redis.register_script(scripts.FINISH)
        self._reap = redis.register_script(scripts.REAP)

    def run(self, payload: ComputationPayload) -> None:
        started_at = now_ts()
        computation = self.keys.computation(payload["computation"])
        message, score = self._encode(payload)
        started, expired = _with_retries(
            lambda: self._start(
                keys=[
                    computation,
                    self.keys.done_channel,
                    self.keys.leases,
                    self.keys.lease(computation),
                    self.keys.claims,
                ],
                args=[
                    self.keys.job_prefix,
                    self.worker_id,
                    started_at,
                    payload["leader"],
                    EXPIRED_ERROR,
                    score,
                    message,
                    claim_field(),
                ],
            )
        )
        model = payload["model"]
        for job_id, priority, _ in _triples(expired):
            log.info("job %s expired before it started", job_id)
            metrics.JOBS_FINISHED.labels(model, priority, "expired").inc()
        if not started:
            log.info("computation %s skipped: no queued job left", payload["computation"])
            return
        for job_id, priority, created_at in _triples(started):
            metrics.JOBS_STARTED.labels(model, priority).inc()
            metrics.QUEUE_WAIT.labels(model).observe(float(started_at) - float(created_at))
            log.info("job %s running model=%s worker=%s", job_id, model, self.worker_id)
        with metrics.JOBS_IN_FLIGHT.track_inprogress():
            began = time.perf_counter()
            outcome = self._predict(payload)
            elapsed = time.perf_counter() - began
        metrics.RUN_TIME.labels(model).observe(elapsed)
        settled = _with_retries(lambda: self._settle(payload, outcome, started_at, elapsed))
        for job_id, priority in settled:
            metrics.JOBS_FINISHED.labels(model, priority, outcome.status.value).inc()
            log.info("job %s %s in %.1f ms", job_id, outcome.status, elapsed * 1000)

    def release(self, payload: ComputationPayload) -> None:
        """Hand an interrupted computation back to the queue (SIGTERM mid-run)."""
        computation = self.keys.computation(payload["computation"])
        requeued, failed = self._reap_leases(only=computation)
        log.warning("interrupted: re-enqueued jobs %s, failed %s", requeued, failed)

    def reap(self) -> None:
        """Re-enqueue the work of workers whose heartbeat has gone stale."""
        requeued, failed = self._reap_leases(only="")
        if requeued or failed:
            log.warning("worker lost: re-enqueued jobs %s, failed %s", requeued, failed)

    def _reap_leases(self, only: str) -> tuple[list[str], list[str]]:
        requeued, failed, restored = self._reap(
            keys=[
                self.keys.leases,
                self.keys.heartbeats,
                self._queue_key,
                self.keys.claims,
                self.keys.queue_tokens,
            ],
            args=[
                self.keys.job_prefix,
                self.keys.lease(""),
                now_ts(),
                self.settings.heartbeat_ttl_s,
                self.settings.max_attempts,
                self.keys.done_channel,
                WORKER_LOST.model_dump_json(),
                only,
            ],
        )
        if restored:
            log.warning("worker lost: put back %d message(s) it had popped", restored)
        return [_text(i) for i in requeued], [_text(i) for i in failed]

    def _predict(self, payload: ComputationPayload) -> Outcome:
        try:
            model = self.models.get(payload["model"])
            if model.version != payload["model_version"]:
                raise _VersionMismatch(
                    f"job wants {payload['model']} {payload['model_version']}, "
                    f"worker has {model.version}"
                )
            item = model.input_schema.model_validate_json(payload["input_json"])
            [output] = model.predict([item])
            return Outcome(JobStatus.SUCCEEDED, result_json=json.dumps(output))
        except InferqError as exc:
            return _failed(exc.code, exc.message)
        except Exception as exc:
            log.exception("model %s failed on job %s", payload["model"], payload["leader"])
            return _failed(ModelError.code, f"{type(exc).__name__}: {exc}"[:500])

    def _settle(
        self, payload: ComputationPayload, outcome: Outcome, started_at: str, elapsed: float
    ) -> list[tuple[str, str]]:
        share_ttl = self.settings.result_cache_ttl_s if payload["result_key"] else 0
        computation = self.keys.computation(payload["computation"])
        settled = self._finish(
            keys=[
                computation,
                payload["result_key"] or "-",
                self.keys.stats,
                self.keys.leases,
                self.keys.lease(computation),
            ],
            args=[
                self.keys.job_prefix,
                outcome.status.value,
                outcome.result_json,
                outcome.error_json,
                now_ts(),
                share_ttl,
                self.keys.done_channel,
                started_at,
                payload["leader"],
                f"{elapsed * 1000:.3f}",
            ],
        )
        flat = [_text(v) for v in settled]
        return list(zip(flat[::2], flat[1::2], strict=True))


class _VersionMismatch(InferqError):
    code = "model_version_mismatch"


def _with_retries(call: Callable[[], T], give_up_s: float = 120.0) -> T:
    """Retry through a Redis outage: a lost write here would strand the job."""
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


def _failed(code: str, message: str) -> Outcome:
    error: dict[str, Any] = {"code": code, "message": message}
    return Outcome(JobStatus.FAILED, error_json=json.dumps(error))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _triples(flat: list[bytes]) -> list[tuple[str, str, str]]:
    values = [_text(v) for v in flat]
    return list(zip(values[::3], values[1::3], values[2::3], strict=True))
