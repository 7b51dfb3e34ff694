"""The HTTP application: signaling WebSocket, the browser client SDK, health and info."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web

from mediasrv import __version__, _core
from mediasrv.signaling import websocket_handler

if TYPE_CHECKING:
    from mediasrv.media_server import MediaServer

CLIENT_JS = "mediasrv-client.js"
SERVER_KEY: web.AppKey[MediaServer] = web.AppKey("server")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


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


def create_app(server: MediaServer) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[SERVER_KEY] = server
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", info)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get(f"/client/{CLIENT_JS}", client_sdk)
    if server.config.admin_token:
        from mediasrv.admin_api import admin_routes

        app.add_routes(admin_routes(server, server.config.admin_token))
    return app
