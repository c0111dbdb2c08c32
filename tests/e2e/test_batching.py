"""Batching on both paths, against real consumers, a real API and a real Redis."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.stack import RedisServer, Stack, running_stack, unique, wait_for

FAST_RECOVERY = {"INFERQ_HEARTBEAT_INTERVAL_S": "0.3", "INFERQ_HEARTBEAT_TTL_S": "1.5"}


def batch_job(key: str, model: str = "batching", **fields: Any) -> dict[str, Any]:
    priority = fields.pop("priority", "normal")
    deadline = fields.pop("deadline_s", None)
    body: dict[str, Any] = {"model": model, "input": {"key": key, **fields}, "priority": priority}
    if deadline is not None:
        body["deadline_s"] = deadline
    return body


def _submit(client: httpx.Client, bodies: list[dict[str, Any]]) -> list[str]:
    ids = []
    for body in bodies:
        response = client.post("/jobs", json=body)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def _final(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/jobs/{job_id}?wait=true&timeout=60")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def _hold_the_worker(live: Stack, client: httpx.Client, sleep_ms: int = 700) -> str:
    """Start a slow job on the only consumer process; what follows queues up behind it."""
    blocker = unique("blocker")
    _submit(client, [batch_job(blocker, sleep_ms=sleep_ms)])
    wait_for(lambda: any(blocker in keys for _, keys in live.batches()), what="the blocker")
    return blocker


def _batched_keys(live: Stack) -> list[list[str]]:
    return [keys for _, keys in live.batches()]


def _flat(batches: list[list[str]]) -> list[str]:
    return [key for batch in batches for key in batch]


@pytest.mark.parametrize(("max_size", "batched"), [(None, True), ("1", False)])
def test_queued_jobs_run_in_batches_unless_batching_is_off(
    redis_server: RedisServer, workdir: Path, max_size: str | None, batched: bool
) -> None:
    env = {"INFERQ_BATCH_MAX_SIZE": max_size} if max_size else {}
    with running_stack(redis_server, workdir, consumer_workers=1, **env) as live:
        with live.client() as client:
            _hold_the_worker(live, client)
            keys = [unique("q") for _ in range(24)]
            ids = _submit(client, [batch_job(k) for k in keys])
            jobs = [_final(client, i) for i in ids]
    assert [j["status"] for j in jobs] == ["succeeded"] * len(keys)
    assert [j["result"]["key"] for j in jobs] == keys  # each job got its own output
    sizes = [len(batch) for batch in _batched_keys(live)]
    assert sum(sizes) == len(keys) + 1 and len(set(_flat(_batched_keys(live)))) == len(keys) + 1
    assert (max(sizes) > 1) is batched
    if batched:
        assert any(j["result"]["batch"] > 1 for j in jobs)


def test_a_batch_takes_high_before_normal_before_low(
    redis_server: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_BATCH_MAX_SIZE": "2"}
    with running_stack(redis_server, workdir, consumer_workers=1, **env) as live:
        with live.client() as client:
            _hold_the_worker(live, client)
            low = [unique("low") for _ in range(6)]
            normal = [unique("normal") for _ in range(3)]
            high = unique("high")
            ids = _submit(client, [batch_job(k, priority="low") for k in low])
            ids += _submit(client, [batch_job(k, priority="normal") for k in normal])
            ids += _submit(client, [batch_job(high, priority="high")])
            assert all(_final(client, i)["status"] == "succeeded" for i in ids)
    order = _flat(_batched_keys(live)[1:])  # after the blocker
    assert high in _batched_keys(live)[1]  # the next batch
    assert max(order.index(k) for k in normal) < min(order.index(k) for k in low)
    assert order.index(low[0]) < order.index(low[-1])  # FIFO within a priority


def test_a_batch_never_mixes_models(redis_server: RedisServer, workdir: Path) -> None:
    with running_stack(redis_server, workdir, consumer_workers=1) as live:
        with live.client() as client:
            _hold_the_worker(live, client)
            bodies = [
                batch_job(unique(model), model=model)
                for _ in range(8)
                for model in ("batching", "batching2")
            ]
            ids = _submit(client, bodies)
            assert all(_final(client, i)["status"] == "succeeded" for i in ids)
    for model, keys in live.batches():
        assert all(key.startswith(f"{model}-") for key in keys if "blocker" not in key)
    assert any(len(keys) > 1 for _, keys in live.batches())


def test_one_failing_input_fails_alone_and_a_short_answer_fails_its_batch(
    redis_server: RedisServer, workdir: Path
) -> None:
    with running_stack(redis_server, workdir, consumer_workers=1) as live:
        with live.client() as client:
            _hold_the_worker(live, client)
            good, bad = unique("good"), unique("bad")
            first = _submit(client, [batch_job(good), batch_job(bad, fail=True)])
            assert _final(client, first[0])["status"] == "succeeded"
            failed = _final(client, first[1])
            assert failed["status"] == "failed" and failed["error"]["code"] == "model_error"
            assert [good, bad] in _batched_keys(live)  # they did share a call

            _hold_the_worker(live, client)
            short = _submit(client, [batch_job(unique("s1")), batch_job(unique("s2"), short=True)])
            for job_id in short:
                job = _final(client, job_id)
                assert job["status"] == "failed"
                assert job["error"]["code"] == "model_output_mismatch"
            after = _submit(client, [batch_job(unique("after"))])
            assert _final(client, after[0])["status"] == "succeeded"  # the worker serves on


def test_canceled_and_expired_jobs_never_reach_the_model(
    redis_server: RedisServer, workdir: Path
) -> None:
    with running_stack(redis_server, workdir, consumer_workers=1) as live:
        with live.client() as client:
            _hold_the_worker(live, client, sleep_ms=1500)
            doomed, canceled, kept = unique("doomed"), unique("canceled"), unique("kept")
            ids = _submit(
                client,
                [batch_job(doomed, deadline_s=0.3), batch_job(canceled), batch_job(kept)],
            )
            assert client.delete(f"/jobs/{ids[1]}").status_code == 200
            statuses = [_final(client, i)["status"] for i in ids]
    assert statuses == ["expired", "canceled", "succeeded"]
    seen = _flat(_batched_keys(live))
    assert kept in seen and doomed not in seen and canceled not in seen


@pytest.mark.timeout(180)
def test_sigkill_mid_batch_reruns_every_job_of_the_batch_once_more(
    redis_server: RedisServer, workdir: Path
) -> None:
    with running_stack(redis_server, workdir, consumer_workers=2, **FAST_RECOVERY) as live:
        with live.client() as client:
            keys = [unique("slow") for _ in range(12)]
            ids = _submit(client, [batch_job(k, sleep_ms=1500) for k in keys])
            redis = live.redis.client()

            def running_batch_pid() -> int:
                workers = [
                    redis.hmget(f"{live.namespace}:job:{i}", "status", "worker") for i in ids
                ]
                held = [w for status, w in workers if status == "running" and w]
                shared = [w for w in held if held.count(w) > 1]
                return int(shared[0].rsplit(":", 1)[1]) if shared else 0

            wait_for(lambda: running_batch_pid() > 0, what="a batch of several to be running")
            os.kill(running_batch_pid(), signal.SIGKILL)
            jobs = [_final(client, i) for i in ids]
    assert [j["status"] for j in jobs] == ["succeeded"] * len(ids)
    assert [j["result"]["key"] for j in jobs] == keys
    assert sum(j["attempts"] == 2 for j in jobs) >= 2  # the killed batch ran again
    assert all(j["attempts"] in (1, 2) for j in jobs)


@pytest.mark.parametrize(("max_size", "batched"), [(None, True), ("1", False)])
def test_concurrent_predicts_share_a_model_call_and_get_their_own_answers(
    redis_server: RedisServer, workdir: Path, max_size: str | None, batched: bool
) -> None:
    env = {"INFERQ_DIRECT_MAX_PENDING": "32"}  # unbatched, 8 would shed some of the 13
    if max_size:
        env["INFERQ_BATCH_MAX_SIZE"] = max_size
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as live:
        keys = [unique("direct") for _ in range(12)]

        def predict(key: str, sleep_ms: int = 0) -> dict[str, Any]:
            with live.client() as client:
                response = client.post(
                    "/predict",
                    json={"model": "batching", "input": {"key": key, "sleep_ms": sleep_ms}},
                )
                assert response.status_code == 200, response.text
                result: dict[str, Any] = response.json()["result"]
                return result

        with ThreadPoolExecutor(len(keys) + 1) as pool:
            blocker = pool.submit(predict, unique("blocker"), 700)
            wait_for(lambda: len(live.batches()) == 1, what="the blocker to start")
            results = list(pool.map(predict, keys))
            blocker.result()
    assert [r["key"] for r in results] == keys
    assert any(r["batch"] > 1 for r in results) is batched
    assert sorted(_flat(_batched_keys(live)[1:])) == sorted(keys)


@pytest.mark.parametrize("path", ["/jobs?wait=true", "/predict"])
def test_a_lone_request_is_not_held_for_the_batch_wait(
    redis_server: RedisServer, workdir: Path, path: str
) -> None:
    env = {"INFERQ_BATCH_MAX_WAIT_MS": "1000"}
    with running_stack(redis_server, workdir, consumer_workers=1, **env) as live:
        with live.client() as client:
            for _ in range(5):  # a single client: one request at a time
                response = client.post(path, json=batch_job(unique("lone")))
                assert response.status_code == 200
            metrics = client.get("/metrics").text
    held = [
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("inferq_batch_form_wait_seconds_sum")
    ]
    assert held and sum(held) < 0.5  # five requests, none held for the 1 s window
