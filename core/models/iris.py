from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.jsontypes import Number
from core.models import class_probabilities


class IrisInput(BaseModel):
    """Flower measurements in centimetres."""

    model_config = ConfigDict(extra="forbid")

    sepal_length: Number = Field(gt=0, le=100)
    sepal_width: Number = Field(gt=0, le=100)
    petal_length: Number = Field(gt=0, le=100)
    petal_width: Number = Field(gt=0, le=100)


class IrisModel:
    """scikit-learn logistic regression trained at load time on the bundled iris data."""

    name = "iris"
    version = "2"  # 2: trained on four fifths of the data, the rest held out as reference
    batchable = True
    deterministic = True
    input_schema = IrisInput
    max_batch_size = 64
    max_batch_wait_ms = 2.0

    def __init__(self) -> None:
        self._classifier: Any = None
        self._classes: list[str] = []

    def load(self) -> None:
        # Imported here, not at module level: the API imports this class for its
        # schema and must not pay for (or depend on) scikit-learn.
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        data = load_iris()
        # Every fifth flower is held out (the data is sorted by species, so each keeps
        # a fifth of its flowers): the reference data for the periodic check.
        held = [i % 5 == 4 for i in range(len(data.target))]
        train = [not h for h in held]
        self._classifier = LogisticRegression(max_iter=1000).fit(
            data.data[train], data.target[train]
        )
        self._classes = [str(name) for name in data.target_names]
        self._held_out = (data.data[held], data.target[held])

    def reference(self) -> list[dict[str, Any]]:
        """The held-out fifth of the iris data: measurements and their species."""
        features, species = self._held_out
        names = ("sepal_length", "sepal_width", "petal_length", "petal_width")
        return [
            {"input": dict(zip(names, map(float, row), strict=True)), "expected": self._classes[s]}
            for row, s in zip(features, species, strict=True)
        ]

    def predict(self, inputs: list[Any]) -> list[Any]:
        rows = [[i.sepal_length, i.sepal_width, i.petal_length, i.petal_width] for i in inputs]
        return [self._describe(probs) for probs in self._classifier.predict_proba(rows)]

    def _describe(self, probs: Any) -> dict[str, Any]:
        best, probabilities = class_probabilities(self._classes, probs, places=6)
        return {"class": best, "probabilities": probabilities}
