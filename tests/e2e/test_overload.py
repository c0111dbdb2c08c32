"""Honest behaviour under overload: shedding, admission control, deadlines, disconnects."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.stack import RedisServer, Stack, running_stack, unique, wait_for

SLOW_MS = 600


def burn(work_ms: int = SLOW_MS, **extra: object) -> dict[str, object]:
    return {"model": "burn", "input": {"text": unique(), "work_ms": work_ms}, **extra}


def _timed_posts(
    stack: Stack, path: str, bodies: list[dict[str, object]]
) -> list[tuple[int, float, httpx.Response]]:
    def post(body: dict[str, object]) -> tuple[int, float, httpx.Response]:
        with stack.client() as client:
            began = time.monotonic()
            response = client.post(path, json=body)
            return response.status_code, time.monotonic() - began, response

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


def test_predict_runs_the_model_directly_and_uses_the_cache(
    redis_server: RedisServer, workdir: Path
) -> None:
    with running_stack(redis_server, workdir, consumer_workers=0) as live, live.client() as client:
        body = {"model": "counting", "input": {"key": unique()}}
        first = client.post("/predict", json=body)
        assert first.status_code == 200
        assert first.json() == {
            "model": "counting",
            "model_version": "1",
            "result": {"key": body["input"]["key"]},  # type: ignore[index]
            "cached": False,
        }
        assert client.post("/predict", json=body).json()["cached"] is True
        assert live.runs().count(body["input"]["key"]) == 1  # type: ignore[index]
        bad = client.post("/predict", json={"model": "burn", "input": {"text": 1}})
        assert bad.status_code == 422 and bad.json()["error"]["fields"]
        assert client.post("/predict", json={"model": "nope", "input": {}}).status_code == 404
        failed = client.post("/predict", json={"model": "failing", "input": {"reason": "bad"}})
        assert failed.status_code == 500
        assert failed.json()["error"] == {"code": "model_error", "message": "ValueError: bad"}


def test_direct_shedding_refuses_the_excess_at_once(
    redis_server: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_DIRECT_WORKERS": "1", "INFERQ_DIRECT_MAX_PENDING": "2"}
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as live:
        # Runs long enough that none ends while the eight arrive (on a slow VM they spread
        # over most of a second, and a slot freed meanwhile admitted a fifth).
        results = _timed_posts(live, "/predict", [burn(4 * SLOW_MS) for _ in range(8)])
    accepted = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    assert len(accepted) >= 2 and len(refused) >= 4 and len(accepted) + len(refused) == 8
    for _, elapsed, response in refused:
        assert elapsed < SLOW_MS / 1000  # refused without waiting for the model
        assert response.json()["error"]["code"] == "shed"
        assert int(response.headers["retry-after"]) >= 1


def test_without_shedding_the_direct_path_queues(redis_server: RedisServer, workdir: Path) -> None:
    env = {
        "INFERQ_DIRECT_WORKERS": "1",
        "INFERQ_DIRECT_MAX_PENDING": "2",
        "INFERQ_DIRECT_SHEDDING": "false",
    }
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as live:
        results = _timed_posts(live, "/predict", [burn(200) for _ in range(6)])
    assert [r[0] for r in results] == [200] * 6


def test_a_full_queue_refuses_normal_and_low_but_admits_high(
    redis_server: RedisServer, workdir: Path
) -> None:
    with (
        running_stack(
            redis_server, workdir, consumer_workers=0, INFERQ_QUEUE_MAX_DEPTH="3"
        ) as live,
        live.client() as client,
    ):
        for _ in range(3):
            assert client.post("/jobs", json=burn(priority="normal")).status_code == 202
        for priority in ("normal", "low"):
            refused = client.post("/jobs", json=burn(priority=priority))
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "queue_full"
            assert int(refused.headers["retry-after"]) >= 1
        assert client.post("/jobs", json=burn(priority="high")).status_code == 202
        # The same input as a queued job attaches to it: no new work, so no refusal.
        attach = {"model": "counting", "input": {"key": "same"}, "priority": "high"}
        assert client.post("/jobs", json=attach).status_code == 202
        assert client.post("/jobs", json=attach).status_code == 202


def test_a_deadline_the_queue_cannot_meet_is_refused_now(
    redis_server: RedisServer, workdir: Path
) -> None:
    def slow(**extra: object) -> dict[str, object]:
        # The test model sleeps: its service time does not depend on burn's calibration.
        return {"model": "counting", "input": {"key": unique(), "sleep_ms": 300}, **extra}

    with running_stack(redis_server, workdir, consumer_workers=1) as live, live.client() as client:
        assert client.post("/jobs?wait=true", json=slow()).status_code == 200  # service time
        for _ in range(6):
            client.post("/jobs", json=slow())
        began = time.monotonic()
        refused = client.post("/jobs", json=slow(deadline_s=0.5))
        # Refused on the spot: well before the ~1.5 s of work ahead of it could drain.
        assert time.monotonic() - began < 1.0
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "deadline_unmeetable"
        assert int(refused.headers["retry-after"]) >= 1
        assert client.post("/jobs", json=slow(deadline_s=30)).status_code == 202


def test_an_expired_job_is_never_run_and_its_waiter_learns_at_once(
    redis_server: RedisServer, workdir: Path
) -> None:
    with running_stack(redis_server, workdir, consumer_workers=1) as live, live.client() as client:
        client.post("/jobs?wait=true", json={"model": "counting", "input": {"key": unique()}})
        blocker = unique("blocker")
        client.post(
            "/jobs", json={"model": "counting", "input": {"key": blocker, "sleep_ms": 3000}}
        )
        wait_for(lambda: blocker in live.runs(), what="the blocker to start")
        doomed = unique("doomed")
        began = time.monotonic()
        response = client.post(
            "/jobs?wait=true&timeout=20",
            json={"model": "counting", "input": {"key": doomed}, "deadline_s": 0.5},
        )
        waited = time.monotonic() - began
        job = response.json()
        assert response.status_code == 200 and job["status"] == "expired"
        assert job["error"]["code"] == "deadline_exceeded" and job["started_at"] is None
        assert waited < 2.5  # woken at its deadline, not when the blocker finished
        after = client.post(
            "/jobs?wait=true", json={"model": "counting", "input": {"key": unique()}}
        )
        assert after.json()["status"] == "succeeded"  # the worker has passed the expired job
        assert doomed not in live.runs()
        assert client.get(f"/jobs/{job['id']}").json()["status"] == "expired"


def test_server_default_deadline_applies_when_the_request_has_none(
    redis_server: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_DEFAULT_DEADLINE_S": "0.5"}
    with (
        running_stack(redis_server, workdir, consumer_workers=1, **env) as live,
        live.client() as client,
    ):
        blocker = unique("blocker")
        client.post(
            "/jobs", json={"model": "counting", "input": {"key": blocker, "sleep_ms": 2500}}
        )
        wait_for(lambda: blocker in live.runs(), what="the blocker to start")
        job = client.post("/jobs", json={"model": "counting", "input": {"key": unique()}}).json()
        wait_for(
            lambda: client.get(f"/jobs/{job['id']}").json()["status"] == "expired",
            what="a poll past the deadline to see it expired",
        )


def _leave_early(stack: Stack, key: str) -> None:
    body = {"model": "counting", "input": {"key": key}}
    with (
        httpx.Client(base_url=stack.url, timeout=0.5) as impatient,
        contextlib.suppress(httpx.TimeoutException),
    ):
        impatient.post("/jobs?wait=true&timeout=20", json=body)


def _statuses(stack: Stack) -> list[str]:
    redis = stack.redis.client()
    ids = [k.rsplit(":", 1)[1] for k in redis.scan_iter(match=f"{stack.namespace}:job:*")]
    with stack.client() as client:
        return [client.get(f"/jobs/{job_id}").json()["status"] for job_id in ids]


@pytest.mark.parametrize(("cancel", "expected"), [("true", "canceled"), ("false", "queued")])
def test_disconnect_cancels_the_waiting_job_only_when_configured(
    redis_server: RedisServer, workdir: Path, cancel: str, expected: str
) -> None:
    env = {"INFERQ_CANCEL_ON_DISCONNECT": cancel}
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as live:
        _leave_early(live, unique())
        wait_for(lambda: _statuses(live) == [expected], timeout=10, what=f"the job {expected}")
