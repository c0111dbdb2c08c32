"""HTTP, cache and direct-path metrics, and the request-timing middleware."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.history import TALLY
from worker.metrics import LATENCY_BUCKETS

HTTP_REQUESTS = Counter(
    "inferq_http_requests_total", "HTTP requests answered", ("route", "method", "status")
)
HTTP_DURATION = Histogram(
    "inferq_http_request_duration_seconds",
    "HTTP request duration",
    ("route",),
    buckets=LATENCY_BUCKETS,
)
CACHE_HITS = Counter("inferq_cache_hits_total", "Answers without a new model run", ("tier",))
CACHE_MISSES = Counter("inferq_cache_misses_total", "Cache look-ups that missed", ("tier",))
DIRECT_IN_FLIGHT = Gauge(
    "inferq_direct_in_flight",
    "/predict requests running in the pool",
    ("model",),
    multiprocess_mode="livesum",
)
DIRECT_WAITING = Gauge(
    "inferq_direct_waiting",
    "/predict requests waiting for a pool process",
    ("model",),
    multiprocess_mode="livesum",
)
# /predict answers that are a model's outcome (refusals and bad input are not).
_DIRECT_OUTCOMES = {200: "succeeded", 500: "failed", 504: "failed"}
DIRECT_SHED = Counter("inferq_direct_shed_total", "/predict requests refused with 503", ("model",))


class HttpMetricsMiddleware:
    """Counts and times every request by route template (never by raw path: low cardinality)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            took = time.perf_counter() - began
            HTTP_REQUESTS.labels(route, scope["method"], str(status)).inc()
            HTTP_DURATION.labels(route).observe(took)
            if route == "/predict" and status in _DIRECT_OUTCOMES:
                TALLY.finished(time.time(), "direct", _DIRECT_OUTCOMES[status], took)
