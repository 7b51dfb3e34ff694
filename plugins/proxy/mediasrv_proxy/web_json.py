"""JSON over HTTP for the plugin's routes: bounded bodies, errors as ``{"error", "message"}``."""

from __future__ import annotations

import hmac
import json
from typing import Any

from aiohttp import web

MAX_BODY = 16 * 1024


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


async def read_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body (at most MAX_BODY bytes); BadRequest otherwise."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BadRequest(f"the body is larger than {MAX_BODY} bytes", 413, "too_large")
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise BadRequest(f"the body is larger than {MAX_BODY} bytes", 413, "too_large")
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("the body is not JSON") from None
    if not isinstance(value, dict):
        raise BadRequest("the body is not a JSON object")
    return value


def bearer_ok(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8"), token.encode("utf-8")
    )


def unauthorized(realm: str) -> web.Response:
    return web.json_response(
        {
            "error": "unauthorized",
            "message": "a valid 'Authorization: Bearer <admin_token>' header is required",
        },
        status=401,
        headers={"WWW-Authenticate": f'Bearer realm="{realm}"'},
    )
