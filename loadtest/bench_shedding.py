"""Row 16 of `make bench`: the load-shedding post's experiment, on both paths.

A model that holds a CPU for 500 ms (`burn`), two model processes (consumers, or the
direct path's pool), and closed-loop clients that give up after 2 s by closing the
connection, as the post's clients do, then send their next request at once. A refused
client honours Retry-After. Every input is unique, so no cache helps. Capacity is the
goodput of 2 clients that never time out, measured in the same stack first.
The stack is the README's contract with shipped settings (`bench_batching.shipped_stack`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loadtest.bench_batching import DIRECT, QUEUED, shipped_stack
from loadtest.report import percentile

WORK_MS = 500
CLIENT_TIMEOUT_S = 2.0
DEADLINE_S = 1.8
CLIENTS = (1, 5, 10, 20)
TARGETS = {"deadline": 0.85, "none_queued": 0.6}


@dataclass
class Step:
    """What the clients of one step saw."""

    clients: int
    seconds: float
    ok_ms: list[float] = field(default_factory=list)
    timeouts: int = 0
    refused: int = 0
    expired: int = 0
    errors: int = 0

    @property
    def requests(self) -> int:
        return len(self.ok_ms) + self.timeouts + self.refused + self.expired + self.errors

    def summary(self, capacity: float, loadgen_cpu_s: float) -> dict[str, Any]:
        goodput = len(self.ok_ms) / self.seconds
        return {
            "clients": self.clients,
            "requests": self.requests,
            "ok": len(self.ok_ms),
            "timeouts": self.timeouts,
            "timeout_ratio": round(self.timeouts / self.requests, 3) if self.requests else 0,
            "refused": self.refused,
            "expired": self.expired,
            "errors": self.errors,
            "goodput_rps": round(goodput, 2),
            "goodput_over_capacity": round(goodput / capacity, 3) if capacity else None,
            "p50_ok_ms": _round(percentile(self.ok_ms, 50)),
            "p99_ok_ms": _round(percentile(self.ok_ms, 99)),
            "loadgen_cpu_ms_per_request": round(loadgen_cpu_s * 1000 / max(1, self.requests), 2),
        }


async def _request(
    host: str, port: int, path: str, body: bytes, timeout_s: float
) -> tuple[int, dict[str, str], bytes] | None:
    """One HTTP/1.1 request on its own connection; None if the client gave up (and closed)."""
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
            payload = await reader.readexactly(int(headers.get("content-length", "0")))
            return int(head[0].split()[1]), headers, payload
    except TimeoutError:
        return None
    finally:
        if writer is not None:
            writer.close()  # the post's clients leave: the server sees the disconnect


async def _client(url: str, path: str, step: Step, until: float, deadline: float | None) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        body: dict[str, Any] = {
            "model": "burn",
            "input": {"text": uuid.uuid4().hex, "work_ms": WORK_MS},
        }
        if deadline is not None:
            body["deadline_s"] = deadline
        began = loop.time()
        try:
            reply = await _request(host, port, path, json.dumps(body).encode(), CLIENT_TIMEOUT_S)
        except OSError:
            step.errors += 1
            await asyncio.sleep(0.1)
            continue
        if loop.time() > until:
            return  # answers after the step ended belong to no step
        if reply is None:
            step.timeouts += 1
            continue
        status, headers, payload = reply
        if status in (429, 503):
            step.refused += 1
            retry_after = float(headers.get("retry-after", "1"))
            await asyncio.sleep(min(retry_after, max(0.0, until - loop.time())))
        elif status == 200 and (path == DIRECT or json.loads(payload)["status"] == "succeeded"):
            step.ok_ms.append((loop.time() - began) * 1000)
        elif status == 200:
            step.expired += 1
        else:
            step.errors += 1


def run_step(
    url: str, path: str, clients: int, seconds: float, deadline: float | None
) -> tuple[Step, float]:
    """Run `clients` closed-loop clients for `seconds`; the step and the generator's CPU s."""
    step = Step(clients, seconds)

    async def main() -> None:
        until = asyncio.get_running_loop().time() + seconds
        await asyncio.gather(*(_client(url, path, step, until, deadline) for _ in range(clients)))

    cpu = time.process_time()
    asyncio.run(main())
    return step, time.process_time() - cpu


def shedding_rows(out: Path, seconds: float) -> dict[str, Any]:
    """Both paths with and without a stated deadline, at 1, 5, 10 and 20 clients."""
    results: dict[str, Any] = {
        "work_ms": WORK_MS,
        "client_timeout_s": CLIENT_TIMEOUT_S,
        "deadline_s": DEADLINE_S,
        "seconds": seconds,
        "targets": TARGETS,
    }
    for name, path in (("queued", QUEUED), ("direct", DIRECT)):
        with shipped_stack(out / f"shedding-{name}") as (url, _):
            run_step(url, path, 1, 2, None)  # warm up: first calls and service-time estimates
            capacity_step, _ = run_step(url, path, 2, seconds, None)
            capacity = len(capacity_step.ok_ms) / seconds
            rows: dict[str, Any] = {"capacity_rps": round(capacity, 2)}
            for label, deadline in (("none", None), ("deadline", DEADLINE_S)):
                rows[label] = []
                for clients in CLIENTS:
                    print(f"- shedding {name} deadline={label} clients={clients}", flush=True)
                    step, cpu = run_step(url, path, clients, seconds, deadline)
                    rows[label].append(step.summary(capacity, cpu))
                    time.sleep(CLIENT_TIMEOUT_S)  # let the step's abandoned work drain
            results[name] = rows
    (out / "bench-shedding.json").write_text(json.dumps(results, indent=2))
    write_chart(results, out / "shedding.png")
    return results


def table(results: dict[str, Any]) -> str:
    """One line per path, deadline mode and client count, with its target."""
    lines = []
    for name in ("queued", "direct"):
        rows = results[name]
        lines.append(f"16 {name}: capacity {rows['capacity_rps']} req/s (2 clients)")
        for label in ("none", "deadline"):
            for row in rows[label]:
                lines.append(
                    f"   {label:8} c={row['clients']:<2} goodput {row['goodput_over_capacity']} "
                    f"({row['goodput_rps']}/s) timeouts {row['timeouts']}/{row['requests']} "
                    f"refused {row['refused']} expired {row['expired']} p50 {row['p50_ok_ms']} "
                    f"p99 {row['p99_ok_ms']} ms | target {_target(name, label, row['clients'])}"
                )
    return "\n".join(lines)


def _target(name: str, label: str, clients: int) -> str:
    if label == "deadline" and clients >= 10:
        return f"0 timeouts, >= {TARGETS['deadline']}"
    if label == "none" and clients == 20:
        return f">= {TARGETS['none_queued']}" if name == "queued" else "no worse than before"
    return "-"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def write_chart(results: dict[str, Any], path: Path) -> None:
    """The post's missing chart: response time and timeout ratio against clients."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (latency, timeouts, goodput) = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, colour in (("queued", "tab:blue"), ("direct", "tab:orange")):
        for label, style in (("none", "--"), ("deadline", "-")):
            rows = results[name][label]
            clients = [row["clients"] for row in rows]
            tag = f"{name}, {'deadline 1.8 s' if label == 'deadline' else 'no deadline'}"
            latency.plot(clients, [r["p50_ok_ms"] for r in rows], style, color=colour, label=tag)
            timeouts.plot(clients, [r["timeout_ratio"] for r in rows], style, color=colour)
            goodput.plot(clients, [r["goodput_over_capacity"] for r in rows], style, color=colour)
    latency.set(title="p50 of answered requests (ms)", xlabel="clients")
    timeouts.set(title="share of requests the client gave up on", xlabel="clients", ylim=(0, 1))
    goodput.set(title="goodput / capacity", xlabel="clients", ylim=(0, 1.3))
    for axis in (latency, timeouts, goodput):
        axis.set_xticks(list(CLIENTS))
        axis.grid(alpha=0.3)
    latency.legend(fontsize=8)
    fig.suptitle(
        f"burn {WORK_MS} ms, 2 model processes, clients give up after {CLIENT_TIMEOUT_S:g} s "
        "(shipped settings)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
