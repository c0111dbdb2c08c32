"""Redis outages, restarts, refused writes and connection URLs, with a redis-server per test."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from scripts import stack
from tests.support.stack import RedisServer, running_stack, unique, wait_for


@pytest.fixture
def durable_redis(workdir: Path) -> Iterator[RedisServer]:
    port = stack.free_port()
    proc = stack.start_redis(port, workdir / "redis-data", durable=True, log=workdir / "redis.log")
    server = RedisServer(port, proc)
    yield server
    stack.stop(server.proc)


def _restart(server: RedisServer, workdir: Path) -> None:
    server.proc = stack.start_redis(
        server.port, workdir / "redis-data", durable=True, log=workdir / "redis.log"
    )


@pytest.mark.timeout(180)
def test_redis_down_then_back_answers_503_then_recovers_without_restarts(
    durable_redis: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_REDIS_TIMEOUT_S": "1"}
    with running_stack(durable_redis, workdir, consumer_workers=1, **env) as live:
        with live.client(timeout=15) as client:
            running_key, queued_key = unique("running"), unique("queued")
            running = client.post(
                "/jobs", json={"model": "counting", "input": {"key": running_key, "sleep_ms": 1500}}
            ).json()
            wait_for(lambda: running_key in live.runs(), what="the first job to start")
            queued = client.post(
                "/jobs", json={"model": "counting", "input": {"key": queued_key}}
            ).json()

            stack.stop(durable_redis.proc)  # SIGTERM: Redis writes its append-only file and exits
            body = {"model": "echo", "input": {"n": unique()}}
            began = time.monotonic()
            outage = [
                client.post("/jobs", json=body),
                client.get(f"/jobs/{queued['id']}"),
                client.get(f"/jobs/{queued['id']}?wait=true&timeout=1"),
                client.post("/jobs?wait=true&timeout=1", json=body),
            ]
            assert time.monotonic() - began < 12  # nothing hangs past its timeout
            for response in outage:
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "redis_unavailable"
                assert int(response.headers["retry-after"]) >= 1
            assert client.get("/readyz").status_code == 503
            assert client.get("/healthz").status_code == 200

            _restart(durable_redis, workdir)
            wait_for(
                lambda: client.get("/readyz").status_code == 200,
                timeout=30,
                what="readiness after Redis returns",
            )
            for job in (running, queued):
                final = client.get(f"/jobs/{job['id']}?wait=true&timeout=30")
                assert final.status_code == 200 and final.json()["status"] == "succeeded"
            fresh = client.post("/jobs?wait=true&timeout=30", json=body)
            assert fresh.status_code == 200 and fresh.json()["status"] == "succeeded"


@pytest.mark.timeout(120)
def test_the_first_requests_after_a_redis_restart_succeed(
    durable_redis: RedisServer, workdir: Path
) -> None:
    # Found by the compose test: pooled connections to the Redis that went away failed
    # the next request each took them for, as 503s, long after Redis was back.
    with running_stack(durable_redis, workdir, consumer_workers=1) as live:
        with live.client(timeout=15) as client:
            job = client.post("/jobs?wait=true", json={"model": "echo", "input": {"n": unique()}})
            assert job.status_code == 200
            with ThreadPoolExecutor(8) as pool:  # the pool holds several connections now
                warm = list(pool.map(lambda _: client.get(f"/jobs/{job.json()['id']}"), range(8)))
            assert all(r.status_code == 200 for r in warm)
            stack.stop(durable_redis.proc)
            _restart(durable_redis, workdir)
            with ThreadPoolExecutor(8) as pool:
                after = list(pool.map(lambda _: client.get(f"/jobs/{job.json()['id']}"), range(8)))
            assert [r.status_code for r in after] == [200] * 8, [r.text for r in after]
            fresh = client.post("/jobs?wait=true", json={"model": "echo", "input": {"n": unique()}})
            assert fresh.status_code == 200, fresh.text


def test_redis_refusing_writes_is_503_not_500(durable_redis: RedisServer, workdir: Path) -> None:
    with running_stack(durable_redis, workdir, consumer_workers=0) as live, live.client() as client:
        admin = durable_redis.client()
        admin.config_set("maxmemory", "1")  # every write is now refused with OOM
        try:
            refused = client.post("/jobs", json={"model": "echo", "input": {"n": unique()}})
        finally:
            admin.config_set("maxmemory", "0")
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "redis_unavailable"
        assert "retry-after" in refused.headers
        again = client.post("/jobs", json={"model": "echo", "input": {"n": unique()}})
        assert again.status_code == 202


def _auth_ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _tls_files(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "redis.crt", directory / "redis.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _url_case(kind: str, port: int, workdir: Path) -> tuple[tuple[str, ...], str]:
    """redis-server arguments and the client URL for one way of connecting."""
    if kind == "password":
        return ("--requirepass", "s3cret-pass"), f"redis://:s3cret-pass@127.0.0.1:{port}/0"
    if kind == "acl-user":
        acl = (
            "--user",
            "default",
            "off",
            "--user",
            "inferq",
            "on",
            ">user-pass",
            "~*",
            "&*",
            "+@all",
        )
        return acl, f"redis://inferq:user-pass@127.0.0.1:{port}/0"
    if kind == "database":
        return (), f"redis://127.0.0.1:{port}/5"
    cert, key = _tls_files(workdir)
    args = (
        "--port",
        "0",
        "--tls-port",
        str(port),
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--tls-ca-cert-file",
        str(cert),
        "--tls-auth-clients",
        "no",
    )
    return args, f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["password", "acl-user", "database", "tls"])
def test_redis_urls_with_credentials_database_and_tls_work(kind: str, workdir: Path) -> None:
    if kind == "tls" and not shutil.which("openssl"):
        pytest.fail("openssl is needed to make a certificate for the TLS case")
    port = stack.free_port()
    args, url = _url_case(kind, port, workdir)
    proc = stack.start_redis(
        port, workdir / "data", extra=args, log=workdir / "redis.log", ping=lambda: _auth_ping(url)
    )
    server = RedisServer(port, proc, connect_url=url)
    try:
        with running_stack(server, workdir, consumer_workers=1) as live:
            with live.client() as client:
                response = client.post(
                    "/jobs?wait=true", json={"model": "echo", "input": {"k": kind}}
                )
                assert response.status_code == 200 and response.json()["result"] == {"k": kind}
                assert client.get("/readyz").status_code == 200
            if kind == "database":
                assert redis.Redis.from_url(url).exists(
                    f"{live.namespace}:job:{response.json()['id']}"
                )
    finally:
        stack.stop(proc)
