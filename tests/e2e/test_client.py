"""The inferq_client package against a real stack."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from inferq_client import ApiError, AsyncClient, Client, JobFailedError
from inferq_client._policy import RetryPolicy

from tests.support.stack import RedisServer, running_stack, unique

OPERATOR = "operator-key-0123456789"
IRIS = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def test_predict_wait_cancel_and_list(redis_server: RedisServer, workdir: Path) -> None:
    with (
        running_stack(redis_server, workdir, consumer_workers=1) as live,
        Client(live.url) as client,
    ):
        assert client.predict(IRIS)["class"] == "setosa"
        with pytest.raises(JobFailedError) as failed:
            client.predict({"reason": "nope"}, model="failing")
        assert failed.value.job["error"]["code"] == "model_error"
        slow = client.submit({"key": unique(), "sleep_ms": 300}, model="counting")
        assert client.wait(slow["id"])["status"] == "succeeded"
        assert client.list(model="counting")["jobs"][0]["id"] == slow["id"]
        with pytest.raises(ApiError) as missing:
            client.get("nope")
        assert missing.value.status == 404 and missing.value.code == "job_not_found"


def test_a_refused_submit_is_retried_after_retry_after_and_makes_one_job(
    redis_server: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_OPERATOR_KEYS": OPERATOR}
    with running_stack(redis_server, workdir, consumer_workers=1, **env) as live:
        with Client(live.url, api_key=OPERATOR) as operator:
            operator._call("POST", "/admin/pause")
            threading.Timer(2.0, lambda: operator._call("POST", "/admin/resume")).start()
            began = time.monotonic()
            with Client(live.url, retry=RetryPolicy(attempts=5)) as client:
                result = client.predict({"key": unique()}, model="counting")
            assert time.monotonic() - began >= 2.0  # it waited for intake, not failed
            assert "key" in result
            assert len(operator.list(model="counting")["jobs"]) == 1


def test_the_async_client_does_the_same(redis_server: RedisServer, workdir: Path) -> None:
    async def run(url: str) -> list[object]:
        async with AsyncClient(url) as client:
            return list(await asyncio.gather(*(client.predict(IRIS) for _ in range(5))))

    with running_stack(redis_server, workdir, consumer_workers=1) as live:
        results = asyncio.run(run(live.url))
    assert [r["class"] for r in results] == ["setosa"] * 5  # type: ignore[index]
