"""The submit path: validate, look up caches, create the job, optionally wait for it."""

from __future__ import annotations

import hashlib
import logging
import time

from pydantic import ValidationError

from api.jobstore import PreparedJob, Submitted
from api.metrics import CACHE_HITS, CACHE_MISSES
from api.schemas import JobRequest, PredictRequest
from api.services import Services
from core.cache import cache_key, canonical_json
from core.errors import (
    IntakePausedError,
    InvalidInputError,
    ModelVersionNotLoadedError,
    OverloadedError,
    QueueFullError,
)
from core.jobs import JobRecord, Priority, new_job_id
from core.models import Model
from worker.history import TALLY
from worker.metrics import JOBS_ENQUEUED, JOBS_FINISHED, JOBS_REJECTED

log = logging.getLogger(__name__)
LOADED_RETRY_S = 5


def prepare(
    services: Services,
    request: JobRequest | PredictRequest,
    owner: str = "",
    idempotency_key: str | None = None,
) -> PreparedJob:
    """Validate the input against its model's schema and compute its cache key."""
    model = services.models.get(request.model or services.settings.default_model)
    input_json = validated_input(model, request.input)
    key = cache_key(model.name, model.version, input_json) if model.deterministic else None
    deadline = request.deadline_s or services.settings.default_deadline_s
    if isinstance(request, PredictRequest):
        return PreparedJob(
            new_job_id(), model.name, model.version, Priority.NORMAL, input_json, key, deadline
        )
    idempotency = None
    if idempotency_key is not None:
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
        what = f"{model.name}\n{model.version}\n{request.priority}\n{deadline}\n{input_json}"
        fingerprint = hashlib.sha256(what.encode()).hexdigest()
        idempotency = (services.keys.idempotency(owner, digest), fingerprint)
    return PreparedJob(
        new_job_id(),
        model.name,
        model.version,
        request.priority,
        input_json,
        key,
        deadline,
        owner,
        idempotency,
    )


async def ensure_loaded(services: Services, spec: str) -> None:
    """Refuse (503) a job pinned to a version that no live consumer has loaded."""
    if spec not in await services.loaded.specs():
        raise ModelVersionNotLoadedError(
            f"no live consumer has loaded {spec}; it may be loading (retry) or was never "
            "deployed to the consumers",
            LOADED_RETRY_S,
        )


def validated_input(model: Model, raw: object) -> str:
    """The canonical JSON of `raw` once it passes the model's input schema."""
    try:
        validated = model.input_schema.model_validate(raw)
    except ValidationError as exc:
        raise invalid_input(exc, prefix=("input",)) from None
    return canonical_json(validated.model_dump(mode="json"))


def invalid_input(exc: ValidationError, prefix: tuple[str, ...]) -> InvalidInputError:
    """A 422 naming each bad field, without echoing the (possibly huge) input back."""
    fields = [
        {"field": ".".join(str(part) for part in (*prefix, *err["loc"])), "message": err["msg"]}
        for err in exc.errors()
    ]
    return InvalidInputError("; ".join(f"{f['field']}: {f['message']}" for f in fields), fields)


def local_hit(services: Services, key: str | None) -> str | None:
    """The result this process remembers for `key`, if any (counted as a hit or miss)."""
    if not key or not services.settings.local_cache_size:
        return None
    hit = services.results.get(key)
    (CACHE_MISSES if hit is None else CACHE_HITS).labels("local").inc()
    return hit


async def create_job(services: Services, job: PreparedJob) -> JobRecord:
    """Answer from the local LRU, else submit: shared tier, attach, or enqueue."""
    # With an Idempotency-Key every submit goes through Redis, where the key is checked.
    hit = None if job.idempotency else local_hit(services, job.cache_key)
    if hit is not None:
        log.info("job %s cache hit tier=local model=%s", job.id, job.model)
        return await services.store.record_cached(job, hit)
    try:
        submitted = await services.store.submit(job)
    except OverloadedError as exc:
        reason = exc.code if isinstance(exc, QueueFullError | IntakePausedError) else "deadline"
        JOBS_REJECTED.labels(job.model, job.priority.value, reason).inc()
        log.info("job %s rejected reason=%s: %s", job.id, reason, exc.message)
        raise
    _account(services, job, submitted)
    return submitted.job


def _account(services: Services, job: PreparedJob, submitted: Submitted) -> None:
    if submitted.route == "existing":
        log.info("job %s returned again for its Idempotency-Key", submitted.job.id)
        return
    if job.cache_key and services.settings.result_cache_ttl_s:
        (CACHE_HITS if submitted.route == "cached" else CACHE_MISSES).labels("shared").inc()
    if submitted.route == "cached":
        log.info("job %s cache hit tier=shared model=%s", job.id, job.model)
        remember(services, job.cache_key, submitted.result_json)
        return
    if submitted.route == "attached":
        CACHE_HITS.labels("coalesced").inc()
    JOBS_ENQUEUED.labels(job.model, job.priority.value).inc()
    log.info("job %s %s model=%s priority=%s", job.id, submitted.route, job.model, job.priority)


async def read_job(
    services: Services, job_id: str, owner: str | None
) -> tuple[JobRecord, dict[str, str]]:
    """Read a job, expiring it first if its deadline passed while it was queued.

    A finished deterministic result also warms this process's LRU.
    """
    job, raw = await services.store.get(job_id, owner)
    if job.status == "queued" and _is_past_deadline(raw):
        if await services.store.expire_if_due(job_id):
            JOBS_FINISHED.labels(job.model, job.priority.value, "expired").inc()
            TALLY.add(time.time(), "expired:queued")
            log.info("job %s expired while queued", job_id)
        job, raw = await services.store.get(job_id, owner)
    if job.status == "succeeded" and raw.get("cache_key"):
        remember(services, raw["cache_key"], raw.get("result"))
    return job, raw


def _is_past_deadline(raw: dict[str, str]) -> bool:
    return bool(raw.get("deadline_at")) and float(raw["deadline_at"]) <= time.time()


def deadline_at(raw: dict[str, str]) -> float | None:
    """When a queued job expires (epoch seconds), if it has a deadline."""
    return float(raw["deadline_at"]) if raw.get("deadline_at") else None


def remember(services: Services, key: str | None, result_json: str | None) -> None:
    if key and result_json is not None and services.settings.local_cache_size:
        services.results[key] = result_json
