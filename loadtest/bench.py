"""`make bench`: the queued path measured against the direct path, in one run on this machine.

Absolute times are noisy on a shared machine, so every figure that has a target is a
ratio or a difference against a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import redis

from loadtest import bench_batching, bench_redis_cost, bench_shedding
from loadtest.config import LoadConfig
from loadtest.report import StepResult, summarize
from loadtest.runner import RESULTS, Architecture, architectures, run_architecture
from loadtest.wrk import require_wrk
from scripts import stack

WORKERS = 2


class Bench:
    def __init__(self, out: Path, quick: bool) -> None:
        self.out, self.quick = out, quick
        self.results: dict[str, dict[str, Any]] = {}
        base = LoadConfig(timeout_s=5.0, work_sigma=0.0, model="echo")
        self.archs = architectures(base, WORKERS)

    def seconds(self, full: float) -> float:
        return max(3.0, full / 3) if self.quick else full

    def run(self, name: str, arch: Architecture, cfg: LoadConfig) -> StepResult:
        print(f"- {name}", flush=True)
        records = run_architecture(name, arch, cfg, self.out, None)
        return summarize(name, records, cfg)[0]

    def overhead(self) -> None:
        cfg = LoadConfig(
            users=[1], step_s=self.seconds(12), model="echo", work_sigma=0, timeout_s=5
        )
        direct = self.run("overhead-direct", self.archs["direct"], cfg)
        queued = self.run("overhead-queued", self.archs["queued"], cfg)
        self.results["1_overhead"] = {
            "direct_p50_ms": direct.p50_ms,
            "queued_p50_ms": queued.p50_ms,
            "direct_p99_ms": direct.p99_ms,
            "queued_p99_ms": queued.p99_ms,
            "p50_difference_ms": _diff(queued.p50_ms, direct.p50_ms),
            "p99_difference_ms": _diff(queued.p99_ms, direct.p99_ms),
            "requests": [direct.requests, queued.requests],
        }

    def echo_throughput(self) -> None:
        cfg = LoadConfig(
            users=[32], step_s=self.seconds(12), model="echo", work_sigma=0, timeout_s=5
        )
        direct = self.run("throughput-direct", self.archs["direct"], cfg)
        queued = self.run("throughput-queued", self.archs["queued"], cfg)
        self.results["2_echo_throughput_c32"] = {
            "direct_rps": direct.goodput_rps,
            "queued_rps": queued.goodput_rps,
            "queued_over_direct": round(queued.goodput_rps / direct.goodput_rps, 3),
        }

    def cpu_efficiency(self, jobs: int = 300, work_ms: int = 20) -> None:
        print("- cpu efficiency", flush=True)
        # The bare model is timed right before and after the queued run: this VM's
        # speed drifts by tens of percent within minutes.
        bare_before = _bare_rate(WORKERS, work_ms, jobs)
        with _Stack(self.out / "efficiency", self.archs["queued"].env) as s:
            ids = asyncio.run(_submit_all(s.url, jobs, work_ms))
            s.start_consumer(WORKERS)
            # Watch the queue drain from Redis, not with waiting requests: the API stays
            # idle and the consumers have the CPU to themselves.
            queue = redis.Redis(port=s.redis_port)
            stack.wait_until(lambda: _queue_length(queue) == 0, 300, "the queue to drain")
            records = asyncio.run(_wait_all(s.url, ids))
        started = min(r["started_at"] for r in records)
        finished = max(r["finished_at"] for r in records)
        span = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
        rate = jobs / span
        bare = (bare_before + _bare_rate(WORKERS, work_ms, jobs)) / 2
        self.results["3_cpu_efficiency"] = {
            "jobs": jobs,
            "work_ms": work_ms,
            "consumer_processes": WORKERS,
            "succeeded": sum(r["status"] == "succeeded" for r in records),
            "jobs_per_s": round(rate, 2),
            "efficiency_nominal": round(rate / (WORKERS * 1000 / work_ms), 3),
            "bare_model_jobs_per_s": round(bare, 2),
            "efficiency_vs_bare_model": round(rate / bare, 3),
            "single_core_ms_per_job": round(_single_core_burn_ms(work_ms), 2),
        }

    def waiters(self, count: int = 2000) -> None:
        print("- 2,000 waiters", flush=True)
        env = {**self.archs["queued"].env, "INFERQ_REDIS_MAX_CONNECTIONS": "8"}
        with _Stack(self.out / "waiters", env) as s:
            began = time.monotonic()
            outcome = asyncio.run(_hold_waiters(s, count))
            outcome["seconds"] = round(time.monotonic() - began, 2)
        self.results["4_waiters"] = outcome

    def cache(self) -> None:
        steps = self.seconds(10)
        hits = LoadConfig(users=[32], step_s=steps, model="echo", cached_share=1.0, timeout_s=5)
        miss = replace(hits, cached_share=0.0)
        cached = self.run("cache-hits-queued", self.archs["queued"], hits)
        direct = self.run("cache-direct-echo", self.archs["direct"], miss)
        self.results["5_cache_hits"] = {
            "cached_rps": cached.goodput_rps,
            "direct_echo_rps": direct.goodput_rps,
            "cached_over_direct": round(cached.goodput_rps / direct.goodput_rps, 3),
        }

    def overload(self, work_ms: int = 50, factor: float = 3.0) -> None:
        closed = LoadConfig(
            users=[16],
            step_s=self.seconds(12),
            model="burn",
            work_ms=work_ms,
            work_sigma=0,
            timeout_s=2,
        )
        # This VM's speed drifts by tens of percent within minutes, so capacity is
        # measured right before and right after each overload run, and each run is
        # compared with the mean of its two neighbours, not with one early reading.
        capacities = [self._capacity(closed, 0)]
        offered = LoadConfig(
            mode="open",
            rates=[round(factor * capacities[0], 1)],
            step_s=self.seconds(30),
            model="burn",
            work_ms=work_ms,
            work_sigma=0,
            timeout_s=2,
        )
        archs = architectures(offered, WORKERS)
        rows = {}
        for i, name in enumerate(("queued-admission", "queued", "direct-shed", "direct"), 1):
            step = self.run(f"overload-{name}", archs[name], offered)
            capacities.append(self._capacity(closed, i))
            capacity = round((capacities[-2] + capacities[-1]) / 2, 2)
            rows[name] = {
                "requests": step.requests,
                "timeouts": round(step.timeout_pct * step.requests / 100),
                "timeout_pct": step.timeout_pct,
                "refused_pct": step.refused_pct,
                "expired_pct": step.expired_pct,
                "p99_ok_ms": step.p99_ms,
                "goodput_rps": step.goodput_rps,
                "capacity_rps": capacity,
                "goodput_over_capacity": round(step.goodput_rps / capacity, 3),
            }
        self.results["6_overload"] = {
            "capacity_rps_measured": capacities,
            "offered_rps": offered.rates[0],
            "work_ms": work_ms,
            "client_timeout_s": 2,
            "seconds": offered.step_s,
            "architectures": rows,
        }

    def batching(self) -> None:
        """Rows 7-15: batching on both paths and what the queue costs, wrk from outside."""
        self.results["7_batching"] = bench_batching.batching_rows(self.out, self.seconds(10))

    def redis_cost(self) -> None:
        """Rows 13-14 counted: redis-server instructions per job, under callgrind."""
        if not bench_redis_cost.require_valgrind():
            print("- redis instructions per job: SKIPPED, needs valgrind (Debian: valgrind)")
            return
        self.results["13_redis_instructions"] = bench_redis_cost.redis_cost_rows(self.out)

    def shedding(self) -> None:
        """Row 16: the load-shedding post's experiment, both paths, shipped settings."""
        self.results["16_shedding"] = bench_shedding.shedding_rows(self.out, self.seconds(12))

    def _capacity(self, closed: LoadConfig, index: int) -> float:
        """Goodput of the queued path saturated by a closed loop: what the machine serves now."""
        return self.run(f"capacity-{index}", self.archs["queued"], closed).goodput_rps


class _Stack:
    """Redis and the API (no consumer until asked), for the hand-driven benchmarks."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.procs: list[Popen[bytes]] = []
        workdir.mkdir(parents=True, exist_ok=True)
        self.redis_port, self.port = stack.free_port(), stack.free_port()
        self.env = {
            "INFERQ_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "INFERQ_ENVIRONMENT": "development",
            "INFERQ_LOG_DIR": str(workdir / "logs"),
            "INFERQ_LOG_LEVEL": "WARNING",
            "INFERQ_METRICS_DIR": str(workdir / "metrics"),
            **env,
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> _Stack:
        self.procs.append(stack.start_redis(self.redis_port, self.workdir / "redis"))
        self.api = stack.start_api(self.env, self.port, 1, self.workdir / "api.log")
        self.procs.append(self.api)
        return self

    def start_consumer(self, workers: int) -> None:
        self.procs.append(stack.start_consumer(self.env, workers, self.workdir / "consumer.log"))

    def __exit__(self, *_: object) -> None:
        for proc in reversed(self.procs):
            stack.stop(proc)


async def _submit_all(url: str, jobs: int, work_ms: int) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        body = {"model": "burn", "input": {"work_ms": work_ms}}
        responses = [
            await client.post("/jobs", json={**body, "input": {**body["input"], "text": f"e{i}"}})
            for i in range(jobs)
        ]
    return [r.json()["id"] for r in responses]


def _queue_length(client: redis.Redis) -> int:
    time.sleep(0.5)
    return sum(int(client.zcard(key)) for key in client.scan_iter(match="inferq:queue:*"))


async def _wait_all(url: str, ids: list[str]) -> list[dict[str, Any]]:
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        responses = await asyncio.gather(
            *(client.get(f"/jobs/{i}?wait=true&timeout=290") for i in ids)
        )
    return [r.json() for r in responses]


async def _hold_waiters(s: _Stack, count: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=0)
    client = redis.Redis(port=s.redis_port, decode_responses=True)
    rss_before = _rss_mb(s.api.pid)
    async with httpx.AsyncClient(base_url=s.url, timeout=300, limits=limits) as http:
        tasks = [
            asyncio.create_task(
                http.post("/jobs?wait=true&timeout=290", json={"model": "echo", "input": {"n": i}})
            )
            for i in range(count)
        ]
        await asyncio.to_thread(
            stack.wait_until,
            lambda: sum(client.zcard(k) for k in client.scan_iter(match="inferq:queue:*")) >= count,
            120,
            "every waiter's job to be queued",
        )
        held = sum(not t.done() for t in tasks)
        connections = sum(c.get("name", "").startswith("inferq-api") for c in client.client_list())
        rss_holding = _rss_mb(s.api.pid)
        s.start_consumer(WORKERS)
        responses = await asyncio.gather(*tasks, return_exceptions=True)
    ok = sum(isinstance(r, httpx.Response) and r.status_code == 200 for r in responses)
    return {
        "waiters": count,
        "held_open_at_once": held,
        "completed_200": ok,
        "errors": count - ok,
        "api_redis_connections": connections,
        "api_rss_mb_idle": rss_before,
        "api_rss_mb_holding": rss_holding,
    }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _burn_many(work_ms: int, count: int) -> None:
    from core.models.burn import BurnInput, BurnModel

    model = BurnModel()
    model.load()
    for i in range(count):
        model.predict([BurnInput(text=f"b{i}", work_ms=work_ms)])


def _run_processes(processes: int, work_ms: int, count: int) -> float:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_burn_many, args=(work_ms, count)) for _ in range(processes)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - began


def _bare_rate(processes: int, work_ms: int, jobs: int) -> float:
    """Jobs/s of the model alone in `processes` processes, no queue: what the CPU allows.

    On a VM whose cores are not independent (here two processes each ran about
    2x slower than one alone) this, not processes x 1000/work_ms, is the ceiling.
    Process start-up is measured with a zero-job run and subtracted.
    """
    per_process = jobs // processes
    startup = _run_processes(processes, work_ms, 0)
    elapsed = _run_processes(processes, work_ms, per_process) - startup
    return per_process * processes / elapsed


def _single_core_burn_ms(work_ms: int) -> float:
    from core.models.burn import BurnInput, BurnModel

    model = BurnModel()
    model.load()
    timings = []
    for _ in range(10):
        began = time.perf_counter()
        model.predict([BurnInput(text="x", work_ms=work_ms)])
        timings.append((time.perf_counter() - began) * 1000)
    return sorted(timings)[len(timings) // 2]


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def table(results: dict[str, dict[str, Any]]) -> str:
    r = results
    rows = []
    if "1_overhead" in r:
        o = r["1_overhead"]
        rows.append(
            (
                "1 overhead, echo, c=1",
                f"p50 queued {o['queued_p50_ms']} vs direct "
                f"{o['direct_p50_ms']} ms: +{o['p50_difference_ms']} ms; p99 "
                f"{o['queued_p99_ms']} vs {o['direct_p99_ms']} ms",
                "p50 diff <= 1 ms",
            )
        )
    if "2_echo_throughput_c32" in r:
        t = r["2_echo_throughput_c32"]
        rows.append(
            (
                "2 echo throughput, c=32",
                f"queued {t['queued_rps']} / direct "
                f"{t['direct_rps']} req/s = {t['queued_over_direct']}",
                ">= 0.6",
            )
        )
    if "3_cpu_efficiency" in r:
        e = r["3_cpu_efficiency"]
        rows.append(
            (
                f"3 burn {e['work_ms']} ms, {e['consumer_processes']} consumers",
                f"{e['jobs_per_s']} jobs/s = {e['efficiency_vs_bare_model']} of the bare model "
                f"in {e['consumer_processes']} processes ({e['bare_model_jobs_per_s']}/s); "
                f"{e['efficiency_nominal']} of nominal (1 job alone: "
                f"{e['single_core_ms_per_job']} ms)",
                ">= 0.85",
            )
        )
    if "4_waiters" in r:
        w = r["4_waiters"]
        rows.append(
            (
                "4 concurrent wait=true",
                f"{w['completed_200']}/{w['waiters']} ok, "
                f"{w['errors']} errors, {w['api_redis_connections']} Redis connections, "
                f"API RSS {w['api_rss_mb_idle']} -> {w['api_rss_mb_holding']} MB",
                "0 errors",
            )
        )
    if "5_cache_hits" in r:
        c = r["5_cache_hits"]
        rows.append(
            (
                "5 cache hits, c=32",
                f"{c['cached_rps']} vs direct echo "
                f"{c['direct_echo_rps']} req/s = {c['cached_over_direct']}",
                "-",
            )
        )
    if "6_overload" in r:
        v = r["6_overload"]
        for name, a in v["architectures"].items():
            rows.append(
                (
                    f"6 3x overload: {name}",
                    f"timeouts {a['timeouts']} "
                    f"({a['timeout_pct']}%), refused {a['refused_pct']}%, p99 ok "
                    f"{a['p99_ok_ms']} ms, goodput {a['goodput_over_capacity']} of "
                    f"{a['capacity_rps']} req/s",
                    "0 timeouts, >= 0.9" if name == "queued-admission" else "-",
                )
            )
    lines = []
    if rows:
        width = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [" | ".join(cell.ljust(width[i]) for i, cell in enumerate(row)) for row in rows]
    if "7_batching" in r:
        lines += ["", "batching and queue cost (wrk, shipped settings):"]
        lines.append(bench_batching.table(r["7_batching"]))
    if "13_redis_instructions" in r:
        lines += ["", "redis-server instructions per job (callgrind; within 1-2% run to run):"]
        lines.append(bench_redis_cost.table(r["13_redis_instructions"]))
    if "16_shedding" in r:
        lines += ["", "the load-shedding post's experiment (burn 500 ms, 2 s client timeout):"]
        lines.append(bench_shedding.table(r["16_shedding"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs (noisier)")
    parser.add_argument(
        "--only",
        help="comma-separated subset: "
        "overhead,throughput,efficiency,waiters,cache,overload,batching,rediscost,shedding",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = args.out or RESULTS / ("bench-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    bench = Bench(out, args.quick)
    steps = {
        "overhead": bench.overhead,
        "throughput": bench.echo_throughput,
        "efficiency": bench.cpu_efficiency,
        "waiters": bench.waiters,
        "cache": bench.cache,
        "overload": bench.overload,
        "batching": bench.batching,
        "rediscost": bench.redis_cost,
        "shedding": bench.shedding,
    }
    chosen = args.only.split(",") if args.only else list(steps)
    if "batching" in chosen:
        require_wrk()  # say so now, not after the other rows have run
    for name in chosen:
        steps[name]()
    (out / "bench.json").write_text(json.dumps(bench.results, indent=2))
    print(table(bench.results))
    print(f"saved {out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
