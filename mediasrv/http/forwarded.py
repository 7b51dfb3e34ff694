"""The client's address behind the supervisor: X-Forwarded-For, trusted only from loopback
and, in a worker process, only with the supervisor's proof."""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from mediasrv.config import ServerConfig

PROXY_HEADER = "X-Mediasrv-Proxy"  # the supervisor's proof that it set X-Forwarded-For


def client_address(request: web.Request, config: ServerConfig) -> str:
    """The client's IP address: the connection's, or the first X-Forwarded-For entry when
    ``config.trust_forwarded`` and the connection comes from loopback. A worker process of a
    supervisor (``internal_token`` set) trusts the header only with the supervisor's proof,
    so another local process cannot forge the address."""
    direct = request.remote or ""
    forwarded = request.headers.get("X-Forwarded-For", "")
    if not (config.trust_forwarded and forwarded and direct in ("127.0.0.1", "::1")):
        return direct
    proof = config.internal_token
    if proof and not hmac.compare_digest(request.headers.get(PROXY_HEADER, ""), proof):
        return direct
    first = forwarded.split(",")[0].strip()
    return first if 0 < len(first) <= 64 else direct


def forwarded_remote(config: ServerConfig) -> Middleware:
    """Middleware: behind the supervisor (``trust_forwarded``), ``request.remote`` is the
    client's address from X-Forwarded-For, for every route (signaling, admin, plugins')."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        address = client_address(request, config)
        if address != request.remote:
            request = request.clone(remote=address)
        return await handler(request)

    return middleware
