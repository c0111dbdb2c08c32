from __future__ import annotations

from fastapi import APIRouter

from api.auth import Tenant
from api.schemas import ModelInfo
from api.services import ServicesDep
from core.models import batch_defaults, version_key

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=list[ModelInfo])
async def list_models(services: ServicesDep, tenant: Tenant) -> list[ModelInfo]:
    """Every version of every model served, its properties, input schema and which is current."""
    models = services.models
    infos = []
    for model in sorted(models, key=lambda m: (m.name, version_key(m.version))):
        size, wait_ms = batch_defaults(model)
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
            )
        )
    return infos
