"""`make run`: a local Redis, one consumer and the API, stopped together on Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from scripts import stack

RUN_DIR = stack.ROOT / ".run"
EXAMPLE_BODY = (
    '{"model": "iris", "input": {"sepal_length": 5.1, "sepal_width": 3.5,'
    ' "petal_length": 1.4, "petal_width": 0.2}}'
)


def main() -> int:
    redis_port = int(os.environ.get("INFERQ_RUN_REDIS_PORT", "6390"))
    api_port = int(os.environ.get("INFERQ_RUN_API_PORT", "8000"))
    workers = os.environ.get("INFERQ_RUN_CONSUMER_WORKERS", "2")
    env = {
        "INFERQ_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        # make run is a development stack: the built-in queue secret is allowed.
        "INFERQ_ENVIRONMENT": os.environ.get("INFERQ_ENVIRONMENT", "development"),
    }
    procs = []
    # Children run in their own sessions, so Ctrl-C reaches only this process, which then
    # stops them in order. Installed explicitly: a shell that starts us in the background
    # leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print(f"starting redis-server on port {redis_port} (AOF in {RUN_DIR / 'redis'})")
        procs.append(
            stack.start_redis(
                redis_port, RUN_DIR / "redis", durable=True, log=RUN_DIR / "redis.log"
            )
        )
        print(f"starting huey_consumer worker.huey -k process -w {workers}")
        procs.append(stack.start_consumer(env, int(workers), None))
        print(f"starting uvicorn api.main:app on port {api_port}")
        procs.append(stack.start_api(env, api_port, 1, None))
        ready = f"http://127.0.0.1:{api_port}/readyz"
        stack.wait_until(lambda: stack.http_ok(ready), 60, "a consumer to load its models")
        _banner(api_port)
        while all(proc.poll() is None for proc in procs):
            time.sleep(0.5)
        print("a process exited; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...")
        return 0
    finally:
        for proc in reversed(procs):
            stack.stop(proc, signal.SIGINT, timeout=30)  # SIGINT: huey finishes running jobs


def _banner(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    print(
        f"""
inferq is up.
  API          {base}
  OpenAPI docs {base}/docs
  readiness    {base}/readyz
  metrics      {base}/metrics
  dashboard    {base}/dashboard
  logs         {Path("logs").resolve()}/

Try:
  curl -s -X POST '{base}/jobs?wait=true' -H 'content-type: application/json' \\
       -d '{EXAMPLE_BODY}'

Ctrl-C stops everything.
""",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
