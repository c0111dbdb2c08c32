"""The worker's computation runner and heartbeat against a real Redis, without HTTP."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio

import worker
from api.jobstore import JobStore, PreparedJob
from config import Settings
from core.jobs import Priority
from core.keys import RedisKeys
from core.models import ModelRegistry
from tests.support.stack import RedisServer, flush_namespace
from worker.app import make_huey
from worker.heartbeat import Heartbeat
from worker.runner import ComputationRunner
from worker.tasks import queue_entry


@pytest.fixture
def settings(redis_server: RedisServer) -> Iterator[Settings]:
    namespace = f"i{uuid.uuid4().hex[:10]}"
    yield Settings(_env_file=None, redis_url=redis_server.url, namespace=namespace)
    flush_namespace(redis_server.client(), namespace)


def _submit(settings: Settings, job: PreparedJob, cancel: bool = False) -> str:
    async def go() -> str:
        client = redis.asyncio.Redis.from_url(settings.redis_url)
        store = JobStore(client, RedisKeys(settings.namespace), _queue_key(settings), settings)
        submitted = await store.submit(job)
        if cancel:
            await store.cancel(job.id, job.owner)
        await client.aclose()
        return submitted.route

    return asyncio.run(go())


def _queue_key(settings: Settings) -> str:
    key: str = make_huey(settings).storage.queue_key
    return key


def _dequeue_and_run(settings: Settings, models: ModelRegistry) -> None:
    huey = make_huey(settings)  # this test's namespace; the task lives on worker.huey
    data = huey.storage.dequeue()
    assert data is not None
    task = worker.huey.deserialize_task(data)
    runner = ComputationRunner(
        huey.storage.conn,
        RedisKeys(settings.namespace),
        models,
        settings,
        "w1",
        encode=lambda payload: queue_entry(payload, payload["rank"], at_us=0),
        queue_key=huey.storage.queue_key,
    )
    runner.run(*task.args)


def _job(model: str, version: str, payload: dict[str, object]) -> PreparedJob:
    return PreparedJob(uuid.uuid4().hex, model, version, Priority.NORMAL, json.dumps(payload), None)


def _record(settings: Settings, job_id: str) -> dict[str, str]:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    return client.hgetall(RedisKeys(settings.namespace).job(job_id))


def test_a_huey_message_written_by_the_api_runs_in_the_worker(settings: Settings) -> None:
    job = _job("echo", "1", {"a": 1})
    assert _submit(settings, job) == "enqueued"
    _dequeue_and_run(settings, ModelRegistry.from_paths([]))
    record = _record(settings, job.id)
    assert record["status"] == "succeeded" and json.loads(record["result"]) == {"a": 1}
    assert record["worker"] == "w1" and record["attempts"] == "1"


def test_a_canceled_computation_is_skipped(settings: Settings) -> None:
    job = _job("echo", "1", {"a": 2})
    _submit(settings, job, cancel=True)
    _dequeue_and_run(settings, ModelRegistry.from_paths([]))
    record = _record(settings, job.id)
    assert record["status"] == "canceled" and record["attempts"] == "0"
    assert "result" not in record


def test_a_model_version_the_worker_does_not_have_fails_clearly(settings: Settings) -> None:
    job = _job("echo", "0", {"a": 3})
    _submit(settings, job)
    _dequeue_and_run(settings, ModelRegistry.from_paths([]))
    record = _record(settings, job.id)
    assert record["status"] == "failed"
    assert json.loads(record["error"])["code"] == "model_version_mismatch"


def test_heartbeat_records_and_removes_the_worker(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    key = RedisKeys(settings.namespace).heartbeats
    beat = Heartbeat(client, key, "host:1", interval=0.05)
    beat.start()
    first = client.zscore(key, "host:1")
    deadline = time.monotonic() + 5
    while client.zscore(key, "host:1") == first and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.zscore(key, "host:1") != first  # it keeps beating
    beat.stop()
    assert client.zscore(key, "host:1") is None


def test_every_lua_script_compiles(redis_server: RedisServer) -> None:
    client = redis_server.client()
    sources = {name: value for name, value in vars(worker.scripts).items() if name.isupper()}
    assert {"SUBMIT", "CLAIM", "START", "FINISH", "REAP"} <= set(sources)
    for name, source in sources.items():
        assert client.script_load(source), name
