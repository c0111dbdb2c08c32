"""Noticing that an HTTP client has gone, without a thread or a poll per request."""

from __future__ import annotations

from starlette.requests import Request


async def client_left(request: Request) -> None:
    """Return once the client disconnects (call only after the body has been read)."""
    # The body is already read, so the next ASGI message is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass
