"""The HTTP application: health and version endpoints (signaling joins it in later releases)."""

from __future__ import annotations

from aiohttp import web

from mediasrv import __version__, _core


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def info(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "name": "mediasrv",
            "version": __version__,
            "data_plane": _core.__name__,
            "srtp_profiles": [profile.name for profile in _core.SrtpProfile],
        }
    )


def create_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", info)
    return app
