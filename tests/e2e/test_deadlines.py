"""Deadlines that count run time, newest-first under a standing queue, retries, cancels."""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from core.keys import RedisKeys
from tests.support.stack import RedisServer, Stack, running_stack, unique, wait_for


def counting(sleep_ms: int = 0, key: str | None = None, **extra: object) -> dict[str, object]:
    return {"model": "counting", "input": {"key": key or unique(), "sleep_ms": sleep_ms}, **extra}


def _measure_run(client: httpx.Client, sleep_ms: int) -> None:
    """Two runs, so workers and admission know what a counting call costs."""
    for _ in range(2):
        assert (
            client.post("/jobs?wait=true", json=counting(sleep_ms)).json()["status"] == "succeeded"
        )


def test_admission_counts_the_run_not_only_the_wait(
    redis_server: RedisServer, workdir: Path
) -> None:
    with running_stack(redis_server, workdir, consumer_workers=1) as live, live.client() as client:
        _measure_run(client, 800)
        # Nothing is queued, but the run alone takes longer than the budget.
        refused = client.post("/jobs", json=counting(800, deadline_s=0.4))
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "deadline_unmeetable"
        assert "plus run" in refused.json()["error"]["message"]
        assert client.post("/jobs", json=counting(800, deadline_s=5)).status_code == 202


def test_a_worker_does_not_start_a_job_that_could_no_longer_finish(
    redis_server: RedisServer, workdir: Path
) -> None:
    with running_stack(redis_server, workdir, consumer_workers=1) as live, live.client() as client:
        _measure_run(client, 1000)
        blocker = unique("blocker")
        client.post("/jobs", json=counting(1000, key=blocker))
        wait_for(lambda: blocker in live.runs(), what="the blocker to start")
        # Admitted (nothing queued, a 1 s run fits 1.6 s), but when the worker is free
        # only about 0.6 s of the budget is left: starting it would waste the run.
        doomed = unique("doomed")
        job = client.post("/jobs?wait=true", json=counting(1000, key=doomed, deadline_s=1.6))
        assert job.status_code == 200
        assert job.json()["status"] == "expired"
        assert job.json()["error"]["code"] == "deadline_exceeded"
        time.sleep(1.2)  # a wrongly started run would have written its key by now
        assert doomed not in live.runs()


@pytest.mark.parametrize(("lifo_after", "expected"), [("0.3", "newest"), ("0", "oldest")])
def test_a_standing_queue_is_served_newest_first(
    redis_server: RedisServer, workdir: Path, lifo_after: str, expected: str
) -> None:
    env = {"INFERQ_LIFO_AFTER_S": lifo_after}
    with (
        running_stack(redis_server, workdir, consumer_workers=1, **env) as live,
        live.client() as client,
    ):
        blocker = unique("blocker")
        client.post("/jobs", json=counting(1000, key=blocker))
        wait_for(lambda: blocker in live.runs(), what="the blocker to start")
        keys = [unique(f"q{i}") for i in range(3)]
        ids = [client.post("/jobs", json=counting(key=key)).json()["id"] for key in keys]
        for job_id in ids:
            client.get(f"/jobs/{job_id}?wait=true")
    order = [key for key in live.runs() if key in keys]
    assert order == (keys[::-1] if expected == "newest" else keys)


def test_a_canceled_job_leaves_the_queue_at_once(redis_server: RedisServer, workdir: Path) -> None:
    env = {"INFERQ_QUEUE_MAX_DEPTH": "2"}
    with (
        running_stack(redis_server, workdir, consumer_workers=0, **env) as live,
        live.client() as client,
    ):
        ids = [client.post("/jobs", json=counting()).json()["id"] for _ in range(2)]
        assert client.post("/jobs", json=counting()).status_code == 503  # full
        for job_id in ids:
            assert client.delete(f"/jobs/{job_id}").json()["status"] == "canceled"
        assert client.post("/jobs", json=counting()).status_code == 202


def _closed_loop(
    stack: Stack, seconds: float, client_timeout: float, body: dict[str, object]
) -> tuple[int, int, list[str]]:
    """One impatient closed-loop client: (answers, timeouts, keys it gave up on)."""
    answered, timeouts, abandoned = 0, 0, []
    until = time.monotonic() + seconds
    with httpx.Client(base_url=stack.url, timeout=client_timeout) as client:
        while time.monotonic() < until:
            key = unique()
            request = {**body, "input": {**body["input"], "key": key}}  # type: ignore[dict-item]
            try:
                response = client.post("/jobs?wait=true", json=request)
            except httpx.TimeoutException:
                timeouts += 1
                abandoned.append(key)
                continue
            answered += 1
            if response.status_code == 503:
                time.sleep(float(response.headers["retry-after"]))
    return answered, timeouts, abandoned


def test_the_posts_scenario_in_miniature(redis_server: RedisServer, workdir: Path) -> None:
    """Six impatient clients, one worker: with a deadline none times out; without one,
    the jobs of clients that gave up are canceled, never computed."""
    with running_stack(redis_server, workdir, consumer_workers=1) as live, live.client() as client:
        _measure_run(client, 300)
        with_deadline = counting(300, deadline_s=1.2)
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda _: _closed_loop(live, 4, 1.5, with_deadline), range(6)))
        assert sum(r[1] for r in results) == 0 and sum(r[0] for r in results) > 0
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda _: _closed_loop(live, 4, 0.8, counting(300)), range(6)))
        abandoned = [key for r in results for key in r[2]]
        assert abandoned  # six clients on one 300 ms worker: some give up at 0.8 s
        time.sleep(1.0)  # what was running when its client left finishes
        ran = set(live.runs())
        started = [key for key in abandoned if key in ran]
        # Only a job already running when its client left may have run (at most one
        # per give-up moment); every other abandoned job was canceled.
        assert len(started) < len(abandoned)


def test_a_transient_failure_is_retried_with_backoff(
    redis_server: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_RETRY_DELAY_S": "0.3"}
    with (
        running_stack(redis_server, workdir, consumer_workers=1, **env) as live,
        live.client() as client,
    ):
        twice = unique()
        job = client.post(
            "/jobs?wait=true", json={"model": "flaky", "input": {"key": twice, "failures": 2}}
        )
        record = job.json()
        assert record["status"] == "succeeded" and record["attempts"] == 3
        assert record["result"] == {"key": twice, "tries": 3}
        always = unique()
        job = client.post(
            "/jobs?wait=true", json={"model": "flaky", "input": {"key": always, "failures": 9}}
        )
        record = job.json()
        assert record["status"] == "failed" and record["attempts"] == 3  # INFERQ_RETRIES=2
        assert record["error"]["code"] == "model_error"
        assert "attempt 3 of" in record["error"]["message"]
    times = [
        float(line.split()[1])
        for line in live.runs_file.read_text().splitlines()
        if line.split()[0] == always
    ]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) == 3 and gaps[0] >= 0.3 and gaps[1] >= 0.6  # the delay doubles


def test_a_retry_that_could_not_meet_the_deadline_fails_at_once(
    redis_server: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_RETRY_DELAY_S": "5"}
    with (
        running_stack(redis_server, workdir, consumer_workers=1, **env) as live,
        live.client() as client,
    ):
        body = {"model": "flaky", "input": {"key": unique(), "failures": 1}, "deadline_s": 3}
        record = client.post("/jobs?wait=true", json=body).json()
        assert record["status"] == "failed" and record["attempts"] == 1


def test_direct_path_refuses_what_cannot_finish_and_drops_departed_clients(
    redis_server: RedisServer, workdir: Path
) -> None:
    """One model process (the tests' INFERQ_DIRECT_WORKERS=1)."""
    with running_stack(redis_server, workdir, consumer_workers=0) as live, live.client() as client:
        for _ in range(2):  # measured run time of a counting call
            assert client.post("/predict", json=counting(600)).status_code == 200
        refused = client.post("/predict", json=counting(600, deadline_s=0.3))
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "deadline_unmeetable"
        with ThreadPoolExecutor(3) as pool:
            blocker = pool.submit(client.post, "/predict", json=counting(1500))
            wait_for(lambda: len(live.runs()) == 3, what="the blocker to start")
            # Admitted (nothing ahead, 0.6 s of run fits 1.5 s), but it cannot start
            # before the blocker ends: answered when it could no longer have finished.
            late_key = unique("late")
            late = pool.submit(
                client.post, "/predict", json=counting(600, late_key, deadline_s=1.5)
            )
            gone_key = unique("gone")
            with httpx.Client(base_url=live.url, timeout=0.3) as impatient:
                with pytest.raises(httpx.TimeoutException):
                    impatient.post("/predict", json=counting(key=gone_key))
            assert blocker.result().status_code == 200
            answer = late.result()
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "deadline_exceeded"
        assert client.post("/predict", json=counting()).status_code == 200  # the lane moves on
    assert late_key not in live.runs() and gone_key not in live.runs()


def test_a_record_that_expires_while_its_job_runs_is_not_written_back(
    redis_server: RedisServer, workdir: Path
) -> None:
    # Settling writes a started job's record without reading it first; a record whose
    # TTL ran out during the run must not come back as a few fields with no TTL at all.
    # (The computation's list expires with its leader's record, and then there is
    # nothing to settle; it is kept here, as if something else held it, to reach the
    # write.)
    env = {"INFERQ_JOB_TTL_S": "2"}
    with (
        running_stack(redis_server, workdir, consumer_workers=1, **env) as live,
        live.client() as client,
    ):
        key = unique("outlived")
        job_id = client.post("/jobs", json=counting(3500, key=key)).json()["id"]
        wait_for(lambda: key in live.runs(), what="the run to start")
        keys = RedisKeys(live.namespace)
        store = live.redis.client()
        (computation,) = store.keys(keys.computation("*"))
        store.persist(computation)
        wait_for(lambda: store.hlen(keys.leases) == 0, what="the run to be settled")
        assert not store.exists(keys.job(job_id))
        assert client.get(f"/jobs/{job_id}").status_code == 404
