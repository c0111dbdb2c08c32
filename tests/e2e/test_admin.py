"""Operator controls: pause and resume intake, purge with a dry run; off without keys."""

from __future__ import annotations

from pathlib import Path

from tests.support.stack import RedisServer, running_stack, unique

TENANT, OPERATOR = "tenant-key-0123456789", "operator-key-0123456789"


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _job(priority: str = "normal", model: str = "counting") -> dict[str, object]:
    return {"model": model, "input": {"key": unique()}, "priority": priority}


def test_controls_are_off_without_operator_keys(redis_server: RedisServer, workdir: Path) -> None:
    with running_stack(redis_server, workdir, consumer_workers=0) as live, live.client() as client:
        refused = client.post("/admin/pause")
        assert refused.status_code == 403 and "INFERQ_OPERATOR_KEYS" in refused.text
        assert client.post("/jobs", json=_job()).status_code == 202


def test_an_operator_pauses_and_resumes_intake(redis_server: RedisServer, workdir: Path) -> None:
    env = {"INFERQ_API_KEYS": TENANT, "INFERQ_OPERATOR_KEYS": OPERATOR}
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as live:
        with live.client() as client:
            assert client.post("/admin/pause", headers=_as(TENANT)).status_code == 403
            paused = client.post("/admin/pause", headers=_as(OPERATOR)).json()
            assert paused["paused"] is True and paused["by"]
            refused = client.post("/jobs", json=_job(), headers=_as(TENANT))
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "paused"
            assert int(refused.headers["retry-after"]) >= 1
            assert client.get("/admin/intake", headers=_as(OPERATOR)).json()["paused"] is True
            assert client.post("/admin/resume", headers=_as(OPERATOR)).json()["paused"] is False
            assert client.post("/jobs", json=_job(), headers=_as(TENANT)).status_code == 202
    log = "\n".join(p.read_text() for p in (workdir / "logs").glob("api-*.log"))
    assert "paused intake" in log and "resumed intake" in log  # who did it is in the line


def test_purge_reports_first_then_cancels_only_what_matches(
    redis_server: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_OPERATOR_KEYS": OPERATOR}
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as live:
        with live.client() as client:
            low = [client.post("/jobs", json=_job("low")).json()["id"] for _ in range(3)]
            normal = [client.post("/jobs", json=_job("normal")).json()["id"] for _ in range(2)]
            echo = client.post("/jobs", json=_job("low", "echo") | {"input": {"n": 1}}).json()
            body = {"model": "counting", "priority": "low"}
            dry = client.post("/admin/purge", json=body, headers=_as(OPERATOR)).json()
            assert dry == {"dry_run": True, "count": 3, "job_ids": dry["job_ids"]}
            assert sorted(dry["job_ids"]) == sorted(low)
            assert all(client.get(f"/jobs/{i}").json()["status"] == "queued" for i in low)
            done = client.post(
                "/admin/purge", json={**body, "dry_run": False}, headers=_as(OPERATOR)
            ).json()
            assert done["count"] == 3 and sorted(done["job_ids"]) == sorted(low)
            assert all(client.get(f"/jobs/{i}").json()["status"] == "canceled" for i in low)
            assert all(client.get(f"/jobs/{i}").json()["status"] == "queued" for i in normal)
            assert client.get(f"/jobs/{echo['id']}").json()["status"] == "queued"
            canceled = client.get("/jobs", params={"status": "canceled"}).json()["jobs"]
            assert sorted(j["id"] for j in canceled) == sorted(low)
            unknown = client.post("/admin/purge", json={"model": "nope"}, headers=_as(OPERATOR))
            assert unknown.status_code == 404
        live.start_consumer(1)
        live.wait_ready()
        with live.client() as client:
            for job_id in normal:
                assert client.get(f"/jobs/{job_id}?wait=true").json()["status"] == "succeeded"
    assert len(live.runs()) == 2  # the purged jobs never ran
