"""Idempotency-Key on POST /jobs: a retried submit never makes a second job."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.stack import RedisServer, running_stack, unique

ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789"


def test_the_same_key_returns_the_same_job_even_under_concurrency(
    redis_server: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_API_KEYS": f"{ALICE},{BOB}"}
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as live:
        body = {"model": "counting", "input": {"key": unique()}}

        def post(key: str, tenant: str = ALICE, json: object = body) -> tuple[int, dict[str, Any]]:
            headers = {"Idempotency-Key": key, "Authorization": f"Bearer {tenant}"}
            with live.client() as client:
                response = client.post("/jobs", json=json, headers=headers)
                return response.status_code, response.json()

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(lambda _: post("retry-1"), range(32)))
        assert {status for status, _ in answers} == {202}
        assert len({job["id"] for _, job in answers}) == 1  # one job, returned 32 times
        redis = live.redis.client()
        assert redis.zcard(f"{live.namespace}:queue:counting:1") == 1  # enqueued once

        other = {"model": "counting", "input": {"key": unique()}}
        status, error = post("retry-1", json=other)
        assert status == 422 and error["error"]["code"] == "idempotency_key_reused"
        # Keys are per tenant: Bob's "retry-1" is his own.
        status, bobs = post("retry-1", tenant=BOB)
        assert status == 202 and bobs["id"] != answers[0][1]["id"]
        # Without a key, the same body is a new job (attached to the same computation).
        with live.client() as client:
            plain = client.post("/jobs", json=body, headers={"Authorization": f"Bearer {ALICE}"})
        assert plain.json()["id"] != answers[0][1]["id"]


def test_a_refused_submit_can_be_retried_with_its_key(
    redis_server: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_QUEUE_MAX_DEPTH": "1"}
    with (
        running_stack(redis_server, workdir, consumer_workers=0, **env) as live,
        live.client() as client,
    ):
        first = client.post("/jobs", json={"model": "counting", "input": {"key": unique()}})
        body = {"model": "counting", "input": {"key": unique()}}
        refused = client.post("/jobs", json=body, headers={"Idempotency-Key": "k"})
        assert refused.status_code == 503
        client.delete(f"/jobs/{first.json()['id']}")
        accepted = client.post("/jobs", json=body, headers={"Idempotency-Key": "k"})
        assert accepted.status_code == 202
        again = client.post(
            "/jobs?wait=true&timeout=1", json=body, headers={"Idempotency-Key": "k"}
        )
        assert again.json()["id"] == accepted.json()["id"]
