"""A random forest on scikit-learn's bundled handwritten digits: the batching model.

One `predict_proba` call costs about the same for 1 image as for 128, so this is the
model on which batching pays most.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from core.models import class_probabilities


def _whole_numbers(value: object) -> object:
    # JSON Schema's "integer": 3 and 3.0 are integers; true, "3" and 3.5 are not. One
    # pass over the list here, then pydantic's own (compiled) checks of each pixel.
    if not isinstance(value, list):
        return value  # pydantic reports the type error
    pixels = []
    for index, item in enumerate(value):
        if type(item) is float and item.is_integer():
            item = int(item)
        if type(item) is not int:
            raise ValueError(f"pixel {index} must be an integer, not {item!r:.20}")
        pixels.append(item)
    return pixels


Pixels = Annotated[
    list[Annotated[int, Field(ge=0, le=16)]],
    BeforeValidator(_whole_numbers),
    Field(min_length=64, max_length=64),
]
TRAIN_SHARE = 0.8  # the rest is held out (reference data for model checks)
SEED = 0


class DigitsInput(BaseModel):
    """An 8x8 grey-scale image, row-major, each pixel 0..16."""

    model_config = ConfigDict(extra="forbid")

    pixels: Pixels


class DigitsModel:
    """scikit-learn RandomForestClassifier (100 trees) trained at load time."""

    name = "digits"
    version = "1"
    batchable = True
    deterministic = True
    input_schema = DigitsInput
    max_batch_size = 128
    max_batch_wait_ms = 5.0

    def __init__(self) -> None:
        self._forest: Any = None

    def load(self) -> None:
        from sklearn.datasets import load_digits
        from sklearn.ensemble import RandomForestClassifier

        data = load_digits()
        train = int(len(data.target) * TRAIN_SHARE)
        forest = RandomForestClassifier(n_estimators=100, random_state=SEED)
        self._forest = forest.fit(data.data[:train], data.target[:train])
        self._held_out = (data.data[train:], data.target[train:])

    def reference(self) -> list[dict[str, Any]]:
        """The held-out fifth of the digits data: inputs and their true digits."""
        images, digits = self._held_out
        return [
            {"input": {"pixels": [int(p) for p in image]}, "expected": int(digit)}
            for image, digit in zip(images, digits, strict=True)
        ]

    def predict(self, inputs: list[Any]) -> list[Any]:
        probabilities = self._forest.predict_proba([item.pixels for item in inputs])
        return [self._describe(row) for row in probabilities]

    def _describe(self, row: Any) -> dict[str, Any]:
        labels = [str(int(c)) for c in self._forest.classes_]
        best, probabilities = class_probabilities(labels, row, places=4)
        return {"digit": int(best), "probabilities": probabilities}
