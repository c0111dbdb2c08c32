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
    if not services.hub.is_subscribed:
        return _not_ready("completion subscription is down")
    if consumers == 0:
        return _not_ready(f"no consumer heartbeat in the last {settings.heartbeat_ttl_s:g}s")
    return JSONResponse(Readiness(status="ready", consumers=consumers).model_dump())


def _not_ready(reason: str) -> JSONResponse:
    return JSONResponse(Readiness(status="not_ready", reason=reason).model_dump(), status_code=503)
