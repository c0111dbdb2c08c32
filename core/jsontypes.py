"""Field types that accept exactly what JSON Schema's `integer` and `number` accept.

pydantic's default (lax) mode also takes `true` for 1 and `"3"` for 3, which the
published schema calls invalid; its strict mode refuses `3.0`, which JSON Schema
calls an integer. These sit between, so the server and its schema agree.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator


def json_integer(value: object) -> object:
    """3 and 3.0 are integers; true, "3" and 3.5 are not."""
    if type(value) is float and value.is_integer():
        return int(value)
    if type(value) is not int:
        raise ValueError(f"must be an integer, not {value!r:.20}")
    return value


def json_number(value: object) -> object:
    """3 and 3.5 are numbers; true and "3" are not."""
    if type(value) not in (int, float):
        raise ValueError(f"must be a number, not {value!r:.20}")
    return value


Integer = Annotated[int, BeforeValidator(json_integer)]
Number = Annotated[float, BeforeValidator(json_number)]
