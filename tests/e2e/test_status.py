"""What operators see of the whole service: queue ages, consumers, and a shared recent past."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support.stack import RedisServer, running_stack, unique, wait_for

OPERATOR = "operator-key-0123456789"


def _points(client: httpx.Client) -> list[dict[str, Any]]:
    history = client.get("/status/history", params={"minutes": 5})
    assert history.status_code == 200
    points: list[dict[str, Any]] = history.json()["points"]
    return points


def _total(points: list[dict[str, Any]], path: str) -> float:
    return sum(p[path]["per_s"] for p in points) * 10


def test_status_shows_oldest_ages_consumers_and_a_history_that_outlives_the_api(
    redis_server: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_OPERATOR_KEYS": OPERATOR}
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as live:
        with live.client() as client:
            job = {"model": "counting", "priority": "low"}
            ids = [
                client.post("/jobs", json=job | {"input": {"key": unique()}}).json()["id"]
                for _ in range(3)
            ]

            def aged() -> bool:
                queues = client.get("/status").json()["queues"]
                return bool(queues) and queues[0]["oldest_age_s"] >= 1.0

            wait_for(aged, what="the oldest queued job to be a second old")
            status = client.get("/status").json()
            assert status["queues"][0]["queued"] == 3 and status["oldest_queued_age_s"] >= 1.0
            assert status["consumers"] == [] and status["consumers_live"] == 0
            scrape = client.get("/metrics").text
            line = next(
                line
                for line in scrape.splitlines()
                if line.startswith("inferq_queue_oldest_age_seconds{")
                and 'priority="low"' in line
                and "counting@1" in line
            )
            assert float(line.split()[-1]) >= 1.0

            paused = client.post("/admin/pause", headers={"Authorization": f"Bearer {OPERATOR}"})
            assert paused.status_code == 200
            refused = client.post("/jobs", json={"model": "echo", "input": {"n": 1}})
            assert refused.status_code == 503
            client.post("/admin/resume", headers={"Authorization": f"Bearer {OPERATOR}"})
            for n in range(4):
                assert client.post("/predict", json={"model": "echo", "input": {"n": n}}).is_success

        live.start_consumer(1)
        live.wait_ready()
        with live.client() as client:
            for job_id in ids:
                assert client.get(f"/jobs/{job_id}?wait=true").json()["status"] == "succeeded"

            def consumer_reports_work() -> bool:
                consumers = client.get("/status").json()["consumers"]
                return len(consumers) == 1 and consumers[0]["jobs_done"] >= 3

            wait_for(consumer_reports_work, what="the consumer to report its jobs")
            (consumer,) = client.get("/status").json()["consumers"]
            assert consumer["host"] and consumer["pid"] and "counting@1" in consumer["models"]
            assert consumer["last_heartbeat"] > consumer["started_at"] - 1
            assert client.get("/status").json()["queues"] == []
            slow = {"model": "burn", "input": {"text": "x", "work_ms": 2500}}
            slow_id = client.post("/jobs", json=slow).json()["id"]

            def running_it() -> bool:
                (consumer,) = client.get("/status").json()["consumers"]
                return bool(consumer["current_model"] == "burn" and consumer["current_jobs"])

            wait_for(running_it, what="the consumer to report the job it runs")
            (consumer,) = client.get("/status").json()["consumers"]
            assert consumer["current_jobs"] == [slow_id] and consumer["current_batch"] == 1
            assert client.get(f"/jobs/{slow_id}?wait=true").json()["status"] == "succeeded"
            wait_for(lambda: _total(_points(client), "queued") >= 4, what="history of 4 jobs")

        live.stop_api()
        live.start_api()
        with live.client() as client:
            wait_for(lambda: client.get("/healthz").status_code == 200, what="the API again")
            points = _points(client)
    assert _total(points, "queued") == 4 and _total(points, "direct") == 4
    waits = [p["wait_p50_ms"] for p in points if p["wait_p50_ms"] is not None]
    assert waits and max(waits) >= 900  # the jobs waited over a second for a consumer
    assert any(p["queued"]["p50_ms"] for p in points) and any(p["direct"]["p99_ms"] for p in points)
    assert sum(p["refused"].get("paused", 0) for p in points) == 1
    assert len(points) == 30 and points == sorted(points, key=lambda p: p["t"])
