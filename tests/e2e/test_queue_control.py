"""Behaviour that needs the queue to hold work: no consumer at first, started by the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import RedisServer, Stack, running_stack, unique, wait_for


@pytest.fixture
def idle(redis_server: RedisServer, workdir: object) -> Iterator[Stack]:
    """API up, no consumer: submitted jobs stay queued until the test starts one.

    Newest-first service of a standing queue is off here: these tests see FIFO order
    (tests/e2e/test_deadlines.py covers the adaptive LIFO).
    """
    env = {"INFERQ_LIFO_AFTER_S": "0"}
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as running:  # type: ignore[arg-type]
        yield running


def counting(key: str, priority: str = "normal") -> dict[str, object]:
    return {"model": "counting", "input": {"key": key}, "priority": priority}


def test_readyz_is_503_without_a_consumer_then_200(idle: Stack) -> None:
    with idle.client() as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "consumer" in response.json()["reason"]
        assert client.get("/healthz").status_code == 200
        idle.start_consumer(1)
        idle.wait_ready()
        idle.stop_consumers()
        wait_for(lambda: client.get("/readyz").status_code == 503, what="readyz to drop")


def test_high_priority_runs_before_a_backlog_fifo_within_priority(idle: Stack) -> None:
    with idle.client() as client:
        low = [unique("low") for _ in range(3)]
        normal = [unique("normal") for _ in range(3)]
        high = [unique("high") for _ in range(2)]
        for key in low:
            client.post("/jobs", json=counting(key, "low"))
        for key in normal:
            client.post("/jobs", json=counting(key, "normal"))
        ids = [client.post("/jobs", json=counting(key, "high")).json()["id"] for key in high]
        idle.start_consumer(1)  # one worker: the run order is the dequeue order
        for job_id in ids:
            assert client.get(f"/jobs/{job_id}?wait=true").json()["status"] == "succeeded"
        wait_for(lambda: len(idle.runs()) == 8, what="the backlog to drain")
    assert idle.runs() == high + normal + low


def test_cancel_of_a_queued_job_means_it_never_runs(idle: Stack) -> None:
    canceled_key, other_key = unique("canceled"), unique("other")
    with idle.client() as client:
        job = client.post("/jobs", json=counting(canceled_key)).json()
        response = client.delete(f"/jobs/{job['id']}")
        assert response.status_code == 200
        assert response.json()["status"] == "canceled" and response.json()["finished_at"]
        assert client.delete(f"/jobs/{job['id']}").status_code == 409

        idle.start_consumer(1)
        after = client.post("/jobs?wait=true", json=counting(other_key))
        assert after.json()["status"] == "succeeded"
        final = client.get(f"/jobs/{job['id']}")
    assert final.status_code == 200
    assert final.json()["status"] == "canceled" and final.json()["attempts"] == 0
    assert canceled_key not in idle.runs() and other_key in idle.runs()
