"""Which model versions the live consumers have loaded (from their heartbeats), cached briefly."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from api import overview
from core.keys import RedisKeys

FRESH_S = 1.0


class LoadedVersions:
    def __init__(self, redis: Redis, keys: RedisKeys, heartbeat_ttl_s: float) -> None:
        self._redis, self._keys, self._ttl = redis, keys, heartbeat_ttl_s
        self._specs: set[str] = set()
        self._read_at = float("-inf")

    async def specs(self) -> set[str]:
        """Every `name@version` some live consumer serves; read at most once a second."""
        if time.monotonic() - self._read_at > FRESH_S:
            consumers = await overview.consumers(self._redis, self._keys, self._ttl)
            self._specs = {
                spec for about in consumers for spec in about.get("models", "").split(",") if spec
            }
            self._read_at = time.monotonic()
        return self._specs
