"""/metrics aggregates the API's processes and the consumers beside it: counts move as a
known sequence says, under the bare contract too, and a new deployment starts from zero."""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from scripts import stack
from tests.support.stack import (
    RedisServer,
    Stack,
    flush_namespace,
    running_stack,
    unique,
    wait_for,
)

IRIS = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _known_sequence(live: Stack, client: httpx.Client) -> list[str]:
    echo_inputs = [{"n": unique()} for _ in range(3)]
    for item in echo_inputs:
        assert (
            client.post("/jobs?wait=true", json={"model": "echo", "input": item}).status_code == 200
        )
    failing = client.post("/jobs?wait=true", json={"model": "failing", "input": {}})
    assert failing.json()["status"] == "failed"
    assert client.post("/jobs", json={"model": "echo", "input": echo_inputs[0]}).json()["cached"]
    blocker = unique("blocker")
    client.post("/jobs", json={"model": "counting", "input": {"key": blocker, "sleep_ms": 1500}})
    wait_for(lambda: blocker in live.runs(), what="the blocker to start")
    queued = [
        client.post("/jobs", json={"model": "counting", "input": {"key": unique()}}).json()["id"]
        for _ in range(2)
    ]
    refused = client.post("/jobs", json={"model": "counting", "input": {"key": unique()}})
    assert refused.status_code == 503
    assert client.delete(f"/jobs/{queued[0]}").status_code == 200
    assert client.post("/predict", json={"model": "echo", "input": {"d": 1}}).status_code == 200
    return queued


def _shed_some(client: httpx.Client, requests: int = 3) -> int:
    """Concurrent slow /predicts past a bound of 1 per API process: the 503s they got.

    With two API processes, three requests put at least two in one process.
    """

    def predict(_: int) -> int:
        body = {"model": "counting", "input": {"key": unique(), "sleep_ms": 800}}
        return client.post("/predict", json=body).status_code

    with ThreadPoolExecutor(requests) as pool:
        statuses = list(pool.map(predict, range(requests)))
    assert set(statuses) <= {200, 503}
    return statuses.count(503)


def test_metrics_count_a_known_sequence_across_two_api_workers(
    redis_server: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_QUEUE_MAX_DEPTH": "2", "INFERQ_DIRECT_MAX_PENDING": "1"}
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as live:
        live.stop()  # restart the API with two uvicorn workers sharing the metrics directory
        live.start_api(workers=2)
        live.start_consumer(1)
        live.wait_ready()
        with live.client() as client:
            queued = _known_sequence(live, client)
            shed = _shed_some(client)
            client.get(f"/jobs/{queued[1]}?wait=true")

            def counted() -> bool:
                s = scrape(client)
                return (
                    value(
                        s,
                        "inferq_jobs_finished_total",
                        model="counting",
                        priority="normal",
                        status="succeeded",
                    )
                    == 2
                    and value(
                        s,
                        "inferq_jobs_finished_total",
                        model="echo",
                        priority="normal",
                        status="succeeded",
                    )
                    == 3
                )

            wait_for(counted, what="the worker's counters")
            s = scrape(client)
    job = {"priority": "normal"}
    assert value(s, "inferq_jobs_enqueued_total", model="echo", **job) == 3
    assert value(s, "inferq_jobs_started_total", model="echo", **job) == 3
    assert value(s, "inferq_jobs_finished_total", model="failing", status="failed", **job) == 1
    assert value(s, "inferq_jobs_enqueued_total", model="counting", **job) == 3
    assert value(s, "inferq_jobs_finished_total", model="counting", status="canceled", **job) == 1
    assert value(s, "inferq_jobs_rejected_total", model="counting", reason="queue_full", **job) == 1
    assert shed >= 1
    assert value(s, "inferq_jobs_rejected_total", model="counting", reason="shed", **job) == shed
    assert value(s, "inferq_direct_shed_total", model="counting") == shed
    hits = value(s, "inferq_cache_hits_total", tier="local") + value(
        s, "inferq_cache_hits_total", tier="shared"
    )
    assert hits == 1
    assert value(s, "inferq_http_requests_total", route="/jobs", method="POST", status="200") == 5
    assert value(s, "inferq_http_requests_total", route="/jobs", method="POST", status="202") == 3
    assert value(s, "inferq_http_requests_total", route="/jobs", method="POST", status="503") == 1
    assert (
        value(s, "inferq_http_requests_total", route="/predict", method="POST", status="200")
        == 4 - shed
    )
    assert value(s, "inferq_http_request_duration_seconds_count", route="/jobs") == 9
    assert value(s, "inferq_job_run_seconds_count", model="echo") == 3
    assert value(s, "inferq_job_queue_wait_seconds_count", model="counting") == 2
    assert value(s, "inferq_job_latency_seconds_count", model="echo") == 3
    assert value(s, "inferq_consumers_live") == 1
    names = {name for name, _ in s}
    for series in (
        "inferq_queue_depth",
        "inferq_jobs_in_flight",
        "inferq_cache_misses_total",
        "inferq_direct_in_flight",
        "inferq_direct_waiting",
    ):
        assert series in names, series
    depth = ("inferq_queue_depth", frozenset({("model", "counting@1"), ("priority", "high")}))
    assert depth in s
    assert value(s, "inferq_batch_size_count", model="echo", path="queued") == 3
    assert value(s, "inferq_batch_size_count", model="echo", path="direct") == 1


@contextmanager
def _bare_contract(redis_server: RedisServer, workdir: Path, **extra: str) -> Iterator[str]:
    """`uvicorn api.main:app` and `huey_consumer worker.huey -k process -w 2`, as the README
    says, with only the Redis URL and a queue secret (and PATH, HOME, where the code is)."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ["HOME"],
        "PYTHONPATH": str(stack.ROOT),
        "INFERQ_REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/0",
        "INFERQ_QUEUE_SECRET": secrets.token_hex(16),
        "INFERQ_NAMESPACE": f"bare{uuid.uuid4().hex[:8]}",  # this test's keys on a shared Redis
        **extra,
    }
    port = stack.free_port()
    commands = [
        [str(stack.BIN / "huey_consumer"), "worker.huey", "-k", "process", "-w", "2"],
        [str(stack.BIN / "uvicorn"), "api.main:app", "--port", str(port)],
    ]
    procs = []
    try:
        for command in commands:
            with open(workdir / "out.log", "ab") as out:
                procs.append(
                    subprocess.Popen(
                        command,
                        cwd=workdir,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        url = f"http://127.0.0.1:{port}"
        stack.wait_until(lambda: stack.http_ok(f"{url}/readyz"), 60, "the bare contract")
        yield url
    finally:
        for proc in reversed(procs):
            stack.stop(proc)
        with redis_server.client() as client:
            flush_namespace(client, env["INFERQ_NAMESPACE"])


def test_metrics_under_the_bare_contract_move_and_a_new_deployment_starts_from_zero(
    redis_server: RedisServer, workdir: Path
) -> None:
    body = {"model": "iris", "input": IRIS}
    for deployment in range(2):
        # Same directory both times, so the same default metrics root (.run/metrics).
        with _bare_contract(redis_server, workdir) as url, httpx.Client(base_url=url) as client:
            before = scrape(client)
            assert value(before, "inferq_jobs_enqueued_total", model="iris", priority="normal") == 0
            ran = client.post("/jobs?wait=true", json=body).json()
            assert ran["status"] == "succeeded" and not ran["cached"]
            assert client.post("/jobs?wait=true", json=body).json()["cached"]
            after = scrape(client)
        route = {"route": "/jobs", "method": "POST", "status": "200"}
        assert value(after, "inferq_http_requests_total", **route) == 2, deployment
        assert value(after, "inferq_cache_hits_total", tier="local") >= 1
        # The same counts both times: the first deployment's files are not summed in.
        assert value(after, "inferq_jobs_enqueued_total", model="iris", priority="normal") == 1
        done = {"model": "iris", "priority": "normal", "status": "succeeded"}
        assert value(after, "inferq_jobs_finished_total", **done) == 1


def test_a_consumer_serves_its_own_metrics_port(redis_server: RedisServer, workdir: Path) -> None:
    port = stack.free_port()
    extra = {"INFERQ_CONSUMER_METRICS_PORT": str(port)}
    with (
        _bare_contract(redis_server, workdir, **extra) as url,
        httpx.Client(base_url=url) as client,
    ):
        assert client.post("/jobs?wait=true", json={"model": "echo", "input": {"n": unique()}})
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as consumer:
            samples = scrape(consumer)
    job = {"model": "echo", "priority": "normal"}
    assert value(samples, "inferq_jobs_finished_total", status="succeeded", **job) == 1
    assert (
        value(samples, "inferq_http_requests_total", route="/jobs", method="POST", status="200")
        == 0
    )
