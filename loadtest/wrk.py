"""wrk as the load generator for the benchmarks: a few microseconds of CPU per request.

locust costs a core at a thousand requests a second on this two-core machine, so the
throughput rows use wrk (Debian's `wrk`) in closed loop: each connection is a user
that sends its next request as soon as the answer arrives. A Lua script writes a
distinct body per request (no cache can answer it) and counts 200s apart from the rest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from loadtest.digits import CORNERS, images

LUA = r"""
local threads = {}
counter, ok, other = 0, 0, 0  -- globals: done() reads them per thread
local path, model, offset = "/", "echo", 0
IMAGES = {%(images)s}
CORNERS = {%(corners)s}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  path, model, offset = args[1], args[2], tonumber(args[3])
end

local function digits(n)
  local image = IMAGES[(n %% #IMAGES) + 1]
  local pixels = {}
  for i = 1, 64 do pixels[i] = image[i] end
  local mark = math.floor(n / #IMAGES)
  for _, corner in ipairs(CORNERS) do
    pixels[corner + 1] = mark %% 17
    mark = math.floor(mark / 17)
  end
  return '{"model":"digits","input":{"pixels":[' .. table.concat(pixels, ",") .. ']}}'
end

function request()
  counter = counter + 1
  local n = offset + counter * 64 + id
  local body
  if model == "digits" then
    body = digits(n)
  else
    body = '{"model":"echo","input":{"n":' .. n .. ',"run":"%(run)s"}}'
  end
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local good, bad = 0, 0
  for _, thread in ipairs(threads) do
    good = good + thread:get("ok")
    bad = bad + thread:get("other")
  end
  io.write(string.format(
    'WRK_JSON {"ok":%%d,"other":%%d,"errors":%%d,"seconds":%%.3f,"p50_ms":%%.3f,"p99_ms":%%.3f}\n',
    good, bad, summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


@dataclass(frozen=True)
class WrkResult:
    ok: int
    other: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_s: float  # wrk's own user + system CPU

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        total = self.ok + self.other
        return self.cpu_s * 1e6 / total if total else 0.0


def require_wrk() -> str:
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("the benchmarks need wrk: apt-get install wrk (Debian's package)")
    return found


def run_wrk(
    url: str,
    path: str,
    model: str,
    connections: int,
    seconds: float,
    offset: int = 0,
    timeout_s: float = 10,
) -> WrkResult:
    """Closed-loop load from `connections` connections for `seconds`; 200s counted as ok."""
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "inferq.lua"
        script.write_text(_script())
        cmd = [
            require_wrk(),
            "-t1",
            f"-c{connections}",
            f"-d{seconds:g}s",
            f"--timeout={timeout_s:g}s",
            "-s",
            str(script),
            url,
            "--",
            path,
            model,
            str(offset),
        ]
        out = Path(scratch) / "out.txt"
        with open(out, "wb") as sink:
            proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        text = out.read_text()
    found = re.search(r"WRK_JSON (\{.*\})", text)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{text}")
    fields = json.loads(found.group(1))
    return WrkResult(cpu_s=usage.ru_utime + usage.ru_stime, **fields)


def _script() -> str:
    pool = ",".join("{" + ",".join(map(str, image)) + "}" for image in images(1))
    return LUA % {
        "images": pool,
        "corners": ",".join(map(str, CORNERS)),
        "run": f"{time.time_ns():x}",
    }
