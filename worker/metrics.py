"""Job metrics, shared by the processes of a server through one multiprocess directory.

Importing this creates the metric objects and nothing else. A server (the API, or a
consumer's main process) calls `install` at startup with a directory of its own under
INFERQ_METRICS_DIR, named after its main process, so each start counts from zero and
processes that died in an earlier deployment are never summed in.
"""

from __future__ import annotations

import contextlib
import glob
import multiprocessing
import os
import shutil
import socket
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram, values
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

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
    "inferq_jobs_in_flight",
    "Computations running in workers",
    ("model",),
    multiprocess_mode="livesum",
)
QUEUE_WAIT = Histogram(
    "inferq_job_queue_wait_seconds", "Submit to start of run", ("model",), buckets=LATENCY_BUCKETS
)
JOB_LATENCY = Histogram(
    "inferq_job_latency_seconds",
    "Submit to finish of a queued job that ran (what its client waited)",
    ("model",),
    buckets=LATENCY_BUCKETS,
)
RUN_TIME = Histogram(
    "inferq_job_run_seconds", "Model run time per computation", ("model",), buckets=LATENCY_BUCKETS
)


def server_directory(root: str, kind: str) -> Path:
    """`<root>/<kind>-<pid of this server's main process>@<host>`, new for each start.

    uvicorn's worker processes (and huey's forked workers) share their main process's
    directory; directories of this host's servers that are no longer running are removed.
    """
    parent = multiprocessing.parent_process()
    main_pid = parent.pid if parent is not None and kind == "api" else os.getpid()
    directory = Path(root) / f"{kind}-{main_pid}@{socket.gethostname()}"
    if main_pid == os.getpid():  # the main process itself: nothing has written here yet
        shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    for other in Path(root).glob("*@*"):
        if _is_this_host(other) and not _is_running(other):
            shutil.rmtree(other, ignore_errors=True)
    return directory


def install(directory: Path) -> None:
    """Keep this process's metrics in `directory` from now on (and in forked children)."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    # prometheus_client chose in-memory values when it was imported; every labelled
    # series is created after this point, so switching the class here suffices.
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def mark_process_dead() -> None:
    """Drop this process's live gauges (call when a process shuts down)."""
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class ServerFiles(Collector):
    """The series of every running server whose directory is under `root` (or just one)."""

    def __init__(self, root: str, only: Path | None = None) -> None:
        self.root, self.only = root, only

    def collect(self) -> list[Metric]:
        directories = [self.only] if self.only else Path(self.root).glob("*@*")
        files = [
            path
            for directory in directories
            if directory is not None and _is_this_host(directory) and _is_running(directory)
            for path in glob.glob(str(directory / "*.db"))
        ]
        return list(MultiProcessCollector.merge(files, accumulate=True))  # type: ignore[no-untyped-call]


def _is_this_host(directory: Path) -> bool:
    # Another host's (or container's) processes cannot be checked from here: its
    # servers are scraped where they run.
    return directory.name.partition("@")[2] == socket.gethostname()


def _is_running(directory: Path) -> bool:
    """True while the server process a directory is named after is alive."""
    pid = directory.name.partition("@")[0].rsplit("-", 1)[-1]
    if not pid.isdigit():
        return False
    with contextlib.suppress(PermissionError):
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
    return True


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
