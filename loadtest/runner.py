"""`python -m loadtest`: start each architecture, step the load with locust, report side by side."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from loadtest.config import LoadConfig
from loadtest.report import StepResult, summarize, write_charts, write_summary
from scripts import stack

RESULTS = stack.ROOT / "loadtest" / "results"


@dataclass(frozen=True)
class Architecture:
    label: str
    scenario: str  # Direct, QueuedWait or QueuedPoll
    env: dict[str, str] = field(default_factory=dict)
    consumer_workers: int = 0


def architectures(cfg: LoadConfig, model_processes: int) -> dict[str, Architecture]:
    """The stacks under comparison; each gives the model `model_processes` processes."""
    n = str(model_processes)
    # Admission leaves room for the run itself inside the client's patience.
    deadline = f"{max(0.1, cfg.timeout_s * 0.75):.2f}"
    # The comparison architectures run one input per model call, as before batching;
    # the *-batched ones run the shipped batching.
    unbatched = {"INFERQ_BATCH_MAX_SIZE": "1"}
    queued = {"INFERQ_DIRECT_WORKERS": "1", "INFERQ_QUEUE_MAX_DEPTH": "1000000", **unbatched}
    direct = {"INFERQ_DIRECT_WORKERS": n, "INFERQ_DIRECT_SHEDDING": "false"}
    return {
        "direct": Architecture(
            f"direct /predict, {n} pool processes, no shedding, no batching",
            "Direct",
            {**direct, **unbatched},
        ),
        "direct-batched": Architecture(
            f"direct /predict, {n} pool processes, no shedding, batching", "Direct", direct
        ),
        "direct-shed": Architecture(
            f"direct /predict, {n} pool processes, shedding past {4 * model_processes} pending",
            "Direct",
            {
                "INFERQ_DIRECT_WORKERS": n,
                "INFERQ_DIRECT_MAX_PENDING": str(4 * model_processes),
                **unbatched,
            },
        ),
        "queued-batched": Architecture(
            f"queued wait=true, {n} consumer processes, no admission control, batching",
            "QueuedWait",
            {k: v for k, v in queued.items() if k != "INFERQ_BATCH_MAX_SIZE"},
            model_processes,
        ),
        "queued": Architecture(
            f"queued wait=true, {n} consumer processes, no admission control",
            "QueuedWait",
            queued,
            model_processes,
        ),
        "queued-admission": Architecture(
            f"queued wait=true, {n} consumer processes, admission control + {deadline} s deadlines",
            "QueuedWait",
            {**queued, "INFERQ_QUEUE_MAX_DEPTH": "64", "INFERQ_DEFAULT_DEADLINE_S": deadline},
            model_processes,
        ),
        "queued-poll": Architecture(
            f"queued POST + poll, {n} consumer processes, no admission control",
            "QueuedPoll",
            queued,
            model_processes,
        ),
    }


DEFAULT_ARCHITECTURES = ("direct", "direct-shed", "queued", "queued-admission")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 short steps (under 2 minutes)")
    parser.add_argument(
        "--archs",
        default=",".join(DEFAULT_ARCHITECTURES),
        help="comma-separated: direct, direct-batched, direct-shed, queued, queued-batched, "
        "queued-admission, queued-poll",
    )
    parser.add_argument("--target", help="test this running deployment instead of starting stacks")
    parser.add_argument(
        "--scenario",
        default="QueuedWait",
        choices=["Direct", "QueuedWait", "QueuedPoll"],
        help="with --target: which path to load",
    )
    parser.add_argument(
        "--open-loop", action="store_true", help="fixed arrival rates instead of users"
    )
    parser.add_argument("--users", help="closed-loop users per step, e.g. 1,2,5,10,20,50")
    parser.add_argument("--rates", help="open-loop arrivals per second per step, e.g. 10,25,50,100")
    parser.add_argument("--step-seconds", type=float)
    parser.add_argument("--timeout", type=float, default=2.0, help="client timeout in seconds")
    parser.add_argument("--model", default="burn", choices=["burn", "echo", "digits"])
    parser.add_argument("--work-ms", type=int, default=20, help="median burn work per request")
    parser.add_argument("--cached-share", type=float, default=0.0, help="share of repeated inputs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-retry-after",
        action="store_true",
        help="closed-loop users retry a 503 at once instead of waiting its Retry-After",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 2,
        help="model processes per architecture (pool size or consumer workers)",
    )
    parser.add_argument("--out", type=Path, help="results directory")
    return parser.parse_args(argv)


def load_config(args: argparse.Namespace) -> LoadConfig:
    cfg = LoadConfig(
        mode="open" if args.open_loop else "closed",
        timeout_s=args.timeout,
        seed=args.seed,
        cached_share=args.cached_share,
        model=args.model,
        work_ms=args.work_ms,
        honor_retry_after=not args.no_retry_after,
    )
    if args.quick:
        cfg.users, cfg.rates, cfg.step_s = [1, 5, 20], [10, 40, 120], 7.0
    if args.users:
        cfg.users = [int(u) for u in args.users.split(",")]
    if args.rates:
        cfg.rates = [float(r) for r in args.rates.split(",")]
    if args.step_seconds:
        cfg.step_s = args.step_seconds
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_config(args)
    out = args.out or RESULTS / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    if args.target:
        chosen = {"target": Architecture(f"{args.target} ({args.scenario})", args.scenario)}
    else:
        known = architectures(cfg, args.processes)
        chosen = {name: known[name] for name in args.archs.split(",")}
    print(
        f"load test: {len(chosen)} architecture(s), {len(cfg.levels)} steps of {cfg.step_s:g} s "
        f"({cfg.mode} loop), results in {out}",
        flush=True,
    )
    results: list[StepResult] = []
    for name, arch in chosen.items():
        records = run_architecture(name, arch, cfg, out, args.target)
        results += summarize(name, records, cfg)
    labels = {name: arch.label for name, arch in chosen.items()}
    write_summary(out, results, cfg, labels)
    charts = write_charts(out, results, cfg, labels)
    print((out / "summary.md").read_text())
    print("charts: " + ", ".join(str(p) for p in charts))
    return 0


def run_architecture(
    name: str, arch: Architecture, cfg: LoadConfig, out: Path, target: str | None
) -> Path:
    """Start the stack (unless `target`), run locust through every step, stop; the records file."""
    workdir = out / name
    workdir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        url = target or _start_stack(arch, workdir, procs)
        return _run_locust(name, arch, cfg, url, workdir, out)
    finally:
        for proc in reversed(procs):
            stack.stop(proc)


def _start_stack(arch: Architecture, workdir: Path, procs: list[subprocess.Popen[bytes]]) -> str:
    redis_port, api_port = stack.free_port(), stack.free_port()
    procs.append(stack.start_redis(redis_port, workdir / "redis", log=workdir / "redis.log"))
    env = {
        "INFERQ_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "INFERQ_ENVIRONMENT": "development",
        "INFERQ_LOG_DIR": str(workdir / "logs"),
        "INFERQ_LOG_LEVEL": "WARNING",
        "INFERQ_METRICS_DIR": str(workdir / "metrics"),
        **arch.env,
    }
    if arch.consumer_workers:
        procs.append(stack.start_consumer(env, arch.consumer_workers, workdir / "consumer.log"))
    procs.append(stack.start_api(env, api_port, 1, workdir / "api.log"))
    url = f"http://127.0.0.1:{api_port}"
    probe = "/readyz" if arch.consumer_workers else "/healthz"
    stack.wait_until(lambda: stack.http_ok(url + probe), 60, "the stack")
    return url


def _run_locust(
    name: str, arch: Architecture, cfg: LoadConfig, url: str, workdir: Path, out: Path
) -> Path:
    records = workdir / "requests.csv"
    user = arch.scenario + ("Arrivals" if cfg.mode == "open" else "User")
    env = {**cfg.to_env(), "INFERQ_LT_RECORD": str(records), "PYTHONPATH": str(stack.ROOT)}
    cmd = [
        str(stack.BIN / "locust"),
        "-f",
        str(stack.ROOT / "loadtest" / "locustfile.py"),
        "--headless",
        "--host",
        url,
        "--csv",
        str(out / name),
        "--html",
        str(out / f"{name}.html"),
        "--stop-timeout",
        f"{cfg.timeout_s + 1:g}",
        "--only-summary",
        "--loglevel",
        "WARNING",
        user,
    ]
    began = time.monotonic()
    proc = stack.start(cmd, env, workdir / "locust.log")
    try:
        shown = -1
        while proc.poll() is None:
            step = int((time.monotonic() - began) // cfg.step_s)
            if step != shown and step < len(cfg.levels):
                unit = "users" if cfg.mode == "closed" else "req/s"
                print(
                    f"  {name:<17} step {step + 1}/{len(cfg.levels)}: {cfg.levels[step]:g} {unit}",
                    flush=True,
                )
                shown = step
            time.sleep(0.2)
    finally:
        stack.stop(proc)
    if not records.exists():
        raise RuntimeError(f"locust wrote no records for {name}; see {workdir / 'locust.log'}")
    return records


if __name__ == "__main__":
    sys.exit(main())
