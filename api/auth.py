"""Optional API keys: who is calling, their rate limit, and which jobs are theirs."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr

from api.services import Services, ServicesDep
from core.errors import RateLimitedError, UnauthorizedError

OPEN = ""  # the tenant of every request when no keys are configured

# Token bucket per tenant, refilled continuously. KEYS: bucket.
# ARGV: now, rate per second, burst. Returns 0 when allowed, else ms until a token.
TAKE_TOKEN = """
local tokens, stamp = unpack(redis.call('HMGET', KEYS[1], 'tokens', 'stamp'))
local now, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
tokens = math.min(burst, tonumber(tokens or burst) + (now - tonumber(stamp or now)) * rate)
if tokens < 1 then return math.ceil((1 - tokens) / rate * 1000) end
redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'stamp', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return 0
"""


def tenant_of(key: str) -> str:
    """A stable, non-secret id for an API key (stored with each job it creates)."""
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def is_known(key: str, keys: list[SecretStr]) -> bool:
    # Compare against every key, in constant time each, so timing reveals nothing.
    return any([hmac.compare_digest(key, k.get_secret_value()) for k in keys])


@dataclass(frozen=True)
class Caller:
    """Who is calling: the tenant whose jobs they see, and whether they operate the service."""

    tenant: str
    is_operator: bool


async def identify(request: Request, services: ServicesDep) -> Caller:
    """The caller; 401 without a valid key (when keys are on), 429 past its rate limit."""
    settings = services.settings
    key = presented_key(request)
    is_operator = key is not None and is_known(key, settings.operator_keys)
    if not settings.api_keys:  # open service: every job is the open tenant's
        return Caller(OPEN, is_operator)
    if key is None or not (is_operator or is_known(key, settings.api_keys)):
        raise UnauthorizedError("a valid API key is required (Authorization: Bearer <key>)")
    tenant = tenant_of(key)
    if settings.rate_limit_per_s and not is_operator:
        await _take_token(services, tenant)
    return Caller(tenant, is_operator)


async def authenticate(request: Request, services: ServicesDep) -> str:
    """The caller's tenant id; 401 without a valid key, 429 past its rate limit."""
    return (await identify(request, services)).tenant


async def _take_token(services: Services, tenant: str) -> None:
    settings = services.settings
    wait_ms: int = await services.redis.eval(
        TAKE_TOKEN,
        1,
        services.keys.rate_limit(tenant),
        time.time(),
        settings.rate_limit_per_s,
        settings.rate_limit_burst,
    )
    if wait_ms:
        raise RateLimitedError(
            f"over {settings.rate_limit_per_s:g} requests/s for this key",
            math.ceil(wait_ms / 1000),
        )


Tenant = Annotated[str, Depends(authenticate)]
CallerDep = Annotated[Caller, Depends(identify)]


async def authenticate_metrics(request: Request, services: ServicesDep) -> None:
    if services.settings.metrics_require_key:
        await authenticate(request, services)
