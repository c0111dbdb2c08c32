"""Model execution inside the API's own process pool (the direct /predict path).

These functions run in the pool's child processes: models load once per child
in `load_models`, then `predict_batch` serves a batch of inputs per call.
"""

from __future__ import annotations

from core import predict
from core.models import ModelRegistry
from worker.models import build_models

_models: ModelRegistry | None = None


def load_models(paths: list[str], burn_iterations_per_ms: int) -> None:
    global _models
    _models = build_models(paths, burn_iterations_per_ms)
    _models.load_all()


def predict_batch(
    model_name: str, input_jsons: list[str]
) -> list[tuple[str, dict[str, str] | None]]:
    """One model call for the batch: per input, its result JSON or an error (code, message)."""
    assert _models is not None, "load_models is the pool initializer"
    outcomes = predict.predict_batch(_models.get(model_name), input_jsons)
    return [(o.result_json, o.error.model_dump() if o.error else None) for o in outcomes]


def warm_up() -> int:
    """A no-op that forces a child to exist and load its models."""
    return 1
