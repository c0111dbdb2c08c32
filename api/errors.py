"""Errors mapped to HTTP responses by class, in one place. Clients never see tracebacks."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from core.errors import (
    ClientLeftError,
    ForbiddenError,
    IdempotencyKeyReusedError,
    InferqError,
    InvalidInputError,
    JobNotCancelableError,
    JobNotFoundError,
    ModelError,
    ModelTimeoutError,
    RateLimitedError,
    RetryLaterError,
    UnauthorizedError,
    UnknownModelError,
)
from worker.history import TALLY

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[InferqError], int] = {
    UnknownModelError: 404,
    JobNotFoundError: 404,
    InvalidInputError: 422,
    JobNotCancelableError: 409,
    ModelError: 500,
    ClientLeftError: 499,
    IdempotencyKeyReusedError: 422,
    ForbiddenError: 403,
    ModelTimeoutError: 504,  # nginx's "client closed request": written to a closed socket
}
REDIS_RETRY_AFTER_S = 2


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    fields: list[dict[str, str]] | None = None,
) -> JSONResponse:
    error: dict[str, object] = {"code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    body = {"error": error}
    return JSONResponse(body, status_code=status, headers=headers)


async def _inferq_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InferqError)
    if isinstance(exc, RetryLaterError):
        TALLY.refused(time.time(), exc.code)
        status = 429 if isinstance(exc, RateLimitedError) else 503
        headers = {"Retry-After": str(exc.retry_after_s)}
        return error_response(status, exc.code, exc.message, headers=headers)
    if isinstance(exc, UnauthorizedError):
        return error_response(401, exc.code, exc.message, headers={"WWW-Authenticate": "Bearer"})
    status = STATUS_BY_ERROR.get(type(exc), 500)
    if status == 500 and not isinstance(exc, ModelError):
        log.error("unmapped error on %s %s: %r", request.method, request.url.path, exc)
    fields = exc.fields if isinstance(exc, InvalidInputError) else None
    return error_response(status, exc.code, exc.message, fields=fields)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        {"field": ".".join(str(p) for p in err["loc"] if p != "body"), "message": err["msg"]}
        for err in exc.errors()
    ]
    message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return error_response(422, InvalidInputError.code, message, fields=fields)


async def _redis_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("redis unavailable on %s %s: %r", request.method, request.url.path, exc)
    headers = {"Retry-After": str(REDIS_RETRY_AFTER_S)}
    return error_response(503, "redis_unavailable", "the job store is unavailable", headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    headers = exc.headers
    if exc.status_code == 405:
        headers = {"Allow": ", ".join(_allowed_methods(request))}
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    # Starlette names only the first route that matched the path, but GET and DELETE
    # of /jobs/{id} are two routes: collect the methods of every route on the path.
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": ""})
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(InferqError, _inferq_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RedisError, _redis_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
