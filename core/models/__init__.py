"""The Model protocol, the built-in models and loading user models by import path."""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from core.errors import ModelLoadError, UnknownModelError

log = logging.getLogger(__name__)

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
    values = row.tolist() if hasattr(row, "tolist") else [float(p) for p in row]
    probabilities = {label: round(p, places) for label, p in zip(labels, values, strict=True)}
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


def spec_of(model: Model) -> str:
    """`name@version`: how jobs pin, queues name and logs cite one version of a model."""
    return f"{model.name}@{model.version}"


def split_spec(spec: str) -> tuple[str, str | None]:
    """`digits@3` -> ("digits", "3"); `digits` -> ("digits", None): its current version."""
    name, _, version = spec.partition("@")
    return name, version or None


def version_key(version: str) -> list[tuple[int, int | str]]:
    """Orders versions naturally: 2 < 10, 1.2 < 1.10; numbers before words."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-_]", version)]


class ModelRegistry:
    """The models one process serves: every version of each, and which version is current.

    `problems` names the versions that could not be served, and why.
    """

    def __init__(
        self,
        models: list[Model],
        current: dict[str, str] | None = None,
        problems: dict[str, str] | None = None,
        held_back: set[str] | None = None,
    ) -> None:
        self._versions: dict[str, dict[str, Model]] = {}
        for model in models:
            self._versions.setdefault(model.name, {})[model.version] = model
        self._flagged = dict(current or {})
        # Versions whose check has not passed never become current by being the highest.
        self.held_back = set(held_back or ())
        self._current = {
            name: self._flagged[name]
            if self._flagged.get(name) in versions
            else _highest(versions, {v for v in versions if f"{name}@{v}" not in self.held_back})
            for name, versions in self._versions.items()
        }
        self.problems = dict(problems or {})

    def holding_back(self, held_back: set[str]) -> ModelRegistry:
        """The same models, with the current versions chosen again around `held_back`."""
        return ModelRegistry(list(self), self._flagged, self.problems, held_back)

    @classmethod
    def from_paths(cls, paths: list[str], repository: str | None = None) -> ModelRegistry:
        """Built-in models, the user's by import path, then the repository's versions.

        A later source replaces every version of a name an earlier one served.
        """
        by_name: dict[str, list[Model]] = {}
        for model in (import_model(path) for path in (*BUILTIN_MODELS, *paths)):
            by_name[model.name] = [model]
        current: dict[str, str] = {}
        problems: dict[str, str] = {}
        if repository:
            from core.models.repository import scan_repository

            scan = scan_repository(Path(repository))
            served: dict[str, list[Model]] = {}
            for model in scan.models:
                served.setdefault(model.name, []).append(model)
            by_name.update(served)
            current, problems = scan.current, scan.problems
        models = [model for versions in by_name.values() for model in versions]
        return cls(models, current, problems)

    def get(self, spec: str) -> Model:
        """`name` (its current version) or `name@version`; UnknownModelError naming it."""
        name, version = split_spec(spec)
        versions = self._versions.get(name)
        if versions is None:
            known = ", ".join(sorted(self._versions))
            raise UnknownModelError(f"unknown model {name!r}; known: {known}")
        chosen = version or self._current[name]
        if chosen not in versions:
            known = ", ".join(sorted(versions, key=version_key))
            raise UnknownModelError(f"model {name!r} has no version {chosen!r}; known: {known}")
        return versions[chosen]

    def current_version(self, name: str) -> str:
        return self._current[name]

    def __iter__(self) -> Iterator[Model]:
        return iter([m for versions in self._versions.values() for m in versions.values()])

    def load_all(self) -> None:
        """Load every version (once per process, before serving); drop the ones that fail."""
        for model in list(self):
            try:
                model.load()
            except Exception as exc:
                self._drop(model, f"{type(exc).__name__}: {exc}")

    def _drop(self, model: Model, reason: str) -> None:
        spec = spec_of(model)
        log.error("model %s is not served: %s", spec, reason)
        self.problems[spec] = reason
        versions = self._versions[model.name]
        del versions[model.version]
        if not versions:
            del self._versions[model.name], self._current[model.name]
        elif self._current[model.name] == model.version:
            self._current[model.name] = _highest(versions)


def _highest(versions: dict[str, Model], eligible: set[str] | None = None) -> str:
    """The highest eligible version, or the highest of all when none is eligible."""
    return max(eligible or versions, key=version_key)
