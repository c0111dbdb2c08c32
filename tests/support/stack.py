"""A running inferq for end-to-end tests: API under uvicorn, huey consumers, own namespace."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from scripts import stack

TEST_MODELS = ",".join(
    f"tests.support.models:{name}"
    for name in (
        "CountingModel",
        "FailingModel",
        "BatchingModel",
        "OtherBatchingModel",
        "FlakyModel",
        "HangModel",
        "RetriedHangModel",
    )
)


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]
    connect_url: str | None = None  # when it needs credentials, a database or TLS

    @property
    def url(self) -> str:
        return self.connect_url or f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)


def flush_namespace(client: redis.Redis, namespace: str) -> None:
    """Delete this namespace's keys (and its huey queue) only; never FLUSHALL."""
    for pattern in (f"{namespace}:*", f"huey.*{namespace.replace('-', '')}*"):
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)


@dataclass
class Stack:
    redis: RedisServer
    namespace: str
    workdir: Path
    env: dict[str, str]
    api_port: int = 0
    api: subprocess.Popen[bytes] | None = None
    consumers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def runs_file(self) -> Path:
        return Path(self.env["INFERQ_TEST_RUNS_FILE"])

    def batches(self) -> list[tuple[str, list[str]]]:
        """Every call of the batching models, in order: (model, keys in the batch)."""
        path = Path(f"{self.runs_file}.batches")
        if not path.exists():
            return []
        calls = [line.split() for line in path.read_text().splitlines()]
        return [(model, keys.split(",")) for model, _, keys in calls]

    def runs(self) -> list[str]:
        """Keys the counting model has run on, in order."""
        if not self.runs_file.exists():
            return []
        return [line.split()[0] for line in self.runs_file.read_text().splitlines()]

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def start_api(self, workers: int = 1) -> None:
        self.api_port = stack.free_port()
        self.api = stack.start_api(self.env, self.api_port, workers, self.workdir / "api.out")

    def start_consumer(self, workers: int = 2, *extra: str) -> subprocess.Popen[bytes]:
        proc = stack.start_consumer(self.env, workers, self.workdir / "consumer.out", *extra)
        self.consumers.append(proc)
        return proc

    def wait_ready(self, timeout: float = 30) -> None:
        with self.client() as client:
            stack.wait_until(
                lambda: client.get("/readyz").status_code == 200, timeout, "a consumer heartbeat"
            )

    def stop_consumers(self) -> None:
        for proc in self.consumers:
            stack.stop(proc)
        self.consumers.clear()

    def stop_api(self) -> None:
        if self.api is not None:
            stack.stop(self.api)
            self.api = None

    def stop(self) -> None:
        # Side by side: nothing here needs another process to outlive it.
        stack.stop_all([*self.consumers, *([self.api] if self.api is not None else [])])
        self.consumers.clear()
        flush_namespace(self.redis.client(), self.namespace)


@contextmanager
def running_stack(
    redis_server: RedisServer, workdir: Path, consumer_workers: int = 2, **env: str
) -> Iterator[Stack]:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    workdir.mkdir(parents=True, exist_ok=True)
    base_env = {
        "INFERQ_ENVIRONMENT": "development",
        "INFERQ_REDIS_URL": redis_server.url,
        "INFERQ_NAMESPACE": namespace,
        "INFERQ_MODELS": TEST_MODELS,
        "INFERQ_TEST_RUNS_FILE": str(workdir / "runs.txt"),
        "INFERQ_LOG_DIR": str(workdir / "logs"),
        "INFERQ_HEARTBEAT_INTERVAL_S": "0.5",
        "INFERQ_HEARTBEAT_TTL_S": "2",
        "INFERQ_DIRECT_WORKERS": "1",
        "INFERQ_METRICS_DIR": str(workdir / "metrics"),
        "PYTHONPATH": str(stack.ROOT),
    }
    running = Stack(redis_server, namespace, workdir, {**base_env, **env})
    try:
        # The consumer loads its models while the API starts: neither waits for the other.
        if consumer_workers:
            running.start_consumer(consumer_workers)
        running.start_api()
        if consumer_workers:
            running.wait_ready()
        yield running
    finally:
        running.stop()


def wait_for(check: object, timeout: float = 20, what: str = "condition") -> None:
    assert callable(check)
    stack.wait_until(check, timeout, what)


def unique(prefix: str = "k") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}-{os.getpid()}-{time.monotonic_ns()}"
