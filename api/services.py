"""Per-process services the routes depend on, built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from cachetools import LRUCache
from fastapi import Depends, Request
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from api.direct import DirectPool
from api.jobstore import JobStore
from api.loaded import LoadedVersions
from api.notifications import CompletionHub
from config import Settings
from core.keys import RedisKeys
from core.models import ModelRegistry
from worker.models import configured_models


@dataclass
class Services:
    settings: Settings
    keys: RedisKeys
    redis: Redis
    models: ModelRegistry
    store: JobStore
    hub: CompletionHub
    results: LRUCache[str, str]
    direct: DirectPool
    loaded: LoadedVersions

    async def aclose(self) -> None:
        self.direct.close()
        await self.hub.stop()
        await self.redis.aclose()


def build_services(settings: Settings) -> Services:
    keys = RedisKeys(settings.namespace)
    # A bounded pool: requests queue for a connection instead of opening one each,
    # so thousands of waiting clients share a handful of connections.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_s,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        client_name="inferq-api",
        # A pooled connection to a Redis that has restarted since fails on first use: try
        # once more on a new connection, so the request does not become a 503 while Redis
        # is back. Connection errors only; a timeout is not retried (it would double the
        # wait before the 503 of a Redis that is really down).
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    redis = Redis(connection_pool=pool)
    # The subscription blocks on reads, so it gets its own connection without a read timeout.
    hub_redis = Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=15,
        client_name="inferq-api-hub",
    )
    models = configured_models(settings)
    return Services(
        settings=settings,
        keys=keys,
        redis=redis,
        models=models,
        store=JobStore(redis, keys, settings),
        hub=CompletionHub(hub_redis, keys.done_channel),
        results=LRUCache(maxsize=max(settings.local_cache_size, 1)),
        direct=DirectPool(settings, models),
        loaded=LoadedVersions(redis, keys, settings.heartbeat_ttl_s),
    )


async def get_services(request: Request) -> Services:
    # async, though it awaits nothing: FastAPI runs a plain `def` dependency in a
    # worker thread, a thread hop on every request (seen in py-spy profiles).
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
