"""JSON over HTTP for the server's and plugins' APIs: bounded bodies, bearer tokens compared
in constant time, errors as ``{"error": code, "message": text}``."""

from __future__ import annotations

import hmac
import json
from typing import Any

from aiohttp import web

MAX_BODY = 16 * 1024


class BadRequest(Exception):
    """A refused request: the status, the error code and a message for people."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


async def read_object(request: web.Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The request's JSON object body, read whole up to MAX_BODY bytes (413 past it);
    ``empty_ok``: no body at all is ``{}``."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BadRequest(f"the body is larger than {MAX_BODY} bytes", 413, "too_large")
    body = b""
    while len(body) <= MAX_BODY:  # however the body was split, up to the limit
        chunk = await request.content.read(MAX_BODY + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > MAX_BODY:
        raise BadRequest(f"the body is larger than {MAX_BODY} bytes", 413, "too_large")
    if empty_ok and not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("the body is not JSON", code="invalid_json") from None
    if not isinstance(value, dict):
        raise BadRequest("the body is not a JSON object", code="invalid_json")
    return value


def bearer_ok(request: web.Request, token: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>`` (constant time)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8"), token.encode("utf-8")
    )


def unauthorized(realm: str) -> web.Response:
    return web.json_response(
        {"error": "unauthorized", "message": "a valid 'Authorization: Bearer' token is required"},
        status=401,
        headers={"WWW-Authenticate": f'Bearer realm="{realm}"'},
    )
