"""API keys, per-key job ownership, rate limits, body size limits and signed queue messages."""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.keys import RedisKeys
from scripts import stack
from tests.support.stack import RedisServer, Stack, running_stack, unique, wait_for

ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"INFERQ_API_KEYS": f"{ALICE},{BOB}", "INFERQ_MAX_BODY_BYTES": "4096"}
    with running_stack(redis_server, tmp_path_factory.mktemp("keyed"), **env) as live:
        yield live


def test_missing_or_wrong_key_is_401_with_a_json_error(keyed: Stack) -> None:
    with keyed.client() as client:
        for headers in ({}, auth("not-a-key"), {"X-API-Key": "nope"}):
            response = client.post("/jobs", json={"model": "echo", "input": {}}, headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
        assert client.get("/models").status_code == 401
        assert client.get("/models", headers={"X-API-Key": ALICE}).status_code == 200


def test_probes_and_metrics_stay_open(keyed: Stack) -> None:
    with keyed.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_a_job_is_visible_only_to_the_key_that_created_it(keyed: Stack) -> None:
    with keyed.client() as client:
        body = {"model": "counting", "input": {"key": unique(), "sleep_ms": 300}}
        job = client.post("/jobs", json=body, headers=auth(ALICE)).json()
        path = f"/jobs/{job['id']}"
        for request in (
            lambda: client.get(path, headers=auth(BOB)),
            lambda: client.get(f"{path}?wait=true&timeout=1", headers=auth(BOB)),
            lambda: client.delete(path, headers=auth(BOB)),
        ):
            response = request()
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "job_not_found"
        mine = client.get(f"{path}?wait=true", headers=auth(ALICE))
        assert mine.status_code == 200 and mine.json()["status"] == "succeeded"


def test_the_same_input_from_two_keys_gives_each_its_own_job(keyed: Stack) -> None:
    with keyed.client() as client:
        body = {"model": "counting", "input": {"key": unique(), "sleep_ms": 300}}
        a = client.post("/jobs?wait=true", json=body, headers=auth(ALICE)).json()
        b = client.post("/jobs?wait=true", json=body, headers=auth(BOB)).json()
        assert a["id"] != b["id"] and a["result"] == b["result"]
        assert client.get(f"/jobs/{b['id']}", headers=auth(ALICE)).status_code == 404


def test_bodies_over_the_limit_are_413_even_when_chunked(keyed: Stack) -> None:
    big = {"model": "echo", "input": {"blob": "x" * 10_000}}
    with keyed.client() as client:
        sized = client.post("/jobs", json=big, headers=auth(ALICE))
        assert sized.status_code == 413
        assert sized.json()["error"]["code"] == "payload_too_large"

        def chunks() -> Iterator[bytes]:
            for _ in range(20):
                yield b'{"model": "echo", "input": {"blob": "' + b"y" * 500
            yield b'"}}'

        chunked = client.post(
            "/jobs", content=chunks(), headers={**auth(ALICE), "content-type": "application/json"}
        )
        assert chunked.status_code == 413
        small = client.post("/jobs", json={"model": "echo", "input": {"a": 1}}, headers=auth(ALICE))
        assert small.status_code == 202


def test_metrics_can_require_a_key(redis_server: RedisServer, workdir: Path) -> None:
    env = {"INFERQ_API_KEYS": ALICE, "INFERQ_METRICS_REQUIRE_KEY": "true"}
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as live:
        with live.client() as client:
            assert client.get("/metrics").status_code == 401
            assert client.get("/metrics", headers=auth(ALICE)).status_code == 200


def test_rate_limit_answers_429_with_retry_after(redis_server: RedisServer, workdir: Path) -> None:
    env = {"INFERQ_API_KEYS": ALICE, "INFERQ_RATE_LIMIT_PER_S": "1", "INFERQ_RATE_LIMIT_BURST": "3"}
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as live:
        with live.client() as client:
            codes = [client.get("/models", headers=auth(ALICE)).status_code for _ in range(6)]
            assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
            limited = client.get("/models", headers=auth(ALICE))
            assert limited.status_code == 429
            assert limited.json()["error"]["code"] == "rate_limited"
            assert int(limited.headers["retry-after"]) >= 1


class _Exploit:
    """Unpickling this runs a command: what a forged queue message would try."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_forged_queue_message_is_rejected_logged_and_never_run(
    redis_server: RedisServer, workdir: Path
) -> None:
    marker = workdir / "pwned"
    with running_stack(redis_server, workdir, consumer_workers=1) as live:
        redis = live.redis.client()
        queue = f"huey.redis.{live.namespace}_jobs"
        forged = struct.pack(">Q", time.time_ns() // 1000) + pickle.dumps(_Exploit(marker))
        redis.zadd(queue, {forged: -10})
        with live.client() as client:
            ok = client.post("/jobs?wait=true", json={"model": "echo", "input": {"after": 1}})
            assert ok.json()["status"] == "succeeded"  # the consumer carried on

        def logged() -> bool:
            logs = "".join(p.read_text() for p in (workdir / "logs").glob("worker-*.log"))
            return "rejected a queue message without a valid signature" in logs

        wait_for(logged, what="the rejection in the worker log")
        assert not redis.hlen(RedisKeys(live.namespace).leases)  # nothing left to put back
    assert not marker.exists()


def test_the_api_refuses_to_start_without_a_queue_secret_in_production(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # Settings that cannot be used fail the startup, with the reason: not a server that
    # answers every request with a 500.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ["HOME"],
        "PYTHONPATH": str(stack.ROOT),
        "INFERQ_REDIS_URL": redis_server.url,
        "INFERQ_LOG_DIR": str(tmp_path / "logs"),
        "INFERQ_METRICS_DIR": str(tmp_path / "metrics"),
    }
    command = [str(stack.BIN / "uvicorn"), "api.main:app", "--port", str(stack.free_port())]
    run = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "INFERQ_QUEUE_SECRET" in run.stderr and "Application startup failed" in run.stderr
