"""The job API over HTTP against a real uvicorn, real huey consumers and a real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.stack import RedisServer, Stack, running_stack, unique, wait_for

IRIS_SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture(scope="module")
def live(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(redis_server, tmp_path_factory.mktemp("jobs")) as running:
        yield running


@pytest.fixture
def client(live: Stack) -> Iterator[httpx.Client]:
    with live.client() as client:
        yield client


def counting(key: str, sleep_ms: int = 0, **extra: object) -> dict[str, object]:
    return {"model": "counting", "input": {"key": key, "sleep_ms": sleep_ms}, **extra}


def test_submit_then_poll_until_succeeded(client: httpx.Client) -> None:
    submitted = client.post("/jobs", json={"input": IRIS_SETOSA})
    assert submitted.status_code == 202
    job = submitted.json()
    assert submitted.headers["location"] == f"/jobs/{job['id']}"
    assert job["status"] == "queued" and job["model"] == "iris" and job["priority"] == "normal"

    final: dict[str, object] = {}

    def finished() -> bool:
        response = client.get(f"/jobs/{job['id']}")
        final.update(response.json())
        return response.status_code == 200

    wait_for(finished, what="job to finish")
    assert final["status"] == "succeeded"
    assert final["result"] == {"class": "setosa", "probabilities": final["result"]["probabilities"]}  # type: ignore[index]
    assert final["attempts"] == 1 and final["started_at"] and final["finished_at"]


def test_polling_a_running_job_answers_202_with_retry_after(client: httpx.Client) -> None:
    job = client.post("/jobs", json=counting(unique(), sleep_ms=1500)).json()
    response = client.get(f"/jobs/{job['id']}")
    assert response.status_code == 202
    assert response.json()["status"] in ("queued", "running")
    assert int(response.headers["retry-after"]) >= 1


def test_wait_true_answers_200_with_the_result(client: httpx.Client) -> None:
    key = unique()
    response = client.post("/jobs?wait=true", json=counting(key))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "succeeded" and body["result"] == {"key": key}
    assert body["cached"] is False
    assert response.headers["location"] == f"/jobs/{body['id']}"


def test_wait_timeout_answers_202_then_the_job_succeeds(client: httpx.Client) -> None:
    response = client.post("/jobs?wait=true&timeout=0.3", json=counting(unique(), sleep_ms=1500))
    assert response.status_code == 202
    assert response.json()["status"] in ("queued", "running")
    job_id = response.json()["id"]
    later = client.get(f"/jobs/{job_id}?wait=true&timeout=20")
    assert later.status_code == 200 and later.json()["status"] == "succeeded"


def test_reads_never_consume_the_result(client: httpx.Client) -> None:
    job = client.post("/jobs?wait=true", json=counting(unique())).json()
    first = client.get(f"/jobs/{job['id']}")
    second = client.get(f"/jobs/{job['id']}")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == job


def test_second_identical_request_is_a_cache_hit_without_a_second_run(
    client: httpx.Client, live: Stack
) -> None:
    key = unique()
    first = client.post("/jobs?wait=true", json=counting(key)).json()
    second = client.post("/jobs", json=counting(key))  # no wait: a hit answers at once
    assert second.status_code == 200
    hit = second.json()
    assert hit["cached"] is True and hit["status"] == "succeeded"
    assert hit["result"] == first["result"] and hit["id"] != first["id"]
    assert client.get(f"/jobs/{hit['id']}").json() == hit
    assert live.runs().count(key) == 1


def test_equal_inputs_in_another_form_share_the_cache(client: httpx.Client, live: Stack) -> None:
    key = unique()
    client.post("/jobs?wait=true", json=counting(key, sleep_ms=0))
    reordered = {"model": "counting", "input": {"sleep_ms": 0.0, "key": key}}
    assert client.post("/jobs", json=reordered).json()["cached"] is True
    assert live.runs().count(key) == 1


def test_identical_in_flight_requests_share_one_computation(live: Stack) -> None:
    key = unique()

    def submit(_: int) -> httpx.Response:
        with live.client() as own_client:
            return own_client.post("/jobs?wait=true", json=counting(key, sleep_ms=800))

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(submit, range(4)))
    bodies = [r.json() for r in responses]
    assert [r.status_code for r in responses] == [200] * 4
    assert {b["status"] for b in bodies} == {"succeeded"}
    assert len({b["id"] for b in bodies}) == 4
    assert all(b["result"] == {"key": key} for b in bodies)
    assert live.runs().count(key) == 1


def test_failing_model_ends_failed_with_a_code_and_no_traceback(client: httpx.Client) -> None:
    response = client.post("/jobs?wait=true", json={"model": "failing", "input": {"reason": "bad"}})
    assert response.status_code == 200
    job = response.json()
    assert job["status"] == "failed" and job["result"] is None
    assert job["error"] == {"code": "model_error", "message": "ValueError: bad"}
    assert "Traceback" not in response.text


def test_unknown_job_is_404_with_a_json_error(client: httpx.Client) -> None:
    for response in (client.get("/jobs/nope"), client.delete("/jobs/nope")):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "job_not_found"


def test_unknown_model_is_404_naming_it(client: httpx.Client) -> None:
    response = client.post("/jobs", json={"model": "gpt-17", "input": {}})
    assert response.status_code == 404
    assert "gpt-17" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "burn", "input": {"text": "x", "work_ms": "lots"}}, "input.work_ms"),
        ({"model": "burn", "input": {"work_ms": 1}}, "input.text"),
        ({"model": "burn", "input": {"text": "x", "work_ms": -1}}, "input.work_ms"),
        ({"input": {**IRIS_SETOSA, "petal_width": None}}, "input.petal_width"),
        ({"input": IRIS_SETOSA, "priority": "urgent"}, "priority"),
        ({"model": "iris"}, "input"),
    ],
)
def test_invalid_input_is_422_naming_the_field(
    client: httpx.Client, body: dict[str, object], field: str
) -> None:
    response = client.post("/jobs", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert field in [f["field"] for f in error["fields"]]


@pytest.mark.parametrize(
    ("query", "headers", "field"),
    [
        ("?wait=true&timeout=0", {}, "query.timeout"),
        ("?wait=maybe", {}, "query.wait"),
        ("", {"Idempotency-Key": "k" * 256}, "header.idempotency-key"),
    ],
)
def test_a_bad_option_is_422_naming_it_and_creates_no_job(
    client: httpx.Client, query: str, headers: dict[str, str], field: str
) -> None:
    before = len(client.get("/jobs?limit=500").json()["jobs"])
    response = client.post("/jobs" + query, json=counting(unique()), headers=headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert [f["field"] for f in error["fields"]] == [field]
    assert len(client.get("/jobs?limit=500").json()["jobs"]) == before


def test_422_does_not_echo_a_huge_input(client: httpx.Client) -> None:
    huge = "x" * 200_000
    response = client.post("/jobs", json={"model": "burn", "input": {"text": huge, "work_ms": 1}})
    assert response.status_code == 422
    assert len(response.content) < 2_000


def test_non_json_body_is_422(client: httpx.Client) -> None:
    response = client.post(
        "/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


def test_cancel_of_a_running_or_finished_job_is_409(client: httpx.Client, live: Stack) -> None:
    key = unique()
    running = client.post("/jobs", json=counting(key, sleep_ms=1500)).json()
    wait_for(lambda: key in live.runs(), what="the job to start")
    assert client.delete(f"/jobs/{running['id']}").status_code == 409
    finished = client.get(f"/jobs/{running['id']}?wait=true").json()
    assert finished["status"] == "succeeded"
    assert client.delete(f"/jobs/{running['id']}").status_code == 409


def test_models_lists_schema_and_flags(client: httpx.Client) -> None:
    models = {m["name"]: m for m in client.get("/models").json()}
    assert {"iris", "burn", "echo", "counting", "failing"} <= set(models)
    assert models["burn"]["deterministic"] is True and models["failing"]["deterministic"] is False
    assert set(models["burn"]["input_schema"]["properties"]) == {"text", "work_ms"}
    assert models["iris"]["version"] == "2"


def test_health_ready_and_docs(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["consumers"] >= 1
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/jobs", "/jobs/{job_id}", "/models", "/healthz", "/readyz"} <= set(paths)


def test_each_job_lifecycle_is_logged_with_its_id_per_process_kind(
    client: httpx.Client, live: Stack
) -> None:
    job = client.post("/jobs?wait=true", json=counting(unique())).json()
    logs = live.workdir / "logs"

    def logged(kind: str, *words: str) -> bool:
        text = "".join(p.read_text() for p in logs.glob(f"{kind}-*.log"))
        return any(
            job["id"] in line and all(w in line for w in words) for line in text.splitlines()
        )

    # Each process writes its log from a writer thread: a line lands a moment after it is
    # logged, and one process's line says nothing of when another's lands.
    wait_for(lambda: logged("worker", "succeeded"), what="the worker log line")
    wait_for(lambda: logged("api", "enqueued"), what="the API log line")
    assert logged("worker", "running")


def test_a_request_arriving_while_its_twin_runs_attaches_to_it(
    client: httpx.Client, live: Stack
) -> None:
    key = unique()
    first = client.post("/jobs", json=counting(key, sleep_ms=800)).json()
    wait_for(lambda: key in live.runs(), what="the first run to start")
    second = client.post("/jobs?wait=true", json=counting(key, sleep_ms=800))
    assert second.status_code == 200 and second.json()["result"] == {"key": key}
    assert second.json()["cached"] is False  # it shared the computation, not a cached result
    assert client.get(f"/jobs/{first['id']}").json()["status"] == "succeeded"
    assert live.runs().count(key) == 1


def test_shared_result_tier_expires(live: Stack) -> None:
    key = unique()
    with live.client() as client:
        client.post("/jobs?wait=true", json=counting(key))
    redis = live.redis.client()
    result_keys = list(redis.scan_iter(match=f"{live.namespace}:result:counting:*"))
    assert result_keys
    assert all(0 < redis.ttl(k) <= 3_600 for k in result_keys)
