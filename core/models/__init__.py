"""The Model protocol, the built-in models and loading user models by import path."""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from core.errors import ModelLoadError, UnknownModelError

BUILTIN_MODELS = (
    "core.models.iris:IrisModel",
    "core.models.burn:BurnModel",
    "core.models.echo:EchoModel",
    "core.models.digits:DigitsModel",
)
DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_MAX_BATCH_WAIT_MS = 0.0


@runtime_checkable
class Model(Protocol):
    """A servable model.

    Class attributes describe it to clients and to the serving machinery:
    `name` and `version` identify it (the version is part of every cache key,
    so bump it whenever outputs change); `batchable` says `predict` gains from
    receiving several inputs at once; `deterministic` says equal inputs always
    give equal outputs, which is what allows caching and coalescing;
    `input_schema` is the pydantic model every input is validated against
    before it reaches `predict`.

    Optional attributes tune batching: `max_batch_size` (default 64) caps how
    many inputs one `predict` call receives and `max_batch_wait_ms` (default 0)
    is the longest a partial batch may be held for more inputs; the settings
    INFERQ_BATCH_MAX_SIZE and INFERQ_BATCH_MAX_WAIT_MS override both. A model
    that is not batchable always receives one input per call. `timeout_s`
    (default: the setting INFERQ_MODEL_TIMEOUT_S) is the longest one `predict`
    call may run: past it, the process running it is killed and replaced, and
    the job fails with `timeout`; `retry_on_timeout = True` retries it instead
    (up to INFERQ_RETRIES times) on the queued path.

    A failure worth retrying (a flaky downstream service) is signalled by
    raising `core.errors.TransientModelError`; any other exception fails the
    job at once.

    Lifecycle: construct cheaply (importing the class must not import heavy ML
    libraries), call `load()` once per process before the first prediction,
    then call `predict` any number of times. `predict` takes a list of
    validated inputs and must return exactly one JSON-serializable output per
    input, in the same order. If it raises on a batch, inferq runs that batch's
    inputs one at a time, so only the inputs that fail end `failed`; if it
    returns the wrong number of outputs, every job of the batch fails with
    `model_output_mismatch`.
    """

    name: str
    version: str
    batchable: bool
    deterministic: bool
    input_schema: type[BaseModel]

    def load(self) -> None: ...

    def predict(self, inputs: list[Any]) -> list[Any]: ...


def class_probabilities(labels: list[str], row: Any, places: int) -> tuple[str, dict[str, float]]:
    """The most probable label of one `predict_proba` row, and every label's probability."""
    probabilities = {label: round(float(p), places) for label, p in zip(labels, row, strict=True)}
    return labels[int(row.argmax())], probabilities


def batch_defaults(model: Model) -> tuple[int, float]:
    """The model's own (max batch size, max batch wait in ms)."""
    size = int(getattr(model, "max_batch_size", DEFAULT_MAX_BATCH_SIZE))
    wait_ms = float(getattr(model, "max_batch_wait_ms", DEFAULT_MAX_BATCH_WAIT_MS))
    return size, wait_ms


def time_limit_s(model: Model, default_s: float) -> float:
    """The longest one `predict` call of this model may run."""
    return float(getattr(model, "timeout_s", None) or default_s)


def import_model(path: str) -> Model:
    """Instantiate the model class at `package.module:ClassName`."""
    module_name, _, class_name = path.partition(":")
    try:
        model = getattr(importlib.import_module(module_name), class_name)()
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"cannot import model {path!r}: {exc}") from exc
    if not isinstance(model, Model):
        raise ModelLoadError(f"{path!r} does not implement the Model protocol")
    return model


class ModelRegistry:
    """The models one process serves, by name."""

    def __init__(self, models: list[Model]) -> None:
        self._models = {model.name: model for model in models}

    @classmethod
    def from_paths(cls, paths: list[str]) -> ModelRegistry:
        """Built-in models plus the user's, later names replacing earlier ones."""
        return cls([import_model(path) for path in (*BUILTIN_MODELS, *paths)])

    def get(self, name: str) -> Model:
        """The model called `name`, or UnknownModelError naming it."""
        try:
            return self._models[name]
        except KeyError:
            known = ", ".join(sorted(self._models))
            raise UnknownModelError(f"unknown model {name!r}; known: {known}") from None

    def __iter__(self) -> Any:
        return iter(self._models.values())

    def load_all(self) -> None:
        """Load every model (once per process, before serving)."""
        for model in self._models.values():
            model.load()
