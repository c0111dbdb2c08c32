"""huey tasks and consumer hooks. Task names are wire format: never rename them."""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable

from huey.signals import SIGNAL_INTERRUPTED

from config.logging import configure_logging
from worker import metrics
from worker.app import huey, keys, settings
from worker.heartbeat import Heartbeat
from worker.identity import worker_identity
from worker.models import configured_models
from worker.payload import ComputationPayload
from worker.runner import ComputationRunner

log = logging.getLogger(__name__)
_runner: ComputationRunner | None = None
_heartbeat: Heartbeat | None = None


@huey.on_startup(name="inferq.load_models")
def load_models() -> None:
    """Runs once in every consumer worker: load models, then start heartbeating."""
    global _runner, _heartbeat
    configure_logging(settings, "worker")
    worker_id = worker_identity()
    models = configured_models(settings)
    models.load_all()
    _runner = ComputationRunner(
        huey.storage.conn,
        keys,
        models,
        settings,
        worker_id,
        encode=lambda payload: queue_entry(payload, payload["rank"], at_us=0),
        queue_key=huey.storage.queue_key,
    )
    _heartbeat = Heartbeat(
        huey.storage.conn,
        keys.heartbeats,
        worker_id,
        settings.heartbeat_interval_s,
        on_beat=_runner.reap,
    )
    _heartbeat.start()
    log.info("worker %s ready with models %s", worker_id, [m.name for m in models])


@huey.signal(SIGNAL_INTERRUPTED)
def requeue_interrupted(signal: str, task: object) -> None:
    """SIGTERM stopped a running task: give its jobs back to the queue now."""
    args = getattr(task, "args", None)
    if _runner is not None and args:
        _runner.release(args[0])


@huey.on_shutdown(name="inferq.stop_heartbeat")
def stop_heartbeat() -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
    metrics.mark_process_dead()


def _stable_wire_name(func: Callable[..., None]) -> Callable[..., None]:
    # huey names a message "<func.__module__>.<name>", so moving the function
    # would orphan queued messages; pin the module part too.
    func.__module__ = "inferq"
    return func


@huey.task(name="run_computation")
@_stable_wire_name
def run_computation(payload: ComputationPayload) -> None:
    if _runner is None:
        raise RuntimeError("models not loaded: the startup hook did not run")
    _runner.run(payload)


def queue_entry(
    payload: ComputationPayload, rank: int, at_us: int | None = None
) -> tuple[bytes, int]:
    """The sorted-set member and score huey's priority queue expects for a computation.

    The API writes these itself (inside its submit script, one round trip, no
    blocking client); the layout is that of huey's RedisPriorityQueue.enqueue:
    a big-endian microsecond prefix keeps FIFO order within a score, and the
    score is the negated priority because BZPOPMIN pops the lowest first.
    A re-enqueued computation uses `at_us=0`: the front of its priority.
    """
    message: bytes = huey.serialize_task(run_computation.s(payload))
    at_us = time.time_ns() // 1000 if at_us is None else at_us
    return struct.pack(">Q", at_us) + message, -rank
