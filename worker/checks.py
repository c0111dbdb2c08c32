"""Consumers check models on their reference data: every version once after it is loaded,
and every version again on huey's periodic schedule (INFERQ_MODEL_CHECK_MINUTES).

Each result goes to Redis (`RedisKeys.checks`), where the API reads it for /models, for
metrics and to decide which version may become current; a claim key makes a deployment
of many consumers check a version once per round.
"""

from __future__ import annotations

import logging
import threading

from redis import Redis
from redis.exceptions import RedisError

from core.checks import has_reference, reference_of, run_check
from core.keys import RedisKeys
from core.models import Model, ModelRegistry, spec_of

log = logging.getLogger(__name__)


def check_models(
    redis: Redis, keys: RedisKeys, models: ModelRegistry, claim_s: int, only_new: bool
) -> None:
    """Check each version with reference data (`only_new`: those never checked yet)."""
    for model in list(models):
        if not has_reference(model):
            continue
        spec = spec_of(model)
        try:
            if only_new and redis.hexists(keys.checks, spec):
                continue
            if not redis.set(keys.check_claim(spec), "1", nx=True, ex=claim_s):
                continue  # another consumer is checking it this round
            _check_one(redis, keys, model, spec)
        except RedisError as exc:
            log.warning("model check of %s not recorded: %s", spec, exc)


def check_new_in_background(redis: Redis, keys: RedisKeys, models: ModelRegistry) -> None:
    """Check versions never checked, off the worker thread (after a start or a reload)."""
    threading.Thread(
        target=check_models, args=(redis, keys, models, 60, True), name="model-check", daemon=True
    ).start()


def _check_one(redis: Redis, keys: RedisKeys, model: Model, spec: str) -> None:
    try:
        reference = reference_of(model) or []
        result = run_check(model, reference)
    except Exception as exc:  # a broken reference file is the check's failure, not ours
        log.error("model check of %s could not run: %r", spec, exc)
        return
    pipe = redis.pipeline(transaction=False)
    pipe.hset(keys.checks, spec, result.to_json())
    pipe.incr(keys.check_results)
    pipe.execute()
    level = logging.INFO if result.passed else logging.WARNING
    log.log(
        level,
        "model check of %s %s: accuracy=%s distance=%s samples=%d (%s)",
        spec,
        "passed" if result.passed else "failed",
        result.accuracy,
        result.distance,
        result.samples,
        result.reason,
    )
