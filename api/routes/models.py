from __future__ import annotations

from fastapi import APIRouter

from api.auth import Tenant
from api.schemas import ModelInfo
from api.services import ServicesDep

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=list[ModelInfo])
async def list_models(services: ServicesDep, tenant: Tenant) -> list[ModelInfo]:
    """Every model served: name, version, batchable, deterministic and input schema."""
    return [
        ModelInfo(
            name=model.name,
            version=model.version,
            batchable=model.batchable,
            deterministic=model.deterministic,
            input_schema=model.input_schema.model_json_schema(),
        )
        for model in services.models
    ]
