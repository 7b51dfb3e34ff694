"""The signaling protocol over a WebSocket: the aiohttp handler of ``/ws``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from mediasrv.media_server import MediaServer
from mediasrv.signaling.session import SignalingSession


def websocket_handler(
    server: MediaServer, sessions: set[web.WebSocketResponse]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The handler of ``/ws``: one SignalingSession per connection, kept in ``sessions``
    while it lasts (the frontend closes them when the server stops). ``request.remote`` is
    the client's address (behind the supervisor, the frontend's middleware set it)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if server.closed:
            raise web.HTTPServiceUnavailable(text="the server is shutting down")
        ws = web.WebSocketResponse(max_msg_size=server.config.max_message_size, heartbeat=20.0)
        await ws.prepare(request)
        session = SignalingSession(server, ws, request.remote or "", dict(request.headers.items()))
        sessions.add(ws)
        try:
            await session.run()
        finally:
            sessions.discard(ws)
        return ws

    return handler
