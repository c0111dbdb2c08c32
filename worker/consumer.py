"""huey's consumer, plus the hard time limit on model calls (see `worker.timelimit`)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from typing import Any

from huey.consumer import Consumer, Worker
from prometheus_client import CollectorRegistry, start_http_server

from config.logging import configure_logging
from core.jobs import JobError, now_ts
from core.keys import RedisKeys
from worker import metrics, scripts
from worker.identity import worker_identity
from worker.models import configured_models
from worker.timelimit import RunClock

log = logging.getLogger(__name__)


class InferqWorker(Worker):  # type: ignore[misc]
    """huey's worker loop, in a numbered slot of the consumer's run clock."""

    clock: RunClock | None = None
    slot = 0

    def initialize(self) -> None:
        if self.clock is not None:
            self.clock.enter(self.slot)
        super().initialize()


class InferqConsumer(Consumer):  # type: ignore[misc]
    """Kills a process worker whose model call runs past its limit, and replaces it."""

    worker_class = InferqWorker

    def __init__(self, huey: Any, keys: RedisKeys, **options: Any) -> None:
        self.keys, self.settings = keys, huey.settings
        # Before the workers fork: they inherit the directory and write their series there.
        self.metrics_dir = metrics.server_directory(self.settings.metrics_dir, "consumer")
        metrics.install(self.metrics_dir)
        workers = int(options.get("workers", 1))
        # Only a process can be killed: thread and greenlet workers have no hard limit.
        self.clock = RunClock(workers) if options.get("worker_type") == "process" else None
        super().__init__(huey, **options)
        self._time_out = huey.storage.conn.register_script(scripts.TIME_OUT)
        # The classes only (importing them is cheap; this process never loads a model).
        self._retried_on_timeout = [
            model.name
            for model in configured_models(self.settings)
            if getattr(model, "retry_on_timeout", False)
        ]
        if self.clock is None:
            log.warning("model time limits are enforced only with process workers (-k process)")

    def start(self) -> None:
        super().start()
        # After the workers fork (they configure their own in the startup hook): this
        # process logs the time limits it enforces, per job, into the worker log.
        configure_logging(self.settings, "worker")
        port = self.settings.consumer_metrics_port
        if port:  # this consumer's workers' series, for a Prometheus on another host
            registry = CollectorRegistry()
            registry.register(metrics.ServerFiles(self.settings.metrics_dir, self.metrics_dir))
            start_http_server(port, self.settings.consumer_metrics_host, registry)
            log.info("consumer metrics on %s:%d/metrics", self.settings.consumer_metrics_host, port)

    def _create_process(self, process: Any, name: str) -> Any:
        if isinstance(process, InferqWorker) and self.clock is not None:
            process.clock, process.slot = self.clock, int(name.rsplit("-", 1)[1]) - 1
        return super()._create_process(process, name)

    def loop(self, health_check_ts: float | None = None) -> float | None:
        health_check_ts = super().loop(health_check_ts)
        if self.clock is not None:
            for slot in self.clock.overdue():
                self._replace(slot)
        return health_check_ts

    def _replace(self, slot: int) -> None:
        """Kill the overdue worker in `slot`, settle its jobs, start another at once."""
        assert self.clock is not None
        process = self.worker_threads[slot][1]
        began = time.monotonic()
        if process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.join(5)
            self._settle(process.pid)
        self.clock.clear(slot)
        self.check_worker_health()  # huey starts a new process in the dead one's place
        log.warning(
            "worker %s ran a model call past its time limit: killed and replaced in %.0f ms",
            process.pid,
            (time.monotonic() - began) * 1000,
        )

    def _settle(self, pid: int) -> None:
        error = JobError(code="timeout", message="the model call ran past its time limit")
        failed, requeued = self._time_out(
            keys=[self.keys.leases, self.keys.heartbeats, self.keys.queue_tokens, self.keys.solo],
            args=[
                self.keys.job_prefix,
                now_ts(),
                self.keys.done_channel,
                error.model_dump_json(),
                worker_identity(pid),
                self.settings.retries + 1,
                *self._retried_on_timeout,
            ],
        )
        values = [v.decode() for v in failed]
        for job_id, model, priority in zip(values[::3], values[1::3], values[2::3], strict=True):
            metrics.JOBS_FINISHED.labels(model, priority, "failed").inc()
            log.info("job %s failed: its model call ran past the time limit", job_id)
        for job_id in requeued:
            log.info("job %s requeued to run alone after its batch timed out", job_id.decode())
