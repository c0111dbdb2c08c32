"""`make compose-test`: docker-compose.yml run for real and checked from outside.

Builds the images (Debian-made base, Redis and Prometheus kept between runs; the app
image on top), starts the stack with three workers under a project of its own, and
checks what a user relies on: predictions on both paths, three live consumers, a
worker container killed mid-job losing nothing, a Redis restart keeping an accepted
job, a headless locust of the `loadtest` profile, Prometheus of the `monitoring`
profile scraping the API and every worker, and `down -v` leaving nothing behind.
Needs a running Docker engine, Docker Compose (v2 `docker compose` or Debian's
`docker-compose`) and, the first time, debootstrap.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from scripts import compose_images
from scripts.stack import ROOT, free_port, wait_until

PROJECT = "inferq-compose-test"
WORKERS = 3
SLOW_MS = 2500


class Compose:
    """docker compose (v2) or docker-compose (v1) on this repository, one project."""

    def __init__(self) -> None:
        v2 = subprocess.run(["docker", "compose", "version"], capture_output=True)
        self.command = ["docker", "compose"] if v2.returncode == 0 else ["docker-compose"]
        if self.command == ["docker-compose"] and not shutil.which("docker-compose"):
            raise SystemExit("needs Docker Compose: docker compose, or docker-compose")
        self.api_port, self.prometheus_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "INFERQ_QUEUE_SECRET": secrets.token_hex(16),
            "INFERQ_BASE_IMAGE": compose_images.BASE,
            "INFERQ_REDIS_IMAGE": compose_images.REDIS,
            "INFERQ_PROMETHEUS_IMAGE": compose_images.PROMETHEUS,
            "INFERQ_BUILD_NETWORK": "host",
            "INFERQ_API_PORT": str(self.api_port),
            "INFERQ_PROMETHEUS_PORT": str(self.prometheus_port),
            "INFERQ_LOCUST_PORT": str(free_port()),
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def __call__(self, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
        cmd = [*self.command, "-p", PROJECT, *args]
        done = subprocess.run(
            cmd,
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: exit {done.returncode}\n{done.stderr[-4000:]}")
        return done.stdout

    def containers(self, service: str) -> list[str]:
        return self("ps", "-q", service).split()


def main() -> int:
    began = time.monotonic()
    _require_engine()
    compose = Compose()
    timings: dict[str, float] = {}
    with _timed(timings, "images kept between runs (built now if missing)"):
        built = compose_images.ensure_images()
    for name, seconds in built.items():
        print(f"built {name} in {seconds} s")
    with _timed(timings, "app image build"):
        compose("build", "api", timeout=1800)
    compose("down", "-v", "--remove-orphans")  # whatever an interrupted run left
    try:
        with _timed(timings, "stack start (up to ready)"):
            compose("up", "-d", "--no-build", "--scale", f"worker={WORKERS}")
            _wait_ready(compose)
        for name, check in CHECKS:
            with _timed(timings, name):
                check(compose)
            print(f"ok: {name}", flush=True)
    finally:
        with _timed(timings, "down -v"):
            compose("--profile", "loadtest", "--profile", "monitoring", "down", "-v")
        _check_nothing_left()
    print("ok: down -v left no container, network or volume")
    timings["whole run"] = round(time.monotonic() - began, 1)
    size = subprocess.run(
        ["docker", "image", "inspect", "inferq:latest", "--format", "{{.Size}}"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(json.dumps({"seconds": timings, "image_mb": round(int(size) / 1e6)}, indent=2))
    return 0


def _require_engine() -> None:
    if not shutil.which("docker"):
        raise SystemExit("needs Docker: apt-get install docker.io docker-compose")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        raise SystemExit("needs a running Docker engine: start dockerd")


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    began = time.monotonic()
    try:
        yield
    finally:
        timings[name] = round(time.monotonic() - began, 1)


def _wait_ready(compose: Compose) -> None:
    def ready() -> bool:
        try:
            status = httpx.get(compose.url + "/status", timeout=3).json()
        except (httpx.HTTPError, ValueError):
            return False
        return len({c["host"] for c in status.get("consumers", [])}) == WORKERS

    wait_until(ready, 180, f"the API to report consumers in {WORKERS} worker containers")


def check_predictions(compose: Compose) -> None:
    """A prediction through POST /jobs?wait=true and through /predict."""
    body = {"model": "iris", "input": _iris()}
    with httpx.Client(base_url=compose.url, timeout=30) as client:
        queued = client.post("/jobs", params={"wait": "true"}, json=body)
        assert queued.status_code == 200, queued.text
        assert queued.json()["status"] == "succeeded" and queued.json()["result"]["class"]
        direct = client.post("/predict", json={"model": "iris", "input": _iris()})
        assert direct.status_code == 200, direct.text
        assert direct.json()["result"]["class"]


def check_consumers(compose: Compose) -> None:
    """Three worker containers, each a live consumer the API reports (two processes each)."""
    status = httpx.get(compose.url + "/status", timeout=10).json()
    hosts = {c["host"] for c in status["consumers"]}
    containers = {cid[:12] for cid in compose.containers("worker")}
    assert hosts == containers and len(hosts) == WORKERS, (hosts, containers)
    assert status["consumers_live"] == 2 * WORKERS


def check_monitoring(compose: Compose) -> None:
    """The `monitoring` profile's Prometheus scrapes the API and every worker."""
    compose("--profile", "monitoring", "up", "-d", "--no-recreate", "prometheus")
    url = f"http://127.0.0.1:{compose.prometheus_port}"

    def scraped() -> list[dict[str, Any]] | None:
        try:
            targets = httpx.get(url + "/api/v1/targets", timeout=3).json()["data"]
        except (httpx.HTTPError, ValueError, KeyError):
            return None
        active = targets["activeTargets"]
        jobs = sorted(t["labels"]["job"] for t in active if t["health"] == "up")
        return active if jobs == ["inferq-api"] + ["inferq-worker"] * WORKERS else None

    wait_until(lambda: scraped() is not None, 90, "Prometheus to scrape the API and workers")
    query = httpx.get(url + "/api/v1/query", params={"query": "max(inferq_consumers_live)"})
    assert float(query.json()["data"]["result"][0]["value"][1]) == 2 * WORKERS


def check_worker_killed(compose: Compose) -> None:
    """`docker kill` of a worker running slow jobs: every job still ends succeeded."""
    ids = _submit_slow(compose, 2 * 2 * WORKERS)
    victim, running = _a_worker_running_jobs(compose)
    subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
    records = _wait_all(compose, ids, 240)
    assert all(r["status"] == "succeeded" for r in records), [r["status"] for r in records]
    rerun = [r for r in records if r["id"] in running]
    assert rerun and all(r["attempts"] >= 2 for r in rerun), rerun
    compose("up", "-d", "--no-build", "--scale", f"worker={WORKERS}")  # back to three
    _wait_ready(compose)


def check_redis_restart(compose: Compose) -> None:
    """A job accepted before `restart redis` (AOF on a named volume) completes after it."""
    ids = _submit_slow(compose, 2 * WORKERS + 2, work_ms=1500)
    with httpx.Client(base_url=compose.url, timeout=10) as client:
        before = [client.get(f"/jobs/{job_id}").json()["status"] for job_id in ids]
    assert "queued" in before, before  # some job is still waiting when Redis goes
    (redis,) = compose.containers("redis")
    started = _started_at(redis)
    compose("restart", "redis")
    assert _started_at(redis) != started
    records = _wait_all(compose, ids, 240)
    assert all(r["status"] == "succeeded" for r in records), [r["status"] for r in records]


def check_loadtest(compose: Compose) -> None:
    """The `loadtest` profile: a short headless locust against the API exits 0."""
    short = {"LOCUST_HEADLESS": "true", "INFERQ_LT_USERS": "2,4", "INFERQ_LT_STEP_S": "5"}
    compose("--profile", "loadtest", "up", "-d", "--no-build", "locust", env=short)
    (master,) = compose.containers("locust-master")
    waited = subprocess.run(["docker", "wait", master], capture_output=True, text=True, timeout=180)
    logs = subprocess.run(["docker", "logs", master], capture_output=True, text=True)
    refusals = [line for line in compose("logs", "api").splitlines() if "rejected" in line]
    assert waited.stdout.strip() == "0", logs.stderr[-1500:] + "\n".join(refusals[-5:])
    assert "Aggregated" in logs.stdout + logs.stderr  # locust printed its stats: it ran


CHECKS: list[tuple[str, Callable[[Compose], None]]] = [
    ("predictions on both paths", check_predictions),
    ("three live consumers", check_consumers),
    ("monitoring profile scrapes the API and every worker", check_monitoring),
    ("a killed worker loses no job", check_worker_killed),
    ("a Redis restart keeps an accepted job", check_redis_restart),
    ("loadtest profile runs headless and exits 0", check_loadtest),
]


def _iris() -> dict[str, float]:
    n = uuid.uuid4().int % 1000 / 1000
    return {"sepal_length": 5 + n, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def _submit_slow(compose: Compose, count: int, work_ms: int = SLOW_MS) -> list[str]:
    with httpx.Client(base_url=compose.url, timeout=30) as client:
        ids = []
        for _ in range(count):
            body = {"model": "burn", "input": {"text": uuid.uuid4().hex, "work_ms": work_ms}}
            response = client.post("/jobs", json=body)
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
    return ids


def _a_worker_running_jobs(compose: Compose) -> tuple[str, set[str]]:
    """A worker container and the jobs it runs now, from GET /status."""
    found: list[tuple[str, set[str]]] = []

    def busy() -> bool:
        status = httpx.get(compose.url + "/status", timeout=5).json()
        for consumer in status["consumers"]:
            if consumer["current_jobs"]:
                found.append((consumer["host"], set(consumer["current_jobs"])))
                return True
        return False

    wait_until(busy, 60, "a worker to start a slow job")
    host, running = found[0]
    (container,) = [c for c in compose.containers("worker") if c.startswith(host)]
    return container, running


def _wait_all(compose: Compose, ids: list[str], within_s: float) -> list[dict[str, Any]]:
    """Every job's record once it has finished; rides out a restarting Redis."""
    deadline = time.monotonic() + within_s
    done: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=compose.url, timeout=40) as client:
        while len(done) < len(ids) and time.monotonic() < deadline:
            for job_id in (i for i in ids if i not in done):
                try:
                    r = client.get(f"/jobs/{job_id}", params={"wait": "true", "timeout": 30})
                except httpx.HTTPError:
                    time.sleep(1)
                    continue
                if r.status_code == 200:
                    done[job_id] = r.json()
                elif r.status_code not in (202, 503):
                    raise AssertionError(f"GET /jobs/{job_id}: {r.status_code} {r.text}")
    assert len(done) == len(ids), f"{len(ids) - len(done)} jobs unfinished after {within_s}s"
    return [done[i] for i in ids]


def _started_at(container: str) -> str:
    return subprocess.run(
        ["docker", "inspect", "--format", "{{.State.StartedAt}}", container],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _check_nothing_left() -> None:
    label = f"label=com.docker.compose.project={PROJECT}"
    for kind in (["ps", "-aq"], ["network", "ls", "-q"], ["volume", "ls", "-q"]):
        left = subprocess.run(
            ["docker", *kind, "--filter", label], capture_output=True, text=True
        ).stdout.split()
        assert not left, f"docker {' '.join(kind)}: {left} left behind"


if __name__ == "__main__":
    sys.exit(main())
