"""Rows 13-14, counted as well as timed: instructions redis-server runs per job.

Redis CPU per job read from INFO under load (rows 13-14 of the wrk runs) moves by a factor
of two from run to run on this shared VM, and with the machine: the same code measured
80 us one day and 140 the next. Instructions do not: redis-server runs under callgrind
(valgrind) and counts what it executes for a fixed number of jobs: unbatched `echo` the
same within about 1% from run to run, batched `digits` within 1-2% over 2,560 jobs (over
640 it spread 3-6%: how many of Lua's garbage-collection cycles fall into a run moves
the count, and more jobs average that out). Submits go through `JobStore` as the API
sends them (50 per event-loop turn: the turn's first part of 16 or 32 goes as one script
call, the rest as another at the turn's end; see api/coalesce.py); a `ComputationRunner` in
this process takes and settles them in batches of 1 (`echo`, batching off) or 64
(`digits`), running the real models. No HTTP, no waiting clients: only the queue's own
Redis work is counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from api.jobstore import JobStore, PreparedJob
from config import Settings
from core.batching import CostFit
from core.cache import cache_key
from core.jobs import Priority
from core.keys import RedisKeys
from loadtest.bench_batching import redis_cpu_s
from loadtest.digits import unique_pixels
from scripts import stack
from worker.app import make_huey
from worker.batches import Batch
from worker.models import configured_models
from worker.runner import ComputationRunner

PER_TURN = 50
CASES = (("echo", 1, 400), ("digits", 64, 2560))  # model, batch size, jobs


def require_valgrind() -> str | None:
    return shutil.which("valgrind") and shutil.which("callgrind_control")


def redis_cost_rows(out: Path) -> dict[str, Any]:
    """Instructions per job for unbatched `echo` and batched `digits`."""
    rows = {}
    for model, batch, jobs in CASES:
        print(f"- redis instructions per job: {model}, batches of {batch}", flush=True)
        row: dict[str, Any] = dict(instructions_per_job(out / "redis-cost", model, batch, jobs))
        row.update(native_cost(out / "redis-cost", model, batch, jobs, row["total"]))
        rows[f"{model}_batch{batch}"] = row
    return rows


NATIVE_REPEATS = 3


def native_cost(
    workdir: Path, model: str, batch: int, jobs: int, instructions: int
) -> dict[str, float]:
    """The same work on a redis-server without valgrind: its CPU per job, from INFO.

    Beside the instruction count this gives the machine's speed at Redis's own work, in
    the same run: how many microseconds 100,000 of these instructions take here. Rows
    13-14 (Redis CPU per job under wrk, in microseconds) move with it from machine to
    machine: the same code, the same instructions per job, measured 43-57 us (row 14)
    on one VM and about 100 us on another that ran them at half the speed.
    """
    port = stack.free_port()
    server = stack.start_redis(port, workdir / f"native-{model}")
    try:
        client = redis.Redis(port=port)
        work = _Work(port, model, batch)
        work.submit(300)
        work.drain()
        per_job = []
        for _ in range(NATIVE_REPEATS):
            before = redis_cpu_s(client)
            work.submit(jobs)
            work.drain()
            per_job.append((redis_cpu_s(client) - before) * 1e6 / jobs)
        work.close()
        client.close()
    finally:
        stack.stop(server, timeout=30)
    us = sorted(per_job)[len(per_job) // 2]
    return {
        "native_us_per_job": round(us, 1),
        "native_us_per_100k_instructions": round(us * 100_000 / instructions, 1),
    }


def instructions_per_job(workdir: Path, model: str, batch: int, jobs: int) -> dict[str, int]:
    """Instructions redis-server runs to submit `jobs` jobs, then to take and settle them."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, dump = stack.free_port(), workdir / f"callgrind.{model}.{batch}"
    for old in workdir.glob(f"{dump.name}*"):
        old.unlink()
    server = stack.start(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={dump}",
            stack.redis_server_binary(),
            *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        ],
        log=workdir / "valgrind.log",
    )
    try:
        client = redis.Redis(port=port)
        stack.wait_until(lambda: _pings(client), 60, "redis-server under valgrind")
        counted = _Counted(server.pid, dump)
        work = _Work(port, model, batch)
        work.submit(300)  # warm up: scripts loaded, queues and indexes exist
        work.drain()
        submit = counted.phase("submit", lambda: work.submit(jobs))
        settle = counted.phase("take-and-settle", work.drain)
        work.close()
    finally:
        stack.stop(server, timeout=30)
    return {
        "jobs": jobs,
        "submit": round(submit / jobs),
        "take_and_settle": round(settle / jobs),
        "total": round((submit + settle) / jobs),
    }


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


class _Counted:
    """Phases of a callgrind run: counters zeroed before, dumped after, totals read back."""

    def __init__(self, pid: int, dump: Path) -> None:
        self.pid, self.dump = pid, dump

    def phase(self, name: str, run: Any) -> int:
        subprocess.run(["callgrind_control", "-z", str(self.pid)], check=True, capture_output=True)
        run()
        subprocess.run(
            ["callgrind_control", "-d", name, str(self.pid)], check=True, capture_output=True
        )
        return self._total(name)

    def _total(self, name: str) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for path in self.dump.parent.glob(f"{self.dump.name}.*"):
                text = path.read_text()
                if f"Trigger: dump {name}" in text:
                    for line in text.splitlines():
                        if line.startswith(("summary:", "totals:")):
                            return int(line.split()[1])
            time.sleep(0.2)
        raise TimeoutError(f"callgrind wrote no dump for {name}")


class _Work:
    """Submits as the API does and takes and settles as a consumer worker does."""

    def __init__(self, port: int, model: str, batch: int) -> None:
        self.model, self.batch, self.count = model, batch, 0
        self.settings = Settings(
            _env_file=None,
            redis_url=f"redis://127.0.0.1:{port}/0",
            environment="development",
            queue_max_depth=10**9,
            batch_max_size=batch,
            batch_max_wait_ms=0,
            log_level="WARNING",
            # FIFO, as under wrk: submitting thousands of jobs under valgrind takes longer
            # than the shipped 1 s after which a standing queue is served newest first.
            lifo_after_s=0,
        )
        self.keys = RedisKeys(self.settings.namespace)
        models = configured_models(self.settings)
        models.load_all()
        self.version = models.get(model).version
        self.huey = make_huey(self.settings)
        self.runner = ComputationRunner(
            self.huey.storage.conn,
            self.keys,
            models,
            self.settings,
            "bench-1",
            self.huey.storage.queue_key,
        )

    def submit(self, jobs: int) -> None:
        asyncio.run(self._submit(jobs))

    async def _submit(self, jobs: int) -> None:
        client = redis.asyncio.Redis.from_url(self.settings.redis_url)
        store = JobStore(client, self.keys, self.settings)
        for first in range(0, jobs, PER_TURN):
            turn = [self._job() for _ in range(min(PER_TURN, jobs - first))]
            await asyncio.gather(*(store.submit(job) for job in turn))
        await client.aclose()

    def _job(self) -> PreparedJob:
        self.count += 1
        if self.model == "digits":
            body: dict[str, Any] = {"pixels": unique_pixels(7, self.count)}
        else:
            body = {"n": self.count, "run": uuid.uuid4().hex}
        input_json = json.dumps(body, separators=(",", ":"), sort_keys=True)
        key = cache_key(self.model, self.version, input_json)
        return PreparedJob(
            uuid.uuid4().hex, self.model, self.version, Priority.NORMAL, input_json, key
        )

    def drain(self) -> None:
        while True:
            for queue in self.runner.queues:
                # Batches of `batch`, whatever the model's timing fitted: the policy
                # explores again from a full batch (this VM's speed moved the fit, and
                # with it the batch size and the count, from run to run).
                queue.policy.cost = CostFit()
                queue.policy.largest_seen = self.batch
            taken = self.runner.take()
            if taken is None:
                return
            assert isinstance(taken, Batch)
            self.runner.run(taken)

    def close(self) -> None:
        self.huey.storage.conn.close()


def table(rows: dict[str, Any]) -> str:
    return "\n".join(
        f"{name:<22} {r['total']:>9,} instructions per job "
        f"(submit {r['submit']:,}, take and settle {r['take_and_settle']:,}; {r['jobs']} jobs)"
        + (
            f"; natively {r['native_us_per_job']} us of Redis CPU per job, "
            f"{r['native_us_per_100k_instructions']} us per 100k instructions on this machine"
            if "native_us_per_job" in r
            else ""
        )
        for name, r in rows.items()
    )


if __name__ == "__main__":  # by hand: python -m loadtest.bench_redis_cost
    print(table(redis_cost_rows(Path(os.environ.get("OUT", "/tmp/inferq-redis-cost")))))
