"""One model call over a batch of inputs, with failures isolated to the inputs that cause them."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from core.errors import TransientModelError
from core.jobs import JobError
from core.models import Model

log = logging.getLogger(__name__)
OUTPUT_MISMATCH = "model_output_mismatch"
MODEL_ERROR = "model_error"


@dataclass(frozen=True)
class ItemOutcome:
    """What one input of a batch came to: its output as JSON, or an error."""

    result_json: str = ""
    error: JobError | None = None
    retryable: bool = False  # the model raised TransientModelError

    @property
    def is_ok(self) -> bool:
        return self.error is None


def predict_batch(model: Model, input_jsons: list[str]) -> list[ItemOutcome]:
    """Run `model` once on every input; if that raises, once per input instead."""
    items: list[Any] = []
    outcomes: dict[int, ItemOutcome] = {}
    for index, raw in enumerate(input_jsons):
        try:
            items.append(model.input_schema.model_validate_json(raw))
        except ValidationError as exc:
            outcomes[index] = _failed("invalid_input", str(exc))
            items.append(None)
    live = [i for i in range(len(items)) if i not in outcomes]
    outcomes.update(_run(model, live, [items[i] for i in live]))
    return [outcomes[i] for i in range(len(items))]


def _run(model: Model, indices: list[int], items: list[Any]) -> dict[int, ItemOutcome]:
    if not items:
        return {}
    try:
        outputs = model.predict(items)
    except Exception as exc:
        if len(items) == 1:
            message = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, TransientModelError):
                log.warning("model %s failed transiently: %s", model.name, exc)
                return {indices[0]: _failed(MODEL_ERROR, message, retryable=True)}
            log.exception("model %s raised", model.name)
            return {indices[0]: _failed(MODEL_ERROR, message)}
        # One bad input must not fail its neighbours: retry each on its own.
        log.warning(
            "model %s raised on a batch of %d; running them one at a time: %r",
            model.name,
            len(items),
            exc,
        )
        results: dict[int, ItemOutcome] = {}
        for index, item in zip(indices, items, strict=True):
            results.update(_run(model, [index], [item]))
        return results
    if not isinstance(outputs, list) or len(outputs) != len(items):
        count = len(outputs) if isinstance(outputs, list) else type(outputs).__name__
        message = f"model {model.name} returned {count} outputs for {len(items)} inputs"
        log.error(message)
        return {i: _failed(OUTPUT_MISMATCH, message) for i in indices}
    return {i: _encoded(model, output) for i, output in zip(indices, outputs, strict=True)}


def _encoded(model: Model, output: Any) -> ItemOutcome:
    try:
        return ItemOutcome(result_json=json.dumps(output))
    except (TypeError, ValueError) as exc:
        return _failed(MODEL_ERROR, f"model {model.name} returned a non-JSON output: {exc}")


def _failed(code: str, message: str, retryable: bool = False) -> ItemOutcome:
    return ItemOutcome(error=JobError(code=code, message=message[:500]), retryable=retryable)
