"""A model repository built at test time: real scikit-learn, skops and ONNX artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
LABELS = ["setosa", "versicolor", "virginica"]
SCHEMA = {
    "type": "object",
    "properties": {name: {"type": "number", "minimum": 0, "maximum": 20} for name in FEATURES},
    "required": FEATURES,
    "additionalProperties": False,
}
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VIRGINICA = {"sepal_length": 7.7, "sepal_width": 3.0, "petal_length": 6.1, "petal_width": 2.3}


class Unvetted:
    """A type skops has never heard of: an artifact holding one must be refused."""


def _toml_value(value: Any) -> str:
    return json.dumps(value)  # JSON strings, numbers, booleans and arrays are TOML too


def _inline_table(mapping: dict[str, Any]) -> str:
    items = []
    for key, value in mapping.items():
        rendered = _inline_table(value) if isinstance(value, dict) else _toml_value(value)
        items.append(f"{json.dumps(key)} = {rendered}")
    return "{ " + ", ".join(items) + " }"


def write_manifest(directory: Path, model: dict[str, Any], extra: str = "") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["[model]", *(f"{k} = {_toml_value(v)}" for k, v in model.items())]
    (directory / "model.toml").write_text("\n".join(lines) + "\n" + extra)


def flowers_input() -> str:
    return (
        f"[input]\nschema = {_inline_table(SCHEMA)}\nfeatures = {_toml_value(FEATURES)}\n"
        f"[output]\nlabels = {_toml_value(LABELS)}\n"
    )


def build_repository(root: Path) -> Path:
    """flowers@1 (skops), flowers@2 (ONNX, highest: current), counter@1 (python), and the
    broken: flowers@3 (no artifact), broken@1 (bad TOML), unvetted@1 (an untrusted type)."""
    import numpy as np
    import skops.io as sio
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, target = load_iris(return_X_y=True)
    estimator = LogisticRegression(max_iter=1000).fit(features, target)
    v1 = root / "flowers" / "1"
    write_manifest(v1, {"loader": "sklearn", "artifact": "model.skops"}, flowers_input())
    sio.dump(estimator, v1 / "model.skops")

    v2 = root / "flowers" / "2"
    onnx_output = '[output]\nlabel = "label"\nprobabilities = "probabilities"\n'
    onnx_output += f"labels = {_toml_value(LABELS)}\n"
    write_manifest(
        v2,
        {"loader": "onnx", "artifact": "model.onnx", "max_batch_size": 32},
        f"[input]\nschema = {_inline_table(SCHEMA)}\nfeatures = {_toml_value(FEATURES)}\n"
        + onnx_output,
    )
    graph = to_onnx(
        estimator, features[:1].astype(np.float32), options={id(estimator): {"zipmap": False}}
    )
    (v2 / "model.onnx").write_bytes(graph.SerializeToString())

    write_manifest(
        root / "flowers" / "3", {"loader": "onnx", "artifact": "gone.onnx"}, flowers_input()
    )
    (root / "broken" / "1").mkdir(parents=True)
    (root / "broken" / "1" / "model.toml").write_text("[model\nloader = ")
    unvetted = root / "unvetted" / "1"
    write_manifest(unvetted, {"loader": "sklearn", "artifact": "model.skops"}, flowers_input())
    sio.dump({"estimator": estimator, "extra": Unvetted()}, unvetted / "model.skops")
    write_manifest(
        root / "counter" / "1", {"loader": "python", "class": "tests.support.models:CountingModel"}
    )
    return root
