"""Request and response bodies beyond the job record itself."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from core.jobs import JobRecord, Priority
from core.jsontypes import json_number

# The bounds go on the float, inside the JSON check, so the published schema has them.
Deadline = Annotated[float, Field(gt=0, le=86_400), BeforeValidator(json_number)]


MODEL = "model name (its current version) or name@version; the configured default if omitted"


class JobRequest(BaseModel):
    model: str | None = Field(None, min_length=1, description=MODEL)
    input: dict[str, Any] = Field(description="model-specific input; see GET /models")
    priority: Priority = Priority.NORMAL
    deadline_s: Deadline | None = Field(
        None,
        description="the whole budget from submit to result, in seconds: refused now if "
        "the estimated wait plus run exceeds it; expired, never started, once it could "
        "no longer finish in time",
    )


class PredictRequest(BaseModel):
    model: str | None = Field(None, min_length=1, description=MODEL)
    input: dict[str, Any] = Field(description="model-specific input; see GET /models")
    deadline_s: Deadline | None = Field(
        None,
        description="the whole budget in seconds: 503 deadline_unmeetable now if the "
        "estimated wait plus run exceeds it, 503 deadline_exceeded if it no longer fits "
        "when its turn comes",
    )


class Prediction(BaseModel):
    model: str
    model_version: str
    result: Any
    cached: bool


class JobPage(BaseModel):
    jobs: list[JobRecord]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: list[dict[str, str]] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ModelCheck(BaseModel):
    samples: int
    accuracy: float | None = Field(description="against the expected labels")
    distance: float | None = Field(
        description="total variation distance, predicted vs expected label distribution"
    )
    passed: bool
    reason: str
    at: float = Field(description="epoch seconds")


class ModelInfo(BaseModel):
    name: str
    version: str
    current: bool = Field(description="what `model: <name>` runs; pin others as name@version")
    batchable: bool
    deterministic: bool
    max_batch_size: int
    max_batch_wait_ms: float
    timeout_s: float | None = Field(description="null: the service's INFERQ_MODEL_TIMEOUT_S")
    input_schema: dict[str, Any]
    check: ModelCheck | None = Field(description="its latest check on its reference data")
    ready_for_promotion: bool = Field(
        description="no reference data, or its latest check passed; only such a version "
        "becomes current by being the highest"
    )


class Readiness(BaseModel):
    status: str
    consumers: int | None = None
    reason: str | None = None
    models_unavailable: dict[str, str] = Field(
        default_factory=dict, description="name@version -> why it is not served"
    )
