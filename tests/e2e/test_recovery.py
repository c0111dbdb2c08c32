"""No accepted job is lost: consumers killed mid-job, by SIGKILL or SIGTERM, with real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from core.keys import RedisKeys
from tests.support.stack import RedisServer, Stack, running_stack, unique, wait_for

JOBS = 20
FAST_RECOVERY = {"INFERQ_HEARTBEAT_INTERVAL_S": "0.3", "INFERQ_HEARTBEAT_TTL_S": "1.5"}


def _submit_burns(client: httpx.Client, count: int = JOBS, work_ms: int = 150) -> list[str]:
    return [
        client.post(
            "/jobs", json={"model": "burn", "input": {"text": unique(), "work_ms": work_ms}}
        ).json()["id"]
        for _ in range(count)
    ]


def _jobs(client: httpx.Client, ids: list[str]) -> list[dict[str, object]]:
    return [client.get(f"/jobs/{job_id}").json() for job_id in ids]


def _running_worker_pid(client: httpx.Client, live: Stack, ids: list[str]) -> int | None:
    """The pid of a worker process that is running one of `ids` right now."""
    redis = live.redis.client()
    for job_id in ids:
        fields = redis.hmget(f"{live.namespace}:job:{job_id}", "status", "worker")
        if fields[0] == "running" and fields[1]:
            return int(fields[1].rsplit(":", 1)[1])
    return None


def _all_succeeded_once(client: httpx.Client, ids: list[str]) -> list[dict[str, object]]:
    wait_for(
        lambda: all(j["status"] == "succeeded" for j in _jobs(client, ids)),
        timeout=90,
        what="every job to succeed",
    )
    jobs = _jobs(client, ids)
    assert all(j["result"] and j["error"] is None for j in jobs)
    assert len({j["id"] for j in jobs}) == len(ids)
    return jobs


@pytest.mark.timeout(180)
def test_sigkill_of_a_worker_process_loses_no_job(redis_server: RedisServer, workdir: Path) -> None:
    with running_stack(redis_server, workdir, consumer_workers=2, **FAST_RECOVERY) as live:
        with live.client() as client:
            ids = _submit_burns(client)
            pid: list[int] = []
            wait_for(
                lambda: pid.append(_running_worker_pid(client, live, ids) or 0) or pid[-1] > 0,
                what="a job to be running",
            )
            os.kill(pid[-1], signal.SIGKILL)
            jobs = _all_succeeded_once(client, ids)
    assert any(j["attempts"] == 2 for j in jobs)  # the job the dead worker held ran again
    assert all(j["attempts"] in (1, 2) for j in jobs)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_whole_consumer_stopped_mid_job_loses_no_job(
    redis_server: RedisServer, workdir: Path, sig: signal.Signals
) -> None:
    with running_stack(redis_server, workdir, consumer_workers=2, **FAST_RECOVERY) as live:
        with live.client() as client:
            ids = _submit_burns(client)
            wait_for(
                lambda: _running_worker_pid(client, live, ids) is not None,
                what="a job to be running",
            )
            consumer = live.consumers.pop()
            os.killpg(consumer.pid, sig)  # SIGTERM is huey's "interrupt now" signal
            consumer.wait(30)
            stuck = [j for j in _jobs(client, ids) if j["status"] != "succeeded"]
            assert stuck  # the test stopped it with work left
            live.start_consumer(2)
            jobs = _all_succeeded_once(client, ids)
    assert any(j["attempts"] >= 2 for j in jobs)


@pytest.mark.timeout(180)
def test_a_consumer_stopped_gracefully_hands_back_what_it_had_not_started(
    redis_server: RedisServer, workdir: Path
) -> None:
    with running_stack(redis_server, workdir, consumer_workers=2, **FAST_RECOVERY) as live:
        with live.client() as client:
            ids = _submit_burns(client, count=40)
            wait_for(
                lambda: sum(j["status"] == "succeeded" for j in _jobs(client, ids)) >= 2,
                what="a first batch to finish",
            )
            consumer = live.consumers.pop()
            os.killpg(consumer.pid, signal.SIGINT)  # huey's graceful stop
            consumer.wait(60)
            # A busy worker takes its next batch as it settles one: that batch goes back
            # at once, as if never taken, not to the reaper.
            assert live.redis.client().hlen(RedisKeys(live.namespace).leases) == 0
            left = [j for j in _jobs(client, ids) if j["status"] != "succeeded"]
            assert left and all(j["status"] == "queued" for j in left)
            live.start_consumer(2)
            jobs = _all_succeeded_once(client, ids)
    assert all(j["attempts"] == 1 for j in jobs)


@pytest.mark.timeout(120)
def test_a_job_that_keeps_losing_its_worker_fails_worker_lost(
    redis_server: RedisServer, workdir: Path
) -> None:
    env = {**FAST_RECOVERY, "INFERQ_MAX_ATTEMPTS": "1"}
    with running_stack(redis_server, workdir, consumer_workers=2, **env) as live:
        with live.client() as client:
            key = unique("doomed")
            body = {"model": "counting", "input": {"key": key, "sleep_ms": 5000}}
            job = client.post("/jobs", json=body).json()
            wait_for(lambda: key in live.runs(), what="the job to start")
            pid = _running_worker_pid(client, live, [job["id"]])
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            final = client.get(f"/jobs/{job['id']}?wait=true&timeout=30").json()
    assert final["status"] == "failed"
    assert final["error"]["code"] == "worker_lost" and final["attempts"] == 1


# A consumer worker process that takes a batch with inferq's own dequeue and dies
# before it can run it: the narrowest window in which a job could be lost.
_POP_AND_DIE = """
import os, signal
from worker.app import get_huey
huey = get_huey()
keys, settings = huey.keys, huey.settings
from worker.heartbeat import Heartbeat
from worker.identity import worker_identity
from worker.models import configured_models
from worker.runner import ComputationRunner

runner = ComputationRunner(huey.storage.conn, keys, configured_models(settings), settings,
                           worker_identity(), huey.storage.queue_key)
Heartbeat(huey.storage.conn, keys.heartbeats, worker_identity(), 60).beat()
batch = runner.take()
assert batch is not None and len(batch.computations) == 1, batch
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.timeout(120)
def test_a_consumer_killed_between_pop_and_start_loses_no_job(
    redis_server: RedisServer, workdir: Path
) -> None:
    with running_stack(redis_server, workdir, consumer_workers=0, **FAST_RECOVERY) as live:
        redis = live.redis.client()
        with live.client() as client:
            keys = [unique("popped") for _ in range(3)]
            ids = [
                client.post("/jobs", json={"model": "counting", "input": {"key": k}}).json()["id"]
                for k in keys
            ]
            doomed = subprocess.run(
                [sys.executable, "-c", _POP_AND_DIE], env=live.env, cwd=live.workdir, check=False
            )
            assert doomed.returncode == -signal.SIGKILL
            queue = f"{live.namespace}:queue:counting:1"
            assert redis.zcard(queue) == 2 and redis.hlen(RedisKeys(live.namespace).leases) == 1
            live.start_consumer(2)
            jobs = _all_succeeded_once(client, ids)
    assert sorted(live.runs()) == sorted(keys)  # the taken jobs ran, and nothing ran twice
    # A take counts as an attempt: the taken job ran on its second.
    assert sorted(j["attempts"] for j in jobs) == [1, 1, 2]
