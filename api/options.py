"""A submit's options: `?wait`, `?timeout` and the `Idempotency-Key` header.

POST /jobs reads them itself rather than as FastAPI parameters: FastAPI's solving of
those three cost 29 us per request (73 against 44 us for the same route without them,
in-process), 7% of the API's CPU per queued request, on the path every queued job takes.
Read here they cost about 5 us. They are validated by the same declarations FastAPI
would use (`Wait`, `Timeout`, `IdempotencyKey`), refused with the same 422, and
documented as FastAPI documents them (`PARAMETERS`; a unit test compares the two).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, ValidationError

WAIT_TEXT = "hold the request until the job finishes"
TIMEOUT_TEXT = "seconds to wait (default 30, capped by a setting)"
KEY_TEXT = "the same key with the same body returns the same job, never a second"

Wait = Annotated[bool, Query(description=WAIT_TEXT)]
Timeout = Annotated[float | None, Query(gt=0, description=TIMEOUT_TEXT)]
IdempotencyKey = Annotated[str | None, Header(min_length=1, max_length=255, description=KEY_TEXT)]
KEY_HEADER = "idempotency-key"


class SubmitOptions(BaseModel):
    """What a submit asked for besides its body."""

    model_config = ConfigDict(frozen=True)

    wait: Wait = False
    timeout: Timeout = None
    idempotency_key: IdempotencyKey = None


NO_OPTIONS = SubmitOptions()


def submit_options(request: Request) -> SubmitOptions:
    """The request's options, or a 422 naming each bad one (as FastAPI words it)."""
    query = request.query_params
    given: dict[str, str] = {name: query[name] for name in ("wait", "timeout") if name in query}
    _refuse_repeated(request, given)
    key = request.headers.get(KEY_HEADER)
    if key is not None:
        given["idempotency_key"] = key
    if not given:
        return NO_OPTIONS
    try:
        return SubmitOptions.model_validate(given)
    except ValidationError as exc:
        raise RequestValidationError([_located(error) for error in exc.errors()]) from None


async def one_value_each(request: Request) -> None:
    """A 422 for a query parameter the route declares that is given more than once.

    FastAPI takes the last of several, where the published schema allows one value: a
    fuzzer's `timeout=H&timeout=3` was accepted as 3. POST /jobs checks its own options
    in `submit_options`; routes with FastAPI-declared query parameters use this.
    """
    query = request.query_params
    if len(query.multi_items()) == len(query):  # no name given twice: the usual case
        return
    route: APIRoute = request.scope["route"]  # set before a route's dependencies run
    _refuse_repeated(request, [field.alias for field in route.dependant.query_params])


def _refuse_repeated(request: Request, names: Iterable[str]) -> None:
    """One value each: never a silent choice among several (a 422 naming each repeated)."""
    query = request.query_params
    repeated = [name for name in names if len(query.getlist(name)) > 1]
    if repeated:
        raise RequestValidationError(
            [
                {"type": "value_error", "loc": ("query", name), "msg": "given more than once"}
                for name in repeated
            ]
        )


def _located(error: Any) -> dict[str, Any]:
    name = error["loc"][0]
    where = ("header", KEY_HEADER) if name == "idempotency_key" else ("query", name)
    return {**error, "loc": where}


def _parameter(name: str, where: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": False,
        "schema": {**schema, "description": text},
        "description": text,
    }


PARAMETERS = [
    _parameter("wait", "query", {"type": "boolean", "default": False, "title": "Wait"}, WAIT_TEXT),
    _parameter(
        "timeout",
        "query",
        {
            "anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}],
            "title": "Timeout",
        },
        TIMEOUT_TEXT,
    ),
    _parameter(
        KEY_HEADER,
        "header",
        {
            "anyOf": [{"type": "string", "minLength": 1, "maxLength": 255}, {"type": "null"}],
            "title": "Idempotency-Key",
        },
        KEY_TEXT,
    ),
]
