"""GET /jobs: newest first from the job index, filtered, paginated, per tenant."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.support.stack import RedisServer, running_stack, unique, wait_for

ALICE, BOB, OPERATOR = "alice-key-0123456789", "bob-key-0123456789", "operator-key-0123456789"


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _all_pages(client: httpx.Client, limit: int, **params: Any) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = client.get("/jobs", params=query)
        assert page.status_code == 200, page.text
        jobs += page.json()["jobs"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return jobs


def test_jobs_are_listed_newest_first_filtered_and_paginated(
    redis_server: RedisServer, workdir: Path
) -> None:
    with running_stack(redis_server, workdir, consumer_workers=1) as live:
        with live.client() as client:
            ok = [
                client.post(
                    "/jobs?wait=true", json={"model": "echo", "input": {"n": unique()}}
                ).json()
                for _ in range(5)
            ]
            failed = client.post("/jobs?wait=true", json={"model": "failing", "input": {}}).json()
            middle = datetime.now(UTC)
            time.sleep(0.01)
            low = client.post(
                "/jobs", json={"model": "echo", "input": {"n": unique()}, "priority": "low"}
            ).json()
            wait_for(lambda: client.get(f"/jobs/{low['id']}").json()["status"] == "succeeded")

            everything = _all_pages(client, limit=2)
            ids = [job["id"] for job in everything]
            assert ids == [low["id"], failed["id"], *[job["id"] for job in reversed(ok)]]
            assert everything[1]["status"] == "failed" and everything[1]["error"]["code"]

            assert [j["id"] for j in _all_pages(client, 10, status="failed")] == [failed["id"]]
            assert [j["id"] for j in _all_pages(client, 10, priority="low")] == [low["id"]]
            assert len(_all_pages(client, 3, model="echo", status="succeeded")) == 6
            assert [j["id"] for j in _all_pages(client, 10, since=middle.timestamp())] == [
                low["id"]
            ]
            before = _all_pages(client, 10, until=middle.timestamp())
            assert low["id"] not in {j["id"] for j in before} and len(before) == 6
            assert client.get("/jobs", params={"status": "nope"}).status_code == 422
            # One value per declared parameter, as the schema says (FastAPI took the last),
            # on the list and on a job's read; an undeclared one is ignored as before.
            twice = client.get("/jobs", params=[("limit", "1"), ("limit", "500")])
            assert twice.status_code == 422 and "given more than once" in twice.text
            assert "limit" in twice.json()["error"]["fields"][0]["field"]
            read = client.get(f"/jobs/{low['id']}", params=[("wait", "true"), ("wait", "no")])
            assert read.status_code == 422 and "wait" in read.text
            assert client.get("/jobs", params=[("x", "1"), ("x", "2")]).status_code == 200
            history = client.get("/status/history", params=[("minutes", "1"), ("minutes", "2")])
            assert history.status_code == 422

        # History lives in Redis: a restarted API lists the same jobs.
        live.stop_api()
        live.start_api()
        with live.client() as client:
            assert [job["id"] for job in _all_pages(client, 50)] == ids


def test_a_tenant_lists_only_its_jobs_and_an_operator_all(
    redis_server: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_API_KEYS": f"{ALICE},{BOB}", "INFERQ_OPERATOR_KEYS": OPERATOR}
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as live:
        with live.client() as client:
            mine = client.post(
                "/jobs", json={"model": "echo", "input": {"a": 1}}, headers=_as(ALICE)
            )
            theirs = client.post(
                "/jobs", json={"model": "echo", "input": {"b": 1}}, headers=_as(BOB)
            )
            alice = client.get("/jobs", headers=_as(ALICE)).json()["jobs"]
            everyone = client.get("/jobs", headers=_as(OPERATOR)).json()["jobs"]
            assert client.get("/jobs").status_code == 401
    assert [job["id"] for job in alice] == [mine.json()["id"]]
    assert {job["id"] for job in everyone} == {mine.json()["id"], theirs.json()["id"]}


def test_the_index_never_outlives_the_records(redis_server: RedisServer, workdir: Path) -> None:
    with (
        running_stack(redis_server, workdir, consumer_workers=0, INFERQ_JOB_TTL_S="1") as live,
        live.client() as client,
    ):
        client.post("/jobs", json={"model": "echo", "input": {"n": unique()}})
        canceled = client.post("/jobs", json={"model": "echo", "input": {"n": unique()}})
        assert client.delete(f"/jobs/{canceled.json()['id']}").status_code == 200
        assert len(client.get("/jobs").json()["jobs"]) == 2
        assert len(client.get("/jobs", params={"status": "canceled"}).json()["jobs"]) == 1
        time.sleep(1.5)
        assert client.get("/jobs").json()["jobs"] == []
        assert client.get("/jobs", params={"status": "queued"}).json()["jobs"] == []
        assert client.get("/jobs", params={"status": "canceled"}).json()["jobs"] == []
        redis = live.redis.client()
        assert redis.zcard(f"{live.namespace}:jobs:all") == 0
        assert redis.zcard(f"{live.namespace}:jobs:status:canceled") == 0
