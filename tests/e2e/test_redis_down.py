"""With Redis unreachable the API answers 503 with Retry-After, never 500, and stays alive."""

from __future__ import annotations

from pathlib import Path

from scripts import stack
from tests.support.stack import RedisServer, running_stack


def test_unreachable_redis_is_503_not_500(redis_server: RedisServer, workdir: Path) -> None:
    closed_port = stack.free_port()
    unreachable = f"redis://127.0.0.1:{closed_port}/0"
    env = {"INFERQ_REDIS_URL": unreachable, "INFERQ_REDIS_TIMEOUT_S": "1"}
    with (
        running_stack(redis_server, workdir, consumer_workers=0, **env) as live,
        live.client() as client,
    ):
        submit = client.post("/jobs", json={"model": "echo", "input": {"a": 1}})
        read = client.get("/jobs/abc")
        wait = client.get("/jobs/abc?wait=true&timeout=1")
        cancel = client.delete("/jobs/abc")
        for response in (submit, read, wait, cancel):
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "redis_unavailable"
            assert int(response.headers["retry-after"]) > 0
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "redis" in ready.json()["reason"]
        assert client.get("/healthz").status_code == 200
        assert client.post("/jobs", json={"model": "echo"}).status_code == 422
