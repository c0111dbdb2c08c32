from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from api.schemas import Readiness
from api.services import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers; no dependency is checked."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: Redis answers, completions are subscribed, and a consumer beat recently."""
    settings = services.settings
    try:
        consumers = await services.store.live_consumers()
    except (RedisError, OSError) as exc:
        return _not_ready(f"redis unreachable: {type(exc).__name__}")
    problems = services.models.problems
    if not services.hub.is_subscribed:
        return _not_ready("completion subscription is down", problems)
    if consumers == 0:
        reason = f"no consumer heartbeat in the last {settings.heartbeat_ttl_s:g}s"
        return _not_ready(reason, problems)
    ready = Readiness(status="ready", consumers=consumers, models_unavailable=problems)
    return JSONResponse(ready.model_dump())


def _not_ready(reason: str, problems: dict[str, str] | None = None) -> JSONResponse:
    body = Readiness(status="not_ready", reason=reason, models_unavailable=problems or {})
    return JSONResponse(body.model_dump(), status_code=503)
