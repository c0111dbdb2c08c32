"""huey tasks and consumer hooks. Task names are wire format: never rename them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from huey import crontab
from huey.signals import SIGNAL_INTERRUPTED

from config.logging import configure_logging
from core.keys import RedisKeys
from core.models import ModelRegistry
from worker import checks, history, metrics
from worker.app import InferqHuey
from worker.batches import Batch
from worker.heartbeat import Heartbeat
from worker.identity import worker_identity
from worker.models import configured_models
from worker.reload import ModelReloader
from worker.runner import ComputationRunner

log = logging.getLogger(__name__)


def register(huey: InferqHuey) -> None:
    """Add inferq's task and its startup, shutdown and interrupt hooks to `huey`."""
    settings, keys = huey.settings, huey.keys
    assert settings is not None, "make_huey sets the settings"
    heartbeat: list[Heartbeat] = []

    @huey.on_startup(name="inferq.load_models")
    def load_models() -> None:
        """Runs once in every consumer worker: load models, then start heartbeating."""
        configure_logging(settings, "worker")
        worker_id = worker_identity()
        models = configured_models(settings)
        models.load_all()
        runner = ComputationRunner(
            huey.storage.conn, keys, models, settings, worker_id, huey.storage.queue_key
        )
        conn = huey.storage.conn

        def after_beat() -> None:
            runner.reap()
            history.flush(conn, keys)

        beat = Heartbeat(
            conn,
            keys.heartbeats,
            worker_id,
            settings.heartbeat_interval_s,
            on_beat=after_beat,
            about_key=keys.consumer(worker_id),
            describe=partial(describe, runner, time.time()),
            ttl=settings.heartbeat_ttl_s,
        )
        beat.start()
        heartbeat.append(beat)
        if settings.model_dir:
            ModelReloader(
                conn,
                keys.model_reloads,
                settings.model_dir,
                settings.model_reload_s,
                partial(configured_models, settings),
                partial(_offer_and_check, runner, conn, keys),
            ).start()
        huey.serve(runner, lambda batch: run_batch.s(batch))
        checks.check_new_in_background(conn, keys, models)
        log.info("worker %s ready with models %s", worker_id, [m.name for m in models])

    @huey.signal(SIGNAL_INTERRUPTED)
    def requeue_interrupted(signal: str, task: object) -> None:
        """SIGTERM stopped a running task: give its jobs back to the queue now."""
        args = getattr(task, "args", None)
        if huey.runner is not None and args and isinstance(args[0], Batch):
            huey.runner.release(args[0])

    @huey.on_shutdown(name="inferq.stop_heartbeat")
    def stop_heartbeat() -> None:
        if huey.runner is not None:  # first: its jobs go back while this worker still beats
            huey.runner.release_prefetched()
        for beat in heartbeat:
            beat.stop()
        metrics.mark_process_dead()

    @huey.periodic_task(crontab(minute=f"*/{settings.model_check_minutes}"), name="check_models")
    @_stable_wire_name
    def check_models() -> None:
        """Every INFERQ_MODEL_CHECK_MINUTES: each version on its reference data."""
        if huey.runner is not None:
            claim_s = max(1, settings.model_check_minutes * 60 - 5)
            checks.check_models(
                huey.storage.conn, keys, huey.runner.models, claim_s, only_new=False
            )

    @huey.task(name="run_batch")
    @_stable_wire_name
    def run_batch(batch: Batch) -> None:
        """Run a batch the consumer took off a model queue (built locally, never enqueued)."""
        if huey.runner is None:
            raise RuntimeError("models not loaded: the startup hook did not run")
        huey.runner.run(batch)


def _offer_and_check(
    runner: ComputationRunner, conn: Any, keys: RedisKeys, models: ModelRegistry
) -> None:
    runner.offer(models)
    checks.check_new_in_background(conn, keys, models)


def describe(runner: ComputationRunner, started_at: float) -> dict[str, str]:
    """What the dashboard shows of this consumer worker, written with each heartbeat."""
    host, _, pid = runner.worker_id.rpartition(":")
    about = {
        "host": host,
        "pid": pid,
        "started_at": f"{started_at:.3f}",
        "beat_at": f"{time.time():.3f}",
        "jobs_done": str(runner.jobs_done),
        "models": ",".join(f"{q.model}@{q.version}" for q in runner.queues),
        "current_model": "",
        "current_batch": "0",
        "current_since": "",
        "current_jobs": "",
    }
    if runner.current is not None:
        model, size, since, jobs = runner.current
        about |= {
            "current_model": model,
            "current_batch": str(size),
            "current_since": f"{since}",
            "current_jobs": ",".join(jobs),
        }
    return about


def _stable_wire_name(func: Callable[..., None]) -> Callable[..., None]:
    # huey names a message "<func.__module__>.<name>", so moving the function
    # would orphan queued messages; pin the module part too.
    func.__module__ = "inferq"
    return func
