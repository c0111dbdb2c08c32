"""ASGI entry point: `uvicorn api.main:app`.

Importing this builds nothing: the app (and the settings, models and clients it
needs) is made when the server first calls it, for the lifespan at startup. Settings
that cannot be used (no queue secret in production, say) fail that startup, so the
server exits with the reason instead of answering every request with a 500.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from api.app import create_app


class _BuiltOnFirstCall:
    def __init__(self) -> None:
        self._app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            try:
                self._app = create_app()
            except ValueError as exc:  # pydantic's ValidationError among them
                if scope["type"] != "lifespan":
                    raise
                # Raising here would make uvicorn decide lifespan is unsupported and serve.
                await receive()  # lifespan.startup
                await send({"type": "lifespan.startup.failed", "message": f"{exc}"})
                return
        await self._app(scope, receive, send)


app = _BuiltOnFirstCall()
