"""Job metrics, shared by API and consumer processes through one multiprocess directory."""

from __future__ import annotations

import os
from pathlib import Path

from config import get_settings

# prometheus_client picks its value storage when first imported, so the shared
# directory must be in the environment before that import, in every process.
_metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", get_settings().metrics_dir)
Path(_metrics_dir).mkdir(parents=True, exist_ok=True)

from prometheus_client import Counter, Gauge, Histogram  # noqa: E402

JOB = ("model", "priority")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

JOBS_ENQUEUED = Counter(
    "inferq_jobs_enqueued_total", "Jobs accepted onto the queue (new or attached)", JOB
)
JOBS_STARTED = Counter("inferq_jobs_started_total", "Jobs a worker started", JOB)
JOBS_FINISHED = Counter(
    "inferq_jobs_finished_total",
    "Jobs that reached a terminal status: succeeded, failed, expired or canceled",
    (*JOB, "status"),
)
JOBS_REJECTED = Counter("inferq_jobs_rejected_total", "Jobs refused at admission", (*JOB, "reason"))
JOBS_IN_FLIGHT = Gauge(
    "inferq_jobs_in_flight", "Computations running in workers", multiprocess_mode="livesum"
)
QUEUE_WAIT = Histogram(
    "inferq_job_queue_wait_seconds", "Submit to start of run", ("model",), buckets=LATENCY_BUCKETS
)
RUN_TIME = Histogram(
    "inferq_job_run_seconds", "Model run time per computation", ("model",), buckets=LATENCY_BUCKETS
)


def mark_process_dead() -> None:
    """Drop this process's live gauges (call when a process shuts down)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


BATCH = ("model", "path")  # path: queued (consumers) or direct (/predict)
BATCH_SIZE = Histogram(
    "inferq_batch_size",
    "Inputs per model call",
    BATCH,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
BATCH_FORM_WAIT = Histogram(
    "inferq_batch_form_wait_seconds",
    "How long the first input of a batch waited for the batch to form",
    BATCH,
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)
BATCH_TARGET = Gauge(
    "inferq_batch_target",
    "Current adaptive target batch size",
    BATCH,
    multiprocess_mode="livemax",
)
