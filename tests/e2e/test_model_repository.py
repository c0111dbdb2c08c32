"""A model repository on disk: real skops and ONNX artifacts served through both paths."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.artifacts import SETOSA, VIRGINICA
from tests.support.stack import RedisServer, Stack, running_stack, wait_for


@pytest.fixture
def repository(model_repository: Path) -> Path:
    return model_repository


@pytest.fixture(scope="module")
def served(
    redis_server: RedisServer, model_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Path]]:
    """One stack for the tests that only read: started once for the module."""
    workdir = tmp_path_factory.mktemp("served")
    with running_stack(redis_server, workdir, INFERQ_MODEL_DIR=str(model_repository)) as stack:
        yield stack, workdir


@pytest.fixture
def live(served: tuple[Stack, Path]) -> Stack:
    return served[0]


def _job(client: httpx.Client, model: str, features: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/jobs?wait=true", json={"model": model, "input": features})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_versions_are_listed_and_the_broken_ones_kept_out_with_their_reasons(
    served: tuple[Stack, Path],
) -> None:
    live, workdir = served
    with live.client() as client:
        models = {(m["name"], m["version"]): m for m in client.get("/models").json()}
        ready = client.get("/readyz").json()
    assert {("flowers", "1"), ("flowers", "2"), ("counter", "1")} <= set(models)
    assert models["flowers", "2"]["current"] and not models["flowers", "1"]["current"]
    assert models["flowers", "2"]["max_batch_size"] == 32
    assert models["flowers", "1"]["input_schema"]["required"][0] == "sepal_length"
    assert not {("flowers", "3"), ("broken", "1"), ("unvetted", "1")} & set(models)
    problems = ready["models_unavailable"]
    assert ready["status"] == "ready"  # the broken ones do not stop the rest
    assert "gone.onnx" in problems["flowers@3"] and "not found" in problems["flowers@3"]
    assert "model.toml" in problems["broken@1"] and "TOML" in problems["broken@1"]
    assert "Unvetted" in problems["unvetted@1"] and "trust" in problems["unvetted@1"]
    logs = "\n".join(p.read_text() for p in (workdir / "logs").glob("*.log"))
    assert "model flowers@3 is not served" in logs


def test_each_version_answers_on_both_paths_and_names_the_version_that_ran(live: Stack) -> None:
    with live.client() as client:
        current = _job(client, "flowers", SETOSA)
        pinned = _job(client, "flowers@1", VIRGINICA)
        direct = client.post("/predict", json={"model": "flowers@1", "input": SETOSA}).json()
        direct_current = client.post("/predict", json={"model": "flowers", "input": VIRGINICA})
        counted = _job(client, "counter", {"key": "k1"})
    assert current["status"] == "succeeded" and current["model_version"] == "2"
    assert current["result"]["label"] == "setosa"
    assert current["result"]["probabilities"]["setosa"] > 0.9
    assert pinned["model_version"] == "1" and pinned["result"]["label"] == "virginica"
    assert direct["model_version"] == "1" and direct["result"]["label"] == "setosa"
    assert direct_current.json()["model_version"] == "2"
    assert direct_current.json()["result"]["label"] == "virginica"
    assert counted["status"] == "succeeded" and counted["model_version"] == "1"


def test_a_backlog_runs_in_batches_and_a_pinned_version_needs_a_consumer_that_has_it(
    redis_server: RedisServer, workdir: Path, repository: Path
) -> None:
    env = {"INFERQ_MODEL_DIR": str(repository)}
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as stack:
        with stack.client() as client:
            ids = [
                client.post(
                    "/jobs",
                    json={
                        "model": "flowers",
                        "input": {**SETOSA, "sepal_length": round(4.5 + n / 100, 2)},
                    },
                ).json()["id"]
                for n in range(40)
            ]
            early = client.post("/jobs", json={"model": "flowers@1", "input": SETOSA})
            assert early.status_code == 503 and int(early.headers["retry-after"]) >= 1
            assert early.json()["error"]["code"] == "model_version_not_loaded"
            stack.start_consumer(1)  # one worker process
            stack.wait_ready()
            done = [client.get(f"/jobs/{job_id}?wait=true").json() for job_id in ids]
            onnx_batches = _batch_sizes(client.get("/metrics").text, "queued")

            def pinned_accepted() -> bool:
                body = {"model": "flowers@1", "input": SETOSA}
                return client.post("/jobs", json=body).status_code == 202

            wait_for(pinned_accepted, what="a pinned job accepted once a consumer has it")
            # A backlog for the skops version: its one worker busy on a slow job meanwhile.
            slow = {"model": "burn", "input": {"text": "x", "work_ms": 2000}}
            slow_id = client.post("/jobs", json=slow).json()["id"]
            wait_for(
                lambda: client.get(f"/jobs/{slow_id}").json()["status"] == "running",
                what="the worker busy",
            )
            pinned = [
                client.post(
                    "/jobs",
                    json={"model": "flowers@1", "input": {**SETOSA, "petal_width": n / 100}},
                ).json()["id"]
                for n in range(20)
            ]
            skops_done = [client.get(f"/jobs/{job_id}?wait=true").json() for job_id in pinned]
            all_batches = _batch_sizes(client.get("/metrics").text, "queued")
    assert all(job["result"]["label"] == "setosa" for job in done + skops_done)
    assert {job["model_version"] for job in done} == {"2"}
    assert {job["model_version"] for job in skops_done} == {"1"}
    assert onnx_batches[0] == 40 and onnx_batches[1] < 40  # the backlog ran in batches
    skops_items, skops_calls = (a - b for a, b in zip(all_batches, onnx_batches, strict=True))
    assert skops_items == 21 and skops_calls < 20  # 20 queued behind the slow job, plus one


def test_concurrent_predictions_share_a_call_of_each_artifact(
    redis_server: RedisServer, workdir: Path, repository: Path
) -> None:
    env = {"INFERQ_MODEL_DIR": str(repository), "INFERQ_DIRECT_WORKERS": "1"}
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as stack:

        def occupy() -> None:
            with stack.client() as client:
                slow = {"model": "burn", "input": {"text": "x", "work_ms": 4000}}
                assert client.post("/predict", json=slow).status_code == 200

        busy = threading.Thread(target=occupy)
        busy.start()  # the one model process is busy: what arrives now waits together
        # Not a fixed sleep: on a slow machine the burn could start after the predictions.
        wait_for(
            lambda: _gauge(stack, "inferq_direct_in_flight", "burn") >= 1,
            what="the burn to occupy the model process",
        )

        def predict(n: int) -> dict[str, Any]:
            with stack.client() as client:
                body = {
                    "model": "flowers@1" if n % 2 else "flowers@2",
                    "input": {**SETOSA, "petal_width": n / 100},
                }
                response = client.post("/predict", json=body)
                assert response.status_code == 200, response.text
                answer: dict[str, Any] = response.json()
                return answer

        with ThreadPoolExecutor(16) as pool:
            asked = [pool.submit(predict, n) for n in range(16)]
            wait_for(
                lambda: _gauge(stack, "inferq_direct_waiting", "flowers") >= 1,
                what="predictions waiting behind the burn",
            )
            answers = [future.result() for future in asked]
        busy.join()
        with stack.client() as client:
            items, calls = _batch_sizes(client.get("/metrics").text, "direct")
        for name in ("inferq_direct_in_flight", "inferq_direct_waiting"):
            assert _gauge(stack, name, "flowers") == _gauge(stack, name, "burn") == 0
    assert [a["model_version"] for a in answers] == ["1" if n % 2 else "2" for n in range(16)]
    assert all(a["result"]["label"] == "setosa" for a in answers)
    assert items == 16 and calls < 16  # the waiting requests went in batches, per version


def _gauge(stack: Stack, name: str, model: str) -> float:
    """The value of gauge `name` for `model` (summed over versions), from a /metrics scrape."""
    with stack.client() as client:
        scrape = client.get("/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in scrape.splitlines()
        if line.startswith(name + "{") and f'model="{model}"' in line
    )


def _batch_sizes(scrape: str, path: str) -> tuple[float, float]:
    """(inputs, model calls) of `flowers` batches on `path`, from a /metrics scrape."""
    sums = {"inferq_batch_size_sum": 0.0, "inferq_batch_size_count": 0.0}
    for line in scrape.splitlines():
        name = line.split("{")[0]
        if name in sums and 'model="flowers"' in line and f'path="{path}"' in line:
            sums[name] += float(line.split()[-1])
    return sums["inferq_batch_size_sum"], sums["inferq_batch_size_count"]


def test_bad_input_and_unknown_versions_are_clear_errors(live: Stack) -> None:
    with live.client() as client:
        bad = client.post(
            "/jobs", json={"model": "flowers", "input": {**SETOSA, "petal_width": "x"}}
        )
        extra = client.post("/predict", json={"model": "flowers@1", "input": {**SETOSA, "z": 1}})
        unknown = client.post("/jobs", json={"model": "flowers@9", "input": SETOSA})
        broken = client.post("/jobs", json={"model": "flowers@3", "input": SETOSA})
        empty = client.post("/predict", json={"model": "", "input": SETOSA})
    assert bad.status_code == 422 and "petal_width" in bad.json()["error"]["message"]
    assert extra.status_code == 422 and "'z'" in extra.json()["error"]["message"]
    assert unknown.status_code == 404 and "no version '9'" in unknown.json()["error"]["message"]
    assert broken.status_code == 404  # out of service, never queued
    assert empty.status_code == 422  # not the default model: the schema says a name or null
