from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.auth import authenticate_metrics
from api.overview import QueueState, queue_states
from api.reload import read_checks
from api.services import ServicesDep
from core.checks import CheckResult
from worker.metrics import ServerFiles

router = APIRouter(tags=["metrics"])


class _Snapshot(Collector):
    """Gauges read from Redis at scrape time (they are facts of the queue, not of a process)."""

    def __init__(
        self,
        queues: list[QueueState],
        consumers: int,
        checks: dict[str, CheckResult] | None = None,
    ) -> None:
        self._queues, self._consumers, self._checks = queues, consumers, checks or {}

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "inferq_queue_depth", "Queued computations", labels=["model", "priority"]
        )
        oldest = GaugeMetricFamily(
            "inferq_queue_oldest_age_seconds",
            "How long the oldest queued computation has waited (0 when none is queued)",
            labels=["model", "priority"],
        )
        for queue in self._queues:
            depth.add_metric([queue.model, queue.priority.value], queue.queued)
            oldest.add_metric([queue.model, queue.priority.value], queue.oldest_age_s or 0.0)
        yield depth
        yield oldest
        yield GaugeMetricFamily(
            "inferq_consumers_live",
            "Consumer worker processes with a recent heartbeat",
            value=self._consumers,
        )
        yield from self._check_families()

    def _check_families(self) -> Iterator[Metric]:
        labels = ["model", "version"]
        passed = GaugeMetricFamily(
            "inferq_model_check_passed", "1 if the latest reference check passed", labels=labels
        )
        accuracy = GaugeMetricFamily(
            "inferq_model_check_accuracy", "Accuracy on the reference data", labels=labels
        )
        distance = GaugeMetricFamily(
            "inferq_model_check_distance",
            "Total variation distance, predicted vs expected label distribution",
            labels=labels,
        )
        age = GaugeMetricFamily(
            "inferq_model_check_age_seconds", "Time since the latest check", labels=labels
        )
        now = time.time()
        for spec, result in sorted(self._checks.items()):
            name, _, version = spec.partition("@")
            passed.add_metric([name, version], 1.0 if result.passed else 0.0)
            if result.accuracy is not None:
                accuracy.add_metric([name, version], result.accuracy)
            if result.distance is not None:
                distance.add_metric([name, version], result.distance)
            age.add_metric([name, version], max(0.0, now - result.at))
        yield from (passed, accuracy, distance, age)


@router.get("/metrics", response_class=Response, dependencies=[Depends(authenticate_metrics)])
async def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics of this API and of the consumers running on its host."""
    queues = await queue_states(services.redis, services.keys)
    consumers = await services.store.live_consumers()
    registry = CollectorRegistry()
    registry.register(ServerFiles(services.settings.metrics_dir))
    checks = await read_checks(services.redis, services.keys)
    registry.register(_Snapshot(queues, consumers, checks))
    # Reading the per-process files is disk I/O: keep it off the event loop.
    body = await asyncio.to_thread(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
