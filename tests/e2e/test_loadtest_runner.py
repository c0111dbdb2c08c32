"""The load-test runner end to end in a tiny configuration: it produces parseable results.

This checks the instrument, not the service's speed: no timing assertions.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.stack import ROOT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(180)
def test_runner_produces_csvs_summary_and_charts(tmp_path: Path) -> None:
    out = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "loadtest",
        "--archs",
        "direct-shed,queued-admission",
        "--users",
        "1,3",
        "--step-seconds",
        "2",
        "--model",
        "echo",
        "--out",
        str(out),
    ]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "step 2/2" in run.stdout  # progress was shown

    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["architectures"]) == {"direct-shed", "queued-admission"}
    assert [(s["architecture"], s["level"]) for s in summary["steps"]] == [
        ("direct-shed", 1),
        ("direct-shed", 3),
        ("queued-admission", 1),
        ("queued-admission", 3),
    ]
    for step in summary["steps"]:
        assert step["requests"] > 0 and step["goodput_rps"] > 0
        assert step["p50_ms"] <= step["p95_ms"] <= step["p99_ms"]
    markdown = (out / "summary.md").read_text()
    assert "## direct-shed" in markdown and "| goodput req/s |" in markdown

    for arch in ("direct-shed", "queued-admission"):
        with (out / f"{arch}_stats.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert any(row["Name"] == "Aggregated" and int(row["Request Count"]) > 0 for row in rows)
        assert (out / f"{arch}.html").read_text().lstrip().lower().startswith("<!doctype html")
        with (out / arch / "requests.csv").open() as handle:
            records = list(csv.DictReader(handle))
        assert {r["outcome"] for r in records} <= {"ok", "timeout", "refused", "expired", "error"}
    for chart in ("latency", "throughput", "failures"):
        assert (out / f"{chart}.png").read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.timeout(120)
def test_open_loop_mode_sends_at_the_target_rates(tmp_path: Path) -> None:
    out = tmp_path / "open"
    cmd = [
        sys.executable,
        "-m",
        "loadtest",
        "--archs",
        "queued-poll",
        "--open-loop",
        "--rates",
        "5,10",
        "--step-seconds",
        "2",
        "--model",
        "echo",
        "--out",
        str(out),
    ]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert run.returncode == 0, run.stdout + run.stderr
    steps = json.loads((out / "summary.json").read_text())["steps"]
    assert [s["level"] for s in steps] == [5, 10]
    assert all(s["requests"] > 0 for s in steps)
    with (out / "queued-poll_stats.csv").open() as handle:
        names = {row["Name"] for row in csv.DictReader(handle)}
    assert "queued-poll submit-to-result" in names  # the poll path's own latency row


def _refusals(out: Path, *flags: str) -> int:
    users, step_s = 12, 3
    cmd = [
        *(sys.executable, "-m", "loadtest", "--archs", "direct-shed", "--processes", "1"),
        *("--users", str(users), "--step-seconds", str(step_s)),
        *("--model", "burn", "--work-ms", "100", "--out", str(out), *flags),
    ]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert run.returncode == 0, run.stdout + run.stderr
    with (out / "direct-shed" / "requests.csv").open() as handle:
        outcomes = [row["outcome"] for row in csv.DictReader(handle)]
    assert "ok" in outcomes
    return outcomes.count("refused")


@pytest.mark.timeout(240)
def test_closed_loop_users_wait_out_retry_after(tmp_path: Path) -> None:
    # 12 users against a pool of 1 that sheds past 4 pending: most are refused. Each
    # 503 carries Retry-After >= 1 s, so a user honouring it is refused at most once
    # per second of the 3 s step; one that retries at once is refused far more often.
    honouring = _refusals(tmp_path / "honour")
    storming = _refusals(tmp_path / "storm", "--no-retry-after")
    assert 0 < honouring <= 12 * (3 + 1)
    assert storming > 12 * (3 + 1)
