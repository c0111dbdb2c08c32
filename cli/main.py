"""`inferq` commands: data goes to stdout (a table, or JSON with --json), messages to stderr.

The API is at --url (or INFERQ_URL); the key, if the API wants one, comes from
INFERQ_API_KEY. Colour follows rich, which honours NO_COLOR. Any failure exits non-zero.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Operate an inferq service.", no_args_is_help=True, add_completion=False)
jobs_app = typer.Typer(help="Find, inspect and cancel jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
out, err = Console(), Console(stderr=True)

Url = Annotated[str, typer.Option(envvar="INFERQ_URL", help="the API's base URL")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
DEFAULT_URL = "http://127.0.0.1:8000"


class _Api:
    def __init__(self, url: str) -> None:
        key = _env_key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(base_url=url, headers=headers, timeout=30)

    def call(self, method: str, path: str, **options: Any) -> Any:
        try:
            response = self._client.request(method, path, **options)
        except httpx.HTTPError as exc:
            _fail(f"cannot reach the API: {exc}")
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                _fail(f"{response.status_code} {error['code']}: {error['message']}")
            except (ValueError, KeyError, TypeError):
                _fail(f"{response.status_code}: {response.text[:200]}")
        return response.json()


def _env_key() -> str | None:
    return os.environ.get("INFERQ_API_KEY") or None


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


def _emit(data: Any, as_json: bool, table: Table | None = None) -> None:
    if as_json or table is None:
        print(json.dumps(data, indent=2))
    else:
        out.print(table)


@app.command()
def status(
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
    watch: Annotated[float, typer.Option(help="refresh every this many seconds; 0: once")] = 0,
) -> None:
    """Queues (depth, oldest), consumers, intake, and the last minute's rates and latency."""
    api = _Api(url)
    while True:
        data = api.call("GET", "/status")
        data["last_minute"] = _rates(api.call("GET", "/status/history", params={"minutes": 1}))
        if as_json:
            _emit(data, True)
        else:
            out.print(_queue_table(data, url))
            out.print(_consumer_table(data))
        if not watch:
            return
        time.sleep(watch)


def _queue_table(data: dict[str, Any], url: str) -> Table:
    table = Table(title=f"inferq at {url}")
    table.add_column("queue")
    table.add_column("priority")
    table.add_column("queued", justify="right")
    table.add_column("oldest", justify="right")
    for queue in data["queues"]:
        age = queue["oldest_age_s"]
        oldest = "-" if age is None else f"{age:.1f}s"
        table.add_row(queue["model"], queue["priority"], str(queue["queued"]), oldest)
    rates = data["last_minute"]
    latency = "-" if rates["p50_ms"] is None else f"{rates['p50_ms']:g}/{rates['p99_ms']:g} ms"
    table.caption = (
        f"intake {'PAUSED' if data['paused'] else 'open'}; last minute: "
        f"{rates['queued_per_s']:g} queued + {rates['direct_per_s']:g} direct jobs/s, "
        f"queued p50/p99 {latency}, {rates['refused']} refused; created: "
        + (", ".join(f"{k} {v}" for k, v in data["jobs_last_minute"].items()) or "no jobs")
    )
    return table


def _consumer_table(data: dict[str, Any]) -> Table:
    table = Table(title=f"{data['consumers_live']} live consumers")
    for column in ("host", "pid", "heartbeat", "running", "jobs done"):
        table.add_column(column)
    now = time.time()
    for consumer in data["consumers"]:
        beat = consumer["last_heartbeat"]
        running = consumer["current_model"]
        table.add_row(
            consumer["host"],
            consumer["pid"],
            "-" if beat is None else f"{now - beat:.1f}s ago",
            f"{running} x{consumer['current_batch']}" if running else "idle",
            str(consumer["jobs_done"]),
        )
    return table


def _rates(history: dict[str, Any]) -> dict[str, Any]:
    """The last minute of /status/history, summed: jobs/s per path, latest p50/p99, refusals."""
    points, span = history["points"], len(history["points"]) * history["bucket_s"]
    latest: dict[str, Any] = next(
        (p["queued"] for p in reversed(points) if p["queued"]["p50_ms"] is not None), {}
    )
    return {
        "queued_per_s": round(
            sum(p["queued"]["per_s"] for p in points) * history["bucket_s"] / span, 2
        ),
        "direct_per_s": round(
            sum(p["direct"]["per_s"] for p in points) * history["bucket_s"] / span, 2
        ),
        "p50_ms": latest.get("p50_ms"),
        "p99_ms": latest.get("p99_ms"),
        "refused": sum(sum(p["refused"].values()) for p in points),
    }


@jobs_app.command("ls")
def jobs_ls(
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, ...")] = None,
    model: str | None = None,
    priority: str | None = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
) -> None:
    """Jobs, newest first."""
    query = {"status": status, "model": model, "priority": priority, "limit": limit}
    data = _Api(url).call("GET", "/jobs", params={k: v for k, v in query.items() if v})
    table = Table()
    table.add_column("id", no_wrap=True)  # ids are for copying: never split one
    for column in ("status", "model", "priority", "created", "attempts"):
        table.add_column(column)
    for job in data["jobs"]:
        table.add_row(
            job["id"],
            job["status"],
            f"{job['model']}@{job['model_version']}",
            job["priority"],
            _when(job["created_at"]),
            str(job["attempts"]),
        )
    _emit(data, as_json, table)


@jobs_app.command("show")
def jobs_show(job_id: str, url: Url = DEFAULT_URL) -> None:
    """One job's whole record, as JSON."""
    _emit(_Api(url).call("GET", f"/jobs/{job_id}"), as_json=True)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, url: Url = DEFAULT_URL, as_json: AsJson = False) -> None:
    """Cancel a queued job."""
    job = _Api(url).call("DELETE", f"/jobs/{job_id}")
    if as_json:
        _emit(job, True)
    else:
        err.print(f"job {job_id} is {job['status']}")


@app.command()
def purge(
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
    model: str | None = None,
    priority: str | None = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="really cancel; without it, a dry run")
    ] = False,
) -> None:
    """Cancel queued jobs by model and/or priority (operator key); a dry run without --yes."""
    body = {"model": model, "priority": priority, "dry_run": not yes}
    data = _Api(url).call("POST", "/admin/purge", json=body)
    if as_json:
        _emit(data, True)
    verb = "purged" if yes else "would purge (pass --yes to do it)"
    err.print(f"{verb} {data['count']} queued jobs")


@app.command()
def requeue(
    status: Annotated[str, typer.Option(help="failed or expired")],
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
    model: str | None = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 1000,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only report what would run")] = False,
) -> None:
    """Run failed or expired jobs again, each as a new job linked to the old (operator key)."""
    body = {"status": status, "model": model, "dry_run": dry_run, "limit": limit}
    data = _Api(url).call("POST", "/admin/requeue", json=body)
    if as_json:
        _emit(data, True)
    elif not dry_run:
        table = Table()
        table.add_column("job", no_wrap=True)
        table.add_column("requeued as", no_wrap=True)
        for old, new in data["requeued_as"].items():
            table.add_row(old, new)
        _emit(data, False, table)
    verb = "would requeue" if dry_run else "requeued"
    refused = f"; {len(data['refused'])} refused by admission" if data["refused"] else ""
    err.print(f"{verb} {data['count']} {status} jobs{refused}")
    if data["refused"]:
        raise typer.Exit(1)


@app.command()
def pause(url: Url = DEFAULT_URL) -> None:
    """Refuse new jobs (503 paused) until `inferq resume` (operator key)."""
    _Api(url).call("POST", "/admin/pause")
    err.print("intake paused")


@app.command()
def resume(url: Url = DEFAULT_URL) -> None:
    """Accept new jobs again (operator key)."""
    _Api(url).call("POST", "/admin/resume")
    err.print("intake open")


def _when(stamp: str | None) -> str:
    if not stamp:
        return "-"
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def main() -> None:
    app()
