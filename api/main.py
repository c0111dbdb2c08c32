"""ASGI entry point: `uvicorn api.main:app`.

Importing this builds nothing: the app (and the settings, models and clients it
needs) is made when the server first calls it, for the lifespan at startup.
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
            self._app = create_app()
        await self._app(scope, receive, send)


app = _BuiltOnFirstCall()
