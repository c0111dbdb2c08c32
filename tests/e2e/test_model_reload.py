"""Reload without downtime: the current version changes twice under steady load, on both
paths, and no request fails; a removed version's queued jobs fail with a clear code."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from tests.support.artifacts import SETOSA
from tests.support.stack import RedisServer, Stack, running_stack, wait_for

OPERATOR = "operator-key-0123456789"


@pytest.fixture
def built(model_repository: Path) -> Path:
    return model_repository


def _flag_current(manifest: Path, current: bool) -> None:
    lines = [line for line in manifest.read_text().splitlines() if not line.startswith("current")]
    if current:
        lines.insert(1, "current = true")
    manifest.write_text("\n".join(lines) + "\n")


class SteadyLoad:
    """Two clients, one per path, asking for `flowers` back to back; every answer kept."""

    def __init__(self, live: Stack) -> None:
        self.live, self.answers = live, {"queued": [], "direct": []}  # type: dict[str, list[Any]]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._drive, args=(path,), daemon=True) for path in self.answers
        ]

    def _drive(self, path: str) -> None:
        url = "/jobs?wait=true" if path == "queued" else "/predict"
        n = 0
        with self.live.client() as client:
            while not self._stop.is_set():
                n += 1
                features = {**SETOSA, "sepal_length": round(4.3 + (n % 500) / 1000, 3)}
                response = client.post(url, json={"model": "flowers", "input": features})
                body = response.json()
                self.answers[path].append((response.status_code, body.get("model_version"), body))

    def versions(self, path: str) -> list[str]:
        return [version for _, version, _ in self.answers[path]]

    def __enter__(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def _both_serve(load: SteadyLoad, version: str) -> bool:
    return all(load.versions(path)[-3:] == [version] * 3 for path in load.answers)


def test_the_current_version_changes_twice_under_load_and_no_request_fails(
    redis_server: RedisServer, workdir: Path, built: Path
) -> None:
    repository = workdir / "models"
    shutil.copytree(built, repository)
    env = {
        "INFERQ_MODEL_DIR": str(repository),
        "INFERQ_MODEL_RELOAD_S": "1",
        "INFERQ_OPERATOR_KEYS": OPERATOR,
    }
    with running_stack(redis_server, workdir, **env) as live, SteadyLoad(live) as load:
        wait_for(lambda: _both_serve(load, "2"), what="both paths answering flowers@2")
        _flag_current(repository / "flowers" / "1" / "model.toml", True)  # change 1: a flag
        wait_for(lambda: _both_serve(load, "1"), what="the switch to flowers@1")

        shutil.copytree(repository / "flowers" / "2", repository / "flowers" / "4")
        _flag_current(repository / "flowers" / "1" / "model.toml", False)
        _flag_current(repository / "flowers" / "4" / "model.toml", True)  # change 2: a new dir
        with live.client() as client:  # and an operator who does not wait for the poll
            refused = client.post("/models/reload")
            reloaded = client.post(
                "/models/reload", headers={"Authorization": f"Bearer {OPERATOR}"}
            )
        assert refused.status_code == 403
        assert reloaded.status_code == 200 and reloaded.json()["current"]["flowers"] == "4"
        wait_for(lambda: _both_serve(load, "4"), what="the switch to flowers@4")
        with live.client() as client:
            listed = {(m["name"], m["version"]): m["current"] for m in client.get("/models").json()}
    assert listed[("flowers", "4")] and not listed[("flowers", "1")]
    for path, answers in load.answers.items():
        failed = [(status, body) for status, _, body in answers if status != 200]
        assert failed == [], f"{path}: {failed[:3]}"
        assert all(body["result"]["label"] == "setosa" for _, _, body in answers)
        versions = load.versions(path)
        switches = [v for n, v in enumerate(versions) if n == 0 or versions[n - 1] != v]
        assert switches == ["2", "1", "4"], f"{path}: {switches}"
        print(f"{path}: {len(answers)} answers, all 200, versions in order {switches}")
        assert len(answers) > 30, path  # the load really ran through both switches


def test_a_removed_versions_queued_jobs_fail_with_a_clear_code(
    redis_server: RedisServer, workdir: Path, built: Path
) -> None:
    repository = workdir / "models"
    shutil.copytree(built, repository)
    env = {"INFERQ_MODEL_DIR": str(repository), "INFERQ_OPERATOR_KEYS": OPERATOR}
    _flag_current(repository / "flowers" / "1" / "model.toml", True)
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as live:
        with live.client() as client:
            job = client.post("/jobs", json={"model": "flowers", "input": SETOSA}).json()
            assert job["model_version"] == "1" and job["status"] == "queued"
            shutil.rmtree(repository / "flowers" / "1")
            operator = {"Authorization": f"Bearer {OPERATOR}"}
            assert client.post("/models/reload", headers=operator).status_code == 200
            record = client.get(f"/jobs/{job['id']}").json()
            pinned = client.post("/jobs", json={"model": "flowers@1", "input": SETOSA})
            versions = {
                m["version"] for m in client.get("/models").json() if m["name"] == "flowers"
            }
    assert record["status"] == "failed" and record["error"]["code"] == "model_version_removed"
    assert pinned.status_code == 404  # unknown now, not "not loaded"
    assert versions == {"2"}
