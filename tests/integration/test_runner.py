"""The worker's computation runner and heartbeat against a real Redis, without HTTP."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
import redis.asyncio

import worker.scripts
import worker.settle
from api.jobstore import JobStore, PreparedJob
from config import Settings
from core.batching import CostFit
from core.jobs import Priority
from core.keys import RedisKeys
from core.models import ModelRegistry
from tests.support.stack import RedisServer, flush_namespace
from worker.app import make_huey
from worker.batches import Batch
from worker.heartbeat import Heartbeat
from worker.runner import ComputationRunner

_OPENED: list[redis.Redis] = []  # clients a test opened; closed when it ends


@pytest.fixture
def settings(redis_server: RedisServer) -> Iterator[Settings]:
    namespace = f"i{uuid.uuid4().hex[:10]}"
    yield Settings(_env_file=None, redis_url=redis_server.url, namespace=namespace)
    with redis_server.client() as client:
        flush_namespace(client, namespace)
    while _OPENED:
        _OPENED.pop().close()


def _client(settings: Settings, **options: object) -> redis.Redis:
    client = redis.Redis.from_url(settings.redis_url, **options)
    _OPENED.append(client)
    return client


def _submit(settings: Settings, job: PreparedJob, cancel: bool = False) -> str:
    async def go() -> str:
        client = redis.asyncio.Redis.from_url(settings.redis_url)
        store = JobStore(client, RedisKeys(settings.namespace), settings)
        submitted = await store.submit(job)
        if cancel:
            await store.cancel(job.id, job.owner)
        await client.aclose()
        return submitted.route

    return asyncio.run(go())


def _runner(settings: Settings, models: ModelRegistry) -> ComputationRunner:
    huey = make_huey(settings)  # this test's namespace
    _OPENED.append(huey.storage.conn)
    keys = RedisKeys(settings.namespace)
    return ComputationRunner(
        huey.storage.conn, keys, models, settings, "w1", huey.storage.queue_key
    )


def _dequeue_and_run(settings: Settings, models: ModelRegistry) -> None:
    runner = _runner(settings, models)
    batch = _take_one(runner)
    runner.run(batch)


def _take_one(runner: ComputationRunner) -> Batch:
    batch = runner.take()
    assert isinstance(batch, Batch)
    return batch


def _job(
    model: str, version: str, payload: dict[str, object], priority: Priority = Priority.NORMAL
) -> PreparedJob:
    return PreparedJob(uuid.uuid4().hex, model, version, priority, json.dumps(payload), None)


def _record(settings: Settings, job_id: str) -> dict[str, str]:
    client = _client(settings, decode_responses=True)
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
    assert _runner(settings, ModelRegistry.from_paths([])).take() is None
    record = _record(settings, job.id)
    assert record["status"] == "canceled" and record.get("attempts", "0") == "0"  # never run
    assert "result" not in record


def test_a_worker_never_runs_a_model_version_it_does_not_have(settings: Settings) -> None:
    job = _job("echo", "0", {"a": 3})
    _submit(settings, job)
    assert _runner(settings, ModelRegistry.from_paths([])).take() is None
    assert _record(settings, job.id)["status"] == "queued"


def test_heartbeat_records_and_removes_the_worker(settings: Settings) -> None:
    client = _client(settings)
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
    sources = {name: value for name, value in vars(worker.scripts).items() if name.isupper()}
    assert {"SUBMIT", "TAKE", "FINISH", "REAP"} <= set(sources)
    with redis_server.client() as client:
        for name, source in sources.items():
            assert client.script_load(source), name


def _published(settings: Settings, run: Callable[[], None]) -> list[bytes]:
    """What the completion channel carried while `run` ran."""
    pubsub = _client(settings).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(RedisKeys(settings.namespace).done_channel)
    while pubsub.get_message(timeout=1.0) is None and not pubsub.subscribed:
        pass
    run()
    messages = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message is not None:
            messages.append(message["data"])
        elif messages:
            break
    pubsub.close()
    return messages


# The completion message goes out from FINISH (up to INLINE_MESSAGE_MAX) or after it.
@pytest.mark.parametrize("inline_max", [worker.settle.INLINE_MESSAGE_MAX, 0])
def test_a_settled_batch_publishes_every_record_as_written(
    settings: Settings, inline_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker.settle, "INLINE_MESSAGE_MAX", inline_max)
    jobs = [_job("echo", "1", {"n": n}) for n in range(3)]
    for job in jobs:
        _submit(settings, job)
    runner = _runner(settings, ModelRegistry.from_paths([]))
    batch = _take_one(runner)
    messages = _published(settings, lambda: runner.run(batch))
    published = {r["id"]: r for m in messages for r in json.loads(m)}
    assert len(messages) == 1  # one message for the batch
    assert set(published) == {job_id for job_id, _, _ in batch.started}
    for job_id, record in published.items():
        stored = _record(settings, job_id)
        assert record["status"] == stored["status"] == "succeeded"
        assert record["result"] == stored["result"] and record["attempts"] == stored["attempts"]
        assert record["started_at"] == stored["started_at"]
        assert record["finished_at"] == stored["finished_at"]


def test_a_busy_worker_takes_its_next_batch_as_it_settles_and_can_hand_it_back(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"batch_max_size": 1})
    first, second = _job("echo", "1", {"n": 1}), _job("echo", "1", {"n": 2})
    for job in (first, second):
        _submit(settings, job)
    runner = _runner(settings, ModelRegistry.from_paths([]))
    runner.run(_take_one(runner))
    assert _record(settings, first.id)["status"] == "succeeded"
    assert _record(settings, second.id)["status"] == "running"  # taken in FINISH's trip
    runner.release_prefetched()  # as at shutdown: back to the queue, as if never taken
    handed_back = _record(settings, second.id)
    assert handed_back["status"] == "queued" and handed_back["attempts"] == "0"
    assert _client(settings).hlen(RedisKeys(settings.namespace).leases) == 0
    again = _take_one(runner)
    assert [job_id for job_id, _, _ in again.started] == [second.id]
    runner.run(again)  # nothing left to take after it
    assert _record(settings, second.id)["attempts"] == "1"
    assert _client(settings).hlen(RedisKeys(settings.namespace).leases) == 0
    assert runner.take() is None


def test_a_take_after_a_finish_redis_had_lost_keeps_its_batch(settings: Settings) -> None:
    settings = settings.model_copy(update={"batch_max_size": 1})
    first, second = _job("echo", "1", {"n": 1}), _job("echo", "1", {"n": 2})
    for job in (first, second):
        _submit(settings, job)
    runner = _runner(settings, ModelRegistry.from_paths([]))
    batch = _take_one(runner)
    client = _client(settings)
    client.script_flush()  # as after a Redis restart: FINISH fails, the TAKE behind it runs
    client.script_load(worker.scripts.TAKE)
    runner.run(batch)
    assert _record(settings, first.id)["status"] == "succeeded"
    again = _take_one(runner)
    assert [job_id for job_id, _, _ in again.started] == [second.id]
    runner.run(again)
    assert _record(settings, second.id)["status"] == "succeeded"
    assert client.hlen(RedisKeys(settings.namespace).leases) == 0


def _taken_back(settings: Settings) -> tuple[PreparedJob, ComputationRunner, Batch]:
    """An echo job taken in a batch whose lease was then taken back (queued again)."""
    job = _job("echo", "1", {"n": uuid.uuid4().hex})
    _submit(settings, job)
    runner = _runner(settings, ModelRegistry.from_paths([]))
    batch = _take_one(runner)
    runner.release(batch)  # as REAP does when a heartbeat went stale
    return job, runner, batch


def test_a_batch_whose_lease_was_taken_back_still_settles_and_publishes(
    settings: Settings,
) -> None:
    job, runner, batch = _taken_back(settings)
    assert _record(settings, job.id)["status"] == "queued"
    messages = _published(settings, lambda: runner.run(batch))
    assert _record(settings, job.id)["status"] == "succeeded"
    assert [r["id"] for m in messages for r in json.loads(m)] == [job.id]
    assert runner.take() is None  # its queue entry is skipped: the job is no longer queued


def test_a_batch_whose_lease_was_taken_back_leaves_what_another_worker_settled(
    settings: Settings,
) -> None:
    job, slow, batch = _taken_back(settings)  # then run again elsewhere while this one runs
    _dequeue_and_run(settings, ModelRegistry.from_paths([]))
    settled = _record(settings, job.id)
    assert settled["status"] == "succeeded" and settled["attempts"] == "2"
    assert _published(settings, lambda: slow.run(batch)) == []  # nothing is announced twice
    assert _record(settings, job.id) == settled


def test_a_job_whose_retries_ran_out_is_announced(settings: Settings) -> None:
    settings = settings.model_copy(update={"retries": 0})
    job = _job("always_transient", "1", {"n": 1})
    _submit(settings, job)
    models = ModelRegistry.from_paths(["tests.support.models:AlwaysTransientModel"])
    runner = _runner(settings, models)
    batch = _take_one(runner)
    messages = _published(settings, lambda: runner.run(batch))
    assert _record(settings, job.id)["status"] == "failed"
    assert messages == [job.id.encode()]  # its waiter wakes and reads the record


def test_a_retry_of_a_batch_whose_lease_was_taken_back_leaves_it_queued(
    settings: Settings,
) -> None:
    job = _job("always_transient", "1", {"n": 7})
    _submit(settings, job)
    models = ModelRegistry.from_paths(["tests.support.models:AlwaysTransientModel"])
    runner = _runner(settings, models)
    batch = _take_one(runner)
    runner.release(batch)  # as REAP does: the computation is back in its queue
    assert _published(settings, lambda: runner.run(batch)) == []
    # To run again, not failed: queued, and already taken again in FINISH's round trip.
    assert _record(settings, job.id)["status"] == "running"
    again = _take_one(runner)  # the copy REAP put back, retried by whoever takes it next
    assert [job_id for job_id, _, _ in again.started] == [job.id]
    assert _record(settings, job.id)["attempts"] == "2"


def test_a_standing_queue_gives_each_batch_its_newest_jobs_of_the_highest_priority(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"lifo_after_s": 0.05, "batch_max_size": 3})
    normal = [_job("echo", "1", {"n": n}) for n in range(5)]
    low = [_job("echo", "1", {"low": n}, Priority.LOW) for n in range(2)]
    for job in [low[0], *normal, low[1]]:
        _submit(settings, job)
    time.sleep(0.2)  # the oldest has waited longer than lifo_after_s: the queue is standing
    runner = _runner(settings, ModelRegistry.from_paths([]))
    (queue,) = [q for q in runner.queues if q.model == "echo"]

    def next_batch() -> list[str]:
        queue.policy.cost, queue.policy.largest_seen = CostFit(), 3  # take up to 3, unfitted
        batch = _take_one(runner)
        runner.run(batch)
        return [job_id for job_id, _, _ in batch.started]

    ids = [job.id for job in normal]
    assert next_batch() == ids[:1:-1]  # the three newest normal jobs, newest first
    assert next_batch() == ids[1::-1]  # then the rest of them; no low job while one is queued
    assert next_batch() == [low[1].id, low[0].id]
    assert runner.take() is None
    assert {_record(settings, i)["status"] for i in ids + [j.id for j in low]} == {"succeeded"}


def test_admission_counts_the_jobs_enqueued_earlier_in_the_same_submit_call(
    settings: Settings,
) -> None:
    # One event-loop turn of submits is one SUBMIT call, which writes its queue entries at
    # its end: admission must count the ones it has not written yet.
    settings = settings.model_copy(update={"queue_max_depth": 3})

    async def submit_together() -> list[str]:
        client = redis.asyncio.Redis.from_url(settings.redis_url)
        store = JobStore(client, RedisKeys(settings.namespace), settings)
        jobs = [_job("echo", "1", {"n": n}) for n in range(3)]
        for priority in (Priority.LOW, Priority.HIGH):  # 3 queued ahead of one, none the other
            jobs.append(_job("echo", "1", {"n": 9}, priority))
        outcomes = await asyncio.gather(*(store.submit(j) for j in jobs), return_exceptions=True)
        await client.aclose()
        return [o.route if not isinstance(o, Exception) else type(o).__name__ for o in outcomes]

    routes = asyncio.run(submit_together())
    assert routes == ["enqueued"] * 3 + ["QueueFullError", "enqueued"]
    client = _client(settings)
    assert client.zcard(RedisKeys(settings.namespace).queue("echo", "1")) == 4
