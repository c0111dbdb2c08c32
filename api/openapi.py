"""OpenAPI that tells the truth about inputs: one request variant per served model.

The request classes accept any object as `input` (each model validates its own),
so the generated document would call every object valid. This replaces the
request bodies of POST /jobs and POST /predict with a `oneOf` over the models.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from core.models import ModelRegistry, spec_of

REF = "#/components/schemas/{model}"


def install_model_schemas(
    app: FastAPI, models: Callable[[], ModelRegistry], default_model: str
) -> None:
    """Document the models `models()` returns when asked (a reload resets the document)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            components = document["components"]["schemas"]
            for request in ("JobRequest", "PredictRequest"):
                components[request] = _variants(components, request, models(), default_model)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _variants(
    components: dict[str, Any], request: str, models: ModelRegistry, default_model: str
) -> dict[str, Any]:
    base = components[request]
    variants = []
    for model in models:
        schema = model.input_schema.model_json_schema(ref_template=REF)
        components.update(schema.pop("$defs", {}))
        name = f"{_component(model.name)}{_component(model.version)}Input"
        components[name] = schema
        # Each version by `name@version`; the current one by its bare name too.
        specs = [spec_of(model)]
        if models.current_version(model.name) == model.version:
            specs.insert(0, model.name)
        for spec in specs:
            variants.append(_variant(base, request, spec, name, spec == default_model))
    return {"title": request, "oneOf": variants}


def _variant(
    base: dict[str, Any], request: str, spec: str, component: str, is_default: bool
) -> dict[str, Any]:
    variant = copy.deepcopy(base)
    variant["title"] = f"{request} ({spec})"
    named = {"const": spec}
    # The default model's variant may leave `model` out or null, as the server does.
    variant["properties"]["model"] = (
        {"anyOf": [named, {"type": "null"}], "title": "Model"}
        if is_default
        else {**named, "title": "Model"}
    )
    variant["properties"]["input"] = {"$ref": REF.format(model=component)}
    variant["required"] = ["input"] if is_default else ["model", "input"]
    return variant


def _component(part: str) -> str:
    """A name part for a schema component (letters and digits only)."""
    return "".join(c for c in part.title() if c.isalnum())
