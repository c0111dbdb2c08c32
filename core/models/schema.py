"""Input schemas for models described by a manifest: an inline JSON Schema, or a pydantic class."""

from __future__ import annotations

import copy
import importlib
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, RootModel, model_validator


class ManifestError(ValueError):
    """A manifest or artifact that cannot be served; the message names the file."""


def json_schema_input(title: str, schema: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model that validates with `schema` (JSON Schema 2020-12) and publishes it."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ManifestError(f"input schema is not valid JSON Schema: {exc.message}") from None
    if schema.get("type") != "object":
        raise ManifestError('input schema must have "type": "object"')
    validator = Draft202012Validator(schema)
    published = copy.deepcopy(schema)

    class ManifestInput(RootModel[dict[str, Any]]):
        @model_validator(mode="after")
        def _conforms(self) -> ManifestInput:
            errors = sorted(validator.iter_errors(self.root), key=lambda e: list(e.path))
            if errors:
                raise ValueError(
                    "; ".join(
                        f"{'.'.join(str(p) for p in e.absolute_path) or '(input)'}: {e.message}"
                        for e in errors[:5]
                    )
                )
            return self

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return {"title": title, **copy.deepcopy(published)}

    ManifestInput.__name__ = ManifestInput.__qualname__ = f"{title}Input"
    return ManifestInput


def pydantic_input(path: str) -> type[BaseModel]:
    """The pydantic class at `package.module:ClassName`."""
    module, _, name = path.partition(":")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ManifestError(f"cannot import input class {path!r}: {exc}") from None
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise ManifestError(f"{path!r} is not a pydantic model")
    return found


def as_mapping(item: BaseModel) -> dict[str, Any]:
    """A validated input as plain data, whichever kind of schema validated it."""
    if isinstance(item, RootModel):
        data: dict[str, Any] = item.root
        return data
    return item.model_dump(mode="python")
