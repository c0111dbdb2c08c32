from __future__ import annotations

import logging
from dataclasses import asdict

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.auth import Tenant
from api.reload import ApiReloader, read_checks
from api.routes.admin import ERRORS, Operator
from api.schemas import ModelCheck, ModelInfo
from api.services import ServicesDep
from core.checks import has_reference
from core.models import batch_defaults, spec_of, version_key

router = APIRouter(prefix="/models", tags=["models"])
log = logging.getLogger(__name__)


@router.get("", response_model=list[ModelInfo])
async def list_models(services: ServicesDep, tenant: Tenant) -> list[ModelInfo]:
    """Every version of every model served, its properties, input schema and which is current."""
    models = services.models
    checks = await read_checks(services.redis, services.keys)
    infos = []
    for model in sorted(models, key=lambda m: (m.name, version_key(m.version))):
        size, wait_ms = batch_defaults(model)
        spec = spec_of(model)
        infos.append(
            ModelInfo(
                name=model.name,
                version=model.version,
                current=models.current_version(model.name) == model.version,
                batchable=model.batchable,
                deterministic=model.deterministic,
                max_batch_size=size,
                max_batch_wait_ms=wait_ms,
                timeout_s=getattr(model, "timeout_s", None),
                input_schema=model.input_schema.model_json_schema(),
                check=ModelCheck(**asdict(result)) if (result := checks.get(spec)) else None,
                ready_for_promotion=not has_reference(model) or bool(result and result.passed),
            )
        )
    return infos


class Reloaded(BaseModel):
    seconds: float = Field(description="how long this API process took to load and switch")
    models: list[str] = Field(description="name@version of every model it serves now")
    current: dict[str, str] = Field(description="each model's current version")


@router.post("/reload", response_model=Reloaded, responses=ERRORS)
async def reload_models(request: Request, services: ServicesDep, operator: Operator) -> Reloaded:
    """Reload INFERQ_MODEL_DIR now, here and in every API and consumer process (operators)."""
    reloader: ApiReloader = request.app.state.reloader
    await reloader.request_everywhere()
    took = await reloader.reload()
    models = services.models
    log.warning("operator %s reloaded the models", operator.tenant or "open")
    return Reloaded(
        seconds=round(took, 3),
        models=sorted(spec_of(m) for m in models),
        current={m.name: models.current_version(m.name) for m in models},
    )
