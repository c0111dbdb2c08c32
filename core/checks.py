"""Periodic checks of what a model answers: run its reference data, compare with what is expected.

Reference data is a list of `{"input": ..., "expected": ...}` items (`expected` optional),
and optionally one `{"distribution": {label: share}}` item; a version in the repository
ships it as `reference.jsonl`, a built-in model as its `reference()` method. A check
measures accuracy against the expected labels and the total variation distance between
the predicted and the expected label distributions (half the sum of absolute
differences: 0 when they match, 1 when they share nothing), and passes when both are
within the thresholds.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.cache import canonical_json
from core.models import Model, batch_defaults
from core.predict import predict_batch

MIN_ACCURACY, MAX_DISTANCE = 0.9, 0.1
_LABEL_KEYS = ("label", "class", "digit")


@dataclass(frozen=True)
class CheckResult:
    samples: int
    accuracy: float | None
    distance: float | None
    passed: bool
    reason: str
    at: float

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> CheckResult:
        return cls(**json.loads(raw))


def reference_of(model: Model) -> list[dict[str, Any]] | None:
    """The model's reference data, or None if it ships none."""
    method = getattr(model, "reference", None)
    if callable(method):
        items: list[dict[str, Any]] = method()
        return items
    path = getattr(model, "reference_path", None)
    if path is None or not Path(path).is_file():
        return None
    lines = Path(path).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def has_reference(model: Model) -> bool:
    path = getattr(model, "reference_path", None)
    return callable(getattr(model, "reference", None)) or bool(path and Path(path).is_file())


def run_check(model: Model, reference: list[dict[str, Any]]) -> CheckResult:
    """Predict every reference input (in the model's batches) and score the answers."""
    items = [item for item in reference if "input" in item]
    stated = next((item["distribution"] for item in reference if "distribution" in item), None)
    size, _ = batch_defaults(model)
    step = size if model.batchable else 1
    inputs = [canonical_json(item["input"]) for item in items]
    outcomes = []
    for start in range(0, len(inputs), step):
        outcomes += predict_batch(model, inputs[start : start + step])
    failed = sum(1 for o in outcomes if not o.is_ok)
    labels = [_label(json.loads(o.result_json)) if o.is_ok else None for o in outcomes]
    expected = [
        (label, str(item["expected"]))
        for label, item in zip(labels, items, strict=True)
        if "expected" in item
    ]
    accuracy = sum(a == b for a, b in expected) / len(expected) if expected else None
    wanted = stated or (_shares([b for _, b in expected]) if expected else None)
    distance = _tvd(_shares([str(x) for x in labels]), wanted) if wanted else None
    limits = getattr(model, "check_limits", (MIN_ACCURACY, MAX_DISTANCE))
    problems = []
    if failed:
        problems.append(f"{failed} of {len(items)} inputs failed")
    if accuracy is not None and accuracy < limits[0]:
        problems.append(f"accuracy {accuracy:.3f} < {limits[0]}")
    if distance is not None and distance > limits[1]:
        problems.append(f"label distribution distance {distance:.3f} > {limits[1]}")
    if not items:
        problems.append("no reference inputs")
    return CheckResult(
        samples=len(items),
        accuracy=None if accuracy is None else round(accuracy, 4),
        distance=None if distance is None else round(distance, 4),
        passed=not problems,
        reason="; ".join(problems) or "ok",
        at=round(time.time(), 3),
    )


def _label(output: Any) -> str:
    if isinstance(output, dict):
        for key in _LABEL_KEYS:
            if key in output:
                return str(output[key])
    return canonical_json(output)


def _shares(labels: list[str]) -> dict[str, float]:
    counts = Counter(labels)
    total = sum(counts.values()) or 1
    return {label: n / total for label, n in counts.items()}


def _tvd(p: dict[str, float], q: dict[str, float]) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))
