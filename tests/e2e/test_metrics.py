"""/metrics aggregates every API and consumer process: counts move as a known sequence says."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.stack import RedisServer, Stack, running_stack, unique, wait_for

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
