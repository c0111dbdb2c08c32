"""Model execution inside the API's own process pool (the direct /predict path).

These functions run in the pool's child processes: models load once per child
in `load_models`, then `predict_json` serves one input at a time.
"""

from __future__ import annotations

import json

from core.models import ModelRegistry
from worker.models import build_models

_models: ModelRegistry | None = None


def load_models(paths: list[str], burn_iterations_per_ms: int) -> None:
    global _models
    _models = build_models(paths, burn_iterations_per_ms)
    _models.load_all()


def predict_json(model_name: str, input_json: str) -> str:
    """Validate, predict and encode one input; exceptions travel back to the caller."""
    assert _models is not None, "load_models is the pool initializer"
    model = _models.get(model_name)
    [output] = model.predict([model.input_schema.model_validate_json(input_json)])
    return json.dumps(output)


def warm_up() -> int:
    """A no-op that forces a child to exist and load its models."""
    return 1
