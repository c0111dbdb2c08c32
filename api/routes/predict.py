from __future__ import annotations

import json
from functools import partial
from typing import Any

from fastapi import APIRouter, Request, Response

from api import submission
from api.auth import Tenant
from api.disconnect import client_left
from api.schemas import ErrorBody, Prediction, PredictRequest
from api.services import ServicesDep

router = APIRouter(tags=["predict"])
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the body could not be read as JSON"},
    401: {"model": ErrorBody},
    404: {"model": ErrorBody},
    413: {"model": ErrorBody},
    429: {"model": ErrorBody},
    422: {"model": ErrorBody},
    500: {"model": ErrorBody, "description": "the model raised"},
    503: {
        "model": ErrorBody,
        "description": "shed (too many pending), or the deadline cannot be met; see Retry-After",
    },
    504: {"model": ErrorBody, "description": "the model call ran past its time limit"},
}


@router.post("/predict", response_model=Prediction, responses=ERRORS)
async def predict(
    body: PredictRequest, request: Request, services: ServicesDep, tenant: Tenant
) -> Response:
    """Run the model now in this API process's model pool (no queue); 503 when shedding."""
    job = submission.prepare(services, body)
    result_json = submission.local_hit(services, job.cache_key)
    cached = result_json is not None
    if result_json is None:
        result_json = await services.direct.predict(
            f"{job.model}@{job.model_version}",
            job.input_json,
            job.deadline_s,
            partial(client_left, request),
        )
        submission.remember(services, job.cache_key, result_json)
    # The result is already JSON: splice it in rather than decode and encode it again.
    content = (
        f'{{"model":{json.dumps(job.model)},"model_version":{json.dumps(job.model_version)},'
        f'"result":{result_json},"cached":{"true" if cached else "false"}}}'
    )
    return Response(content, media_type="application/json")
