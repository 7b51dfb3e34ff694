"""The HTTP application: signaling WebSocket, the browser client SDK, health and info, the
metrics endpoint and the admin API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

from mediasrv import _core
from mediasrv.http.admin_api import admin_routes
from mediasrv.http.forwarded import forwarded_remote
from mediasrv.http.json_body import bearer_ok
from mediasrv.media_server import MediaServer
from mediasrv.signaling.websocket import websocket_handler
from mediasrv.version import __version__

CLIENT_JS = "mediasrv-client.js"
SERVER_KEY: web.AppKey[MediaServer] = web.AppKey("server")


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 while the server takes joins, 503 while it starts, drains or stops."""
    server = request.app[SERVER_KEY]
    if server.ready:
        return web.json_response({"status": "ready"})
    state = "draining" if server.draining else "stopping" if server.closed else "starting"
    return web.json_response({"status": state}, status=503)


def metrics_handler(server: MediaServer) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``/metrics`` in the Prometheus text format, behind ``metrics.token`` when set."""
    token = server.config.metrics.token

    async def metrics(request: web.Request) -> web.Response:
        if token is not None and not bearer_ok(request, token):
            return web.Response(
                status=401,
                text="a valid bearer token is required\n",
                headers={"WWW-Authenticate": 'Bearer realm="mediasrv-metrics"'},
            )
        return web.Response(body=server.metrics_text(), content_type="text/plain", charset="utf-8",
                            headers={"X-Prometheus-Format": "0.0.4"})  # fmt: skip

    return metrics


def create_metrics_app(server: MediaServer) -> web.Application:
    """The separate metrics listener (``metrics.host``): /metrics and the health checks."""
    app = web.Application(client_max_size=4 * 1024)
    app[SERVER_KEY] = server
    app.router.add_get("/metrics", metrics_handler(server))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def info(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    return web.json_response(
        {
            "name": "mediasrv",
            "version": __version__,
            "data_plane": _core.__name__,
            "srtp_profiles": [profile.name for profile in _core.SrtpProfile],
            "rooms": len(server.rooms),
        }
    )


async def client_sdk(request: web.Request) -> web.Response:
    text = resources.files("mediasrv").joinpath("static", CLIENT_JS).read_text("utf-8")
    return web.Response(
        text=text, content_type="text/javascript", headers={"Cache-Control": "no-cache"}
    )


def create_app(server: MediaServer, sessions: set[web.WebSocketResponse]) -> web.Application:
    """The server's application; ``sessions`` holds the open signaling WebSockets."""
    config = server.config
    middlewares = [forwarded_remote(config)] if config.trust_forwarded else []
    app = web.Application(client_max_size=64 * 1024, middlewares=middlewares)
    app[SERVER_KEY] = server
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if config.metrics.enabled and not config.metrics.host:
        app.router.add_get("/metrics", metrics_handler(server))
    app.router.add_get("/", info)
    app.router.add_get("/ws", websocket_handler(server, sessions))
    app.router.add_get(f"/client/{CLIENT_JS}", client_sdk)
    if config.admin_token:
        app.add_routes(admin_routes(server, config.admin_token))
    return app
