"""A random forest on scikit-learn's bundled handwritten digits: the batching model.

One `predict_proba` call costs about the same for 1 image as for 128, so this is the
model on which batching pays most.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from core.models import class_probabilities


def _whole_numbers(value: object) -> object:
    # JSON Schema's "integer": 3 and 3.0 are integers; true, "3" and 3.5 are not. One
    # pass over the list here, then pydantic's own (compiled) checks of each pixel.
    if not isinstance(value, list):
        return value  # pydantic reports the type error
    if all(type(item) is int for item in value):  # the usual case: nothing to convert
        return value
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
CACHE_DIR = Path.home() / ".cache" / "inferq"


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
        self._labels: list[str] = []

    def load(self) -> None:
        from sklearn.datasets import load_digits

        data = load_digits()
        train = int(len(data.target) * TRAIN_SHARE)
        self._forest = _trained_forest(data.data[:train], data.target[:train])
        self._labels = [str(int(c)) for c in self._forest.classes_]
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
        best, probabilities = class_probabilities(self._labels, row, places=4)
        return {"digit": int(best), "probabilities": probabilities}


def _trained_forest(features: Any, target: Any) -> Any:
    """The forest, trained once per machine and scikit-learn version, then read back.

    Training takes most of a second of CPU in every consumer and /predict process (and
    again whenever a worker is replaced); reading the saved forest takes a fifth of that.
    It is saved with skops, never pickle, and trained afresh if the file is unusable.
    """
    import sklearn
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    cache = CACHE_DIR / f"digits-forest-{sklearn.__version__}-{SEED}-{TRAIN_SHARE}.skops"
    try:
        forest = sio.load(cache, trusted=["sklearn.tree._tree.Tree"])
        if isinstance(forest, RandomForestClassifier):
            return forest
    except Exception:  # missing, partial or from elsewhere: train instead
        pass
    forest = RandomForestClassifier(n_estimators=100, random_state=SEED).fit(features, target)
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.tmp")
        sio.dump(forest, partial)
        os.replace(partial, cache)  # atomic: a reader never sees half a file
    return forest
