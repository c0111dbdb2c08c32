"""Hard time limits on model calls, on both paths: stuck in C or asleep, the process goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.stack import RedisServer, running_stack, unique, wait_for

# The hang model's own limit is 1 s; "bounded" here means far below any hang, not a speed.
BOUNDED_S = 20


@pytest.mark.parametrize("mode", ["regex", "sleep"])
def test_a_queued_job_past_its_time_limit_fails_and_the_worker_is_replaced(
    redis_server: RedisServer, workdir: Path, mode: str
) -> None:
    with (
        running_stack(redis_server, workdir, consumer_workers=1) as live,
        live.client(timeout=BOUNDED_S + 5) as client,
    ):
        stuck = client.post(
            "/jobs", json={"model": "hang", "input": {"key": unique(), "mode": mode}}
        )
        behind = client.post("/jobs", json={"model": "counting", "input": {"key": unique()}})
        job = client.get(f"/jobs/{stuck.json()['id']}?wait=true&timeout={BOUNDED_S}").json()
        assert job["status"] == "failed" and job["error"]["code"] == "timeout"
        assert job["attempts"] == 1  # a timed-out job is not retried
        # The job queued behind it is not lost: a new worker process serves it.
        after = client.get(f"/jobs/{behind.json()['id']}?wait=true&timeout={BOUNDED_S}").json()
        assert after["status"] == "succeeded"
        assert client.get("/readyz").status_code == 200
    assert "killed and replaced" in _logs(workdir)


def test_a_model_that_opts_in_has_a_timed_out_job_retried(
    redis_server: RedisServer, workdir: Path
) -> None:
    with (
        running_stack(redis_server, workdir, consumer_workers=1) as live,
        live.client(timeout=BOUNDED_S * 3) as client,
    ):
        body = {"model": "hang_retried", "input": {"key": unique(), "mode": "sleep"}}
        job_id = client.post("/jobs", json=body).json()["id"]
        job = client.get(f"/jobs/{job_id}?wait=true&timeout={BOUNDED_S * 2}").json()
    assert job["status"] == "failed" and job["error"]["code"] == "timeout"
    assert job["attempts"] == 3  # INFERQ_RETRIES=2: two more tries before it fails
    assert live.runs().count(body["input"]["key"]) == 3  # type: ignore[index]


def test_a_batch_that_runs_out_of_time_reruns_its_inputs_alone(
    redis_server: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_MODEL_TIMEOUT_S": "1.5"}
    with (
        running_stack(redis_server, workdir, consumer_workers=1, **env) as live,
        live.client(timeout=BOUNDED_S + 5) as client,
    ):
        blocker = {"model": "counting", "input": {"key": unique("blocker"), "sleep_ms": 800}}
        client.post("/jobs", json=blocker)
        wait_for(lambda: blocker["input"]["key"] in live.runs(), what="the blocker to start")
        keys = [unique() for _ in range(3)]
        ids = []
        for key in keys:
            body = {"model": "batching", "input": {"key": key, "sleep_ms": 0}}
            if key == keys[1]:
                body["input"]["sleep_ms"] = 2_000  # over the limit: the batch of three hangs
            ids.append(client.post("/jobs", json=body).json()["id"])
        jobs = [client.get(f"/jobs/{i}?wait=true&timeout={BOUNDED_S}").json() for i in ids]
    assert [j["status"] for j in jobs] == ["succeeded", "failed", "succeeded"]
    assert jobs[1]["error"]["code"] == "timeout"
    calls = [batch for model, batch in live.batches() if model == "batching"]
    hung = next(i for i, call in enumerate(calls) if keys[1] in call)
    assert len(calls[hung]) > 1  # it timed out inside a batch...
    assert all(len(call) == 1 for call in calls[hung + 1 :])  # ...whose inputs reran alone


@pytest.mark.parametrize("mode", ["regex", "sleep"])
def test_direct_path_answers_504_and_replaces_the_model_process(
    redis_server: RedisServer, workdir: Path, mode: str
) -> None:
    with (
        running_stack(redis_server, workdir, consumer_workers=0) as live,
        live.client(timeout=BOUNDED_S) as client,
    ):
        response = client.post(
            "/predict", json={"model": "hang", "input": {"key": unique(), "mode": mode}}
        )
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "timeout"
        # One model process (INFERQ_DIRECT_WORKERS=1 in tests): this needs its replacement.
        after = client.post("/predict", json={"model": "counting", "input": {"key": unique()}})
        assert after.status_code == 200
    assert "model process replaced in" in _logs(workdir)


def _logs(workdir: Path) -> str:
    """Every log the stack wrote: inferq's files and the processes' own output."""
    files = [*(workdir / "logs").glob("*.log"), *workdir.glob("*.out")]
    return "\n".join(path.read_text() for path in files)
