"""App factory: routers, error handlers and the lifespan that owns Redis and the hub."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.dashboard import install_dashboard
from api.errors import install_error_handlers
from api.limits import BodySizeLimitMiddleware
from api.metrics import HttpMetricsMiddleware
from api.openapi import install_model_schemas
from api.reload import ApiReloader
from api.routes import admin, health, jobs, models, predict, status
from api.routes import metrics as metrics_route
from api.services import Services, build_services
from config import Settings, get_settings
from config.logging import configure_logging
from worker import history, metrics


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings, "api")
        metrics.install(metrics.server_directory(settings.metrics_dir, "api"))
        services = build_services(settings)
        await services.hub.start(within_s=settings.redis_timeout_s)
        await services.direct.warm_up()
        app.state.services = services
        app.state.reloader = reloader = ApiReloader(app, services)
        await reloader.start_state()
        tasks = [
            asyncio.create_task(_flush_history(services)),
            asyncio.create_task(reloader.watch()),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await history.flush_async(services.redis, services.keys)
            await services.aclose()
            metrics.mark_process_dead()

    app = FastAPI(
        title="inferq",
        summary="Queued CPU-bound model inference",
        version="0.1.0",
        lifespan=lifespan,
        # inferq exports Prometheus metrics and per-job logs, not OpenTelemetry: FastAPI's
        # own instrumentation looked for OTel providers on every request (4% of queued and
        # direct throughput at 64 users, 36 us of one user's p50, in an A/B).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    install_error_handlers(app)
    install_dashboard(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(HttpMetricsMiddleware)
    routers = (
        jobs.router,
        predict.router,
        models.router,
        health.router,
        metrics_route.router,
        admin.router,
        status.router,
    )
    for router in routers:
        app.include_router(router)
    install_model_schemas(app, lambda: app.state.services.models, settings.default_model)
    return app


async def _flush_history(services: Services) -> None:
    """Add this process's tally of the recent past to Redis every second (core/history.py)."""
    while True:
        await asyncio.sleep(1)
        await history.flush_async(services.redis, services.keys)
