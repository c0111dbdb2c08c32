"""Models served from artifacts: scikit-learn estimators saved with skops, and ONNX graphs.

Both map a JSON input to one row of numbers (the manifest's `features`, in order, or
one array field), run a whole batch as one matrix, and answer a classifier's label and
probabilities, or a regressor's value. Heavy libraries are imported in `load`, never
at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core.models.manifest import Manifest
from core.models.schema import ManifestError, as_mapping

REFERENCE = "reference.jsonl"


class ArtifactModel:
    """What the two loaders share: identity, properties and the input-to-row mapping."""

    def __init__(
        self, name: str, version: str, manifest: Manifest, directory: Path, schema: type[BaseModel]
    ) -> None:
        spec = manifest.model
        self.name, self.version, self.input_schema = name, version, schema
        self.batchable, self.deterministic = spec.batchable, spec.deterministic
        self.max_batch_size, self.max_batch_wait_ms = spec.max_batch_size, spec.max_batch_wait_ms
        self.timeout_s = spec.timeout_s
        self.manifest, self.directory = manifest, directory
        self.artifact = directory / (spec.artifact or "")
        self.reference_path = directory / REFERENCE
        self.check_limits = (manifest.check.min_accuracy, manifest.check.max_distance)

    def rows(self, inputs: list[Any]) -> list[list[float]]:
        spec = self.manifest.input
        rows = []
        for item in inputs:
            data = as_mapping(item)
            row = data[spec.field] if spec.field else [data[f] for f in spec.features or []]
            rows.append([float(v) for v in row])
        return rows

    def answer(self, label: Any, probabilities: Any | None) -> dict[str, Any]:
        """One output: the label (named, if the manifest names them) and each probability."""
        names = self.manifest.output.labels
        if probabilities is None:
            return {"label": _named(label, names)}
        row = [round(float(p), 6) for p in probabilities]
        labels = names or [str(i) for i in range(len(row))]
        return {"label": _named(label, names), "probabilities": dict(zip(labels, row, strict=True))}


class SklearnModel(ArtifactModel):
    """A scikit-learn estimator saved with skops (`skops.io.dump`)."""

    def check(self) -> None:
        """Refuse an artifact holding types neither skops nor the manifest trusts (cheap)."""
        self._trusted()

    def load(self) -> None:
        import skops.io as sio

        trusted = self._trusted()
        try:
            self.estimator = sio.load(self.artifact, trusted=trusted or None)
        except Exception as exc:
            raise ManifestError(f"{self.artifact}: cannot load: {exc}") from None
        self._classifier = hasattr(self.estimator, "predict_proba")

    def _trusted(self) -> list[str]:
        import skops.io as sio

        try:
            untrusted: list[str] = sio.get_untrusted_types(file=self.artifact)
        except Exception as exc:
            raise ManifestError(f"{self.artifact}: not a skops file: {exc}") from None
        unexpected = sorted(set(untrusted) - set(self.manifest.model.trusted))
        if unexpected:
            raise ManifestError(
                f"{self.artifact}: refuses to load types it does not trust: "
                f"{', '.join(unexpected)} (list them under [model] trusted if you do)"
            )
        return untrusted

    def predict(self, inputs: list[Any]) -> list[Any]:
        import numpy as np

        matrix = np.asarray(self.rows(inputs), dtype=np.float64)
        if not self._classifier:
            return [{"value": float(v)} for v in self.estimator.predict(matrix)]
        classes = self.estimator.classes_
        return [
            self.answer(_plain(classes[int(row.argmax())]), row)
            for row in self.estimator.predict_proba(matrix)
        ]


class OnnxModel(ArtifactModel):
    """An ONNX graph run with onnxruntime on the CPU, batched along its first dimension."""

    def check(self) -> None:
        """Open the graph and check the manifest's outputs exist, then let it go."""
        self.load()
        del self.session

    def load(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One process per core already: a model's own thread pool would only contend.
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(self.artifact), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ManifestError(f"{self.artifact}: cannot load: {exc}") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ManifestError(f"{self.artifact}: needs exactly one input tensor")
        self._input, self._float = inputs[0].name, inputs[0].type != "tensor(double)"
        out = self.manifest.output
        names = {o.name for o in self.session.get_outputs()}
        wanted = [n for n in (out.label, out.probabilities, out.value) if n]
        missing = [n for n in wanted if n not in names]
        if not wanted or missing:
            raise ManifestError(
                f"{self.artifact}: [output] must name its outputs among {sorted(names)}"
                + (f"; no output {missing}" if missing else "")
            )

    def predict(self, inputs: list[Any]) -> list[Any]:
        import numpy as np

        dtype = np.float32 if self._float else np.float64
        feed = {self._input: np.asarray(self.rows(inputs), dtype=dtype)}
        out = self.manifest.output
        if out.value:
            (values,) = self.session.run([out.value], feed)
            return [{"value": float(np.ravel(v)[0])} for v in values]
        names = [n for n in (out.label, out.probabilities) if n]
        results = dict(zip(names, self.session.run(names, feed), strict=True))
        probabilities: Any = results.get(out.probabilities or "")
        labels: Any = results.get(out.label or "")
        if labels is None:  # the class is the most probable one
            labels = np.argmax(probabilities, axis=1)
        return [
            self.answer(_plain(labels[i]), None if probabilities is None else probabilities[i])
            for i in range(len(inputs))
        ]


def _named(label: Any, names: list[str] | None) -> Any:
    if names and isinstance(label, int) and 0 <= label < len(names):
        return names[label]
    return label


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value JSON can carry."""
    return value.item() if hasattr(value, "item") else value
