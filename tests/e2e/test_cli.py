"""The `inferq` command, run as a subprocess against a real stack."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from scripts import stack
from tests.support.stack import RedisServer, Stack, running_stack, unique, wait_for

TENANT, OPERATOR = "tenant-key-0123456789", "operator-key-0123456789"


def inferq(live: Stack, *args: str, key: str = OPERATOR) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INFERQ_URL": live.url, "INFERQ_API_KEY": key, "NO_COLOR": "1"}
    return subprocess.run(
        [str(stack.BIN / "inferq"), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_cli_finds_shows_cancels_purges_and_pauses(
    redis_server: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_API_KEYS": TENANT, "INFERQ_OPERATOR_KEYS": OPERATOR}
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as live:
        with live.client() as client:
            headers = {"Authorization": f"Bearer {TENANT}"}
            ids = [
                client.post(
                    "/jobs",
                    json={"model": "counting", "input": {"key": unique()}, "priority": p},
                    headers=headers,
                ).json()["id"]
                for p in ("low", "low", "normal")
            ]
        status = inferq(live, "status", "--json")
        assert status.returncode == 0, status.stderr
        queues = {
            (q["model"], q["priority"]): q["queued"] for q in json.loads(status.stdout)["queues"]
        }
        assert queues == {("counting@1", "low"): 2, ("counting@1", "normal"): 1}

        listed = inferq(live, "jobs", "ls", "--json", "--priority", "low")
        assert [j["id"] for j in json.loads(listed.stdout)["jobs"]] == ids[1::-1]
        table = inferq(live, "jobs", "ls")
        assert ids[2] in table.stdout and "\x1b[" not in table.stdout  # NO_COLOR
        shown = inferq(live, "jobs", "show", ids[2])
        assert json.loads(shown.stdout)["status"] == "queued"

        dry = inferq(live, "purge", "--priority", "low", "--json")
        assert dry.returncode == 0 and json.loads(dry.stdout)["count"] == 2
        assert "pass --yes" in dry.stderr
        assert json.loads(inferq(live, "jobs", "show", ids[0]).stdout)["status"] == "queued"
        done = inferq(live, "purge", "--priority", "low", "--yes")
        assert done.returncode == 0 and "purged 2" in done.stderr
        assert json.loads(inferq(live, "jobs", "show", ids[0]).stdout)["status"] == "canceled"

        canceled = inferq(live, "jobs", "cancel", ids[2], key=TENANT)
        assert canceled.returncode == 0 and "canceled" in canceled.stderr

        refused = inferq(live, "pause", key=TENANT)
        assert refused.returncode == 1 and "403 forbidden" in refused.stderr
        assert inferq(live, "pause").returncode == 0
        assert json.loads(inferq(live, "status", "--json").stdout)["paused"] is True
        assert inferq(live, "resume").returncode == 0
        missing = inferq(live, "jobs", "show", "nope")
        assert missing.returncode == 1 and "404" in missing.stderr and missing.stdout == ""


def test_the_cli_says_when_the_api_is_unreachable(redis_server: RedisServer, workdir: Path) -> None:
    with running_stack(redis_server, workdir, consumer_workers=0) as live:
        live.stop_api()
        live.api_port = stack.free_port()
        result = inferq(live, "status")
    assert result.returncode == 1 and "cannot reach the API" in result.stderr


def test_requeue_runs_failed_jobs_again_as_linked_jobs(
    redis_server: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_API_KEYS": TENANT, "INFERQ_OPERATOR_KEYS": OPERATOR, "INFERQ_RETRIES": "0"}
    with running_stack(redis_server, workdir, consumer_workers=1, **env) as live:
        headers = {"Authorization": f"Bearer {TENANT}"}
        with live.client() as client:
            failed = [
                client.post(
                    "/jobs?wait=true",
                    json={"model": "failing", "input": {"reason": f"r{n}"}, "priority": "high"},
                    headers=headers,
                ).json()
                for n in range(2)
            ]
            assert [job["status"] for job in failed] == ["failed", "failed"]
            refused = client.post(
                "/admin/requeue", json={"status": "failed", "dry_run": False}, headers=headers
            )
            assert refused.status_code == 403
            operator = {"Authorization": f"Bearer {OPERATOR}"}
            wrong = client.post("/admin/requeue", json={"status": "succeeded"}, headers=operator)
            assert wrong.status_code == 422

        assert "usage" in inferq(live, "requeue").stderr.lower()  # --status is required
        dry = inferq(live, "requeue", "--status", "failed", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        assert sorted(json.loads(dry.stdout)["job_ids"]) == sorted(j["id"] for j in failed)
        assert "would requeue 2" in dry.stderr
        other = inferq(live, "requeue", "--status", "failed", "--model", "echo", "--json")
        assert json.loads(other.stdout)["count"] == 0

        done = inferq(live, "requeue", "--status", "failed", "--json")
        assert done.returncode == 0, done.stderr
        links = json.loads(done.stdout)["requeued_as"]
        assert sorted(links) == sorted(j["id"] for j in failed)
        with live.client() as client:
            for old, new in links.items():
                again = client.get(f"/jobs/{new}?wait=true", headers=headers).json()
                assert again["status"] == "failed" and again["requeued_from"] == old
                assert again["priority"] == "high" and again["model"] == "failing"
                assert client.get(f"/jobs/{old}", headers=headers).json()["requeued_as"] == new
        # Each old job is requeued once; what is failed now is only the new jobs.
        second = json.loads(inferq(live, "requeue", "--status", "failed", "--json").stdout)
        assert sorted(second["job_ids"]) == sorted(links.values())

        def rates() -> dict[str, float]:
            last_minute: dict[str, float] = json.loads(inferq(live, "status", "--json").stdout)[
                "last_minute"
            ]
            return last_minute

        wait_for(lambda: rates()["queued_per_s"] > 0, what="the last minute's jobs in status")
        table = inferq(live, "status")
        assert table.returncode == 0 and "1 live consumers" in table.stdout
        assert "queued p50/p99" in table.stdout
    log = "\n".join(p.read_text() for p in (workdir / "logs").glob("api-*.log"))
    assert "requeued 2 failed jobs" in log
