"""POST /jobs reads its options itself: documented, validated and refused as FastAPI would."""

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request

from api.options import PARAMETERS, IdempotencyKey, SubmitOptions, Timeout, Wait, submit_options


def _request(query: str = "", key: str | None = None) -> Request:
    headers = [] if key is None else [(b"idempotency-key", key.encode())]
    scope = {"type": "http", "method": "POST", "path": "/jobs", "headers": headers}
    return Request({**scope, "query_string": query.encode()})


def test_documented_as_fastapi_documents_the_same_declarations() -> None:
    app = FastAPI()

    @app.post("/jobs")
    def submit(
        wait: Wait = False, timeout: Timeout = None, idempotency_key: IdempotencyKey = None
    ) -> None: ...

    assert app.openapi()["paths"]["/jobs"]["post"]["parameters"] == PARAMETERS


def test_options_are_read_from_the_query_and_the_header() -> None:
    assert submit_options(_request()) == SubmitOptions()
    given = submit_options(_request("wait=yes&timeout=1.5&other=1&idempotency_key=no", "k"))
    assert given == SubmitOptions(wait=True, timeout=1.5, idempotency_key="k")


@pytest.mark.parametrize(
    ("query", "key", "where", "message"),
    [
        ("timeout=0", None, ("query", "timeout"), "greater than 0"),
        ("timeout=", None, ("query", "timeout"), "valid number"),
        ("wait=maybe", None, ("query", "wait"), "valid boolean"),
        ("", "", ("header", "idempotency-key"), "at least 1 character"),
        ("", "k" * 256, ("header", "idempotency-key"), "at most 255 characters"),
        # FastAPI would take the last; the published schema allows one number (a fuzzer's
        # `timeout=H&timeout=3` was accepted as 3).
        ("timeout=H&timeout=3", None, ("query", "timeout"), "given more than once"),
        ("wait=true&wait=false", None, ("query", "wait"), "given more than once"),
    ],
)
def test_a_bad_option_is_refused_naming_it(
    query: str, key: str | None, where: tuple[str, str], message: str
) -> None:
    with pytest.raises(RequestValidationError) as refused:
        submit_options(_request(query, key))
    errors: list[dict[str, Any]] = list(refused.value.errors())
    assert [error["loc"] for error in errors] == [where]
    assert message in errors[0]["msg"]
