"""HttpFrontend: how clients reach a MediaServer over HTTP — its listeners, the application
on them, the open signaling WebSockets, and the server's metrics collectors."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import WSCloseCode, web

from mediasrv.http.app import create_app, create_metrics_app
from mediasrv.http.metrics import register_collectors
from mediasrv.media_server import MediaServer


class HttpFrontend:
    """The server's HTTP and WebSocket front door on ``config.host:config.port`` (and the
    metrics listener on ``metrics.host`` when set). Made before the server starts, it adds
    itself to the server, which starts and closes it (:class:`mediasrv.media_server.Frontend`).

    An embedding service adds its own routes or sub-applications to :attr:`app` before the
    server starts (paths outside ``/ws``, ``/client``, ``/admin``, ``/internal``,
    ``/plugins``, ``/metrics`` and the health checks)."""

    def __init__(self, server: MediaServer) -> None:
        if any(isinstance(f, HttpFrontend) for f in server.frontends):
            raise RuntimeError("the server has an HTTP frontend already")
        self.server = server
        self.sessions: set[web.WebSocketResponse] = set()  # open signaling connections
        self.loop_lag = register_collectors(server, self.sessions)
        self.app = create_app(server, self.sessions)
        self.address: tuple[str, int] | None = None
        self.metrics_address: tuple[str, int] | None = None
        self._runners: list[web.AppRunner] = []
        self._lag: asyncio.Task[Any] | None = None
        server.add_frontend(self)

    async def start(self) -> None:
        config = self.server.config
        self.server.plugins.mount(self.app)
        self.address = await self._listen(self.app, config.host, config.port)
        self.server.http_address = self.address
        metrics = config.metrics
        if metrics.enabled and metrics.host:
            app = create_metrics_app(self.server)
            self.metrics_address = await self._listen(app, metrics.host, metrics.port)
            self.server.metrics_address = self.metrics_address
        self._lag = asyncio.ensure_future(self.loop_lag.run())

    async def _listen(self, app: web.Application, host: str, port: int) -> tuple[str, int]:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses
        return (host, int(bound[0][1]) if bound else port)

    async def close(self) -> None:
        """Tell every signaling client (instead of leaving them to time out on a dead
        connection), then stop listening."""
        if self._lag is not None:
            self._lag.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag
        await asyncio.gather(
            *(
                ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
                for ws in list(self.sessions)
            ),
            return_exceptions=True,
        )
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
