"""The admin API under /admin (``Authorization: Bearer <admin_token>``; off without a token).

``GET  /admin/rooms``                       rooms with their peers and recording state
``GET  /admin/rooms/{room}/recording``      the room's recording (running or last) with stats
``POST /admin/rooms/{room}/recording``      start one: ``{"producerIds"?: [...]}`` (none: the
                                            whole room); the plugins' authorize_recording
                                            gates run as for any start
``DELETE /admin/rooms/{room}/recording``    stop it

Errors are ``{"error": code, "message": text}`` with 400 (bad input), 401 (no or a wrong
token), 403 (a plugin refused), 404 (no such room or recording), 409 (already recording),
413 (a body over 16 KiB) or 503 (the recording cannot be written).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mediasrv.plugin import Denied
from mediasrv.room import RecordingError, Room

if TYPE_CHECKING:
    from mediasrv.media_server import MediaServer

log = logging.getLogger("mediasrv.admin")

MAX_BODY = 16 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATUS = {
    "already_recording": 409,
    "recording_unavailable": 503,
    "room_closed": 404,
    "unknown_producer": 400,
    "invalid_params": 400,
}


class AdminError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise AdminError(413, "too_large", f"the body is larger than {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise AdminError(400, "invalid_json", "the body is not JSON") from None
    if not isinstance(value, dict):
        raise AdminError(400, "invalid_json", "the body is not a JSON object")
    return value


def admin_routes(server: MediaServer, token: str) -> list[web.RouteDef]:
    def guarded(handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), token.encode()
            ):
                return web.json_response(
                    {"error": "unauthorized", "message": "a valid bearer token is required"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="mediasrv-admin"'},
                )
            try:
                return await handler(request)
            except AdminError as exc:
                return _error(exc.status, exc.code, exc.message)

        return run

    def room_of(request: web.Request) -> Room:
        room = server.rooms.get(request.match_info["room"])
        if room is None or room.closed:
            raise AdminError(404, "unknown_room", "no such room")
        return room

    async def rooms(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "rooms": [
                    {
                        **room.info(),
                        "recording": room.recording.info() if room.recording else None,
                    }
                    for room in server.rooms.values()
                ]
            }
        )

    async def get_recording(request: web.Request) -> web.Response:
        room = room_of(request)
        if room.recording is None:
            raise AdminError(404, "not_recording", "this room has no recording")
        return web.json_response(room.recording.stats())

    async def start_recording(request: web.Request) -> web.Response:
        room = room_of(request)
        body = await _body(request)
        ids = body.get("producerIds")
        if ids is not None and (
            not isinstance(ids, list)
            or len(ids) > 64
            or not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids)
        ):
            raise AdminError(400, "invalid_params", "producerIds must be a list of ≤64 ids")
        try:
            recording = await room.start_recording(ids, by="admin")
        except Denied as denied:
            server.count_rejected(f"recording:{denied.code}")
            raise AdminError(403, denied.code, denied.message) from None
        except RecordingError as exc:
            raise AdminError(STATUS.get(exc.code, 400), exc.code, exc.message) from None
        log.info("admin %s started recording %s of room %r", request.remote, recording.id, room.id)
        return web.json_response(recording.info(), status=201)

    async def stop_recording(request: web.Request) -> web.Response:
        room = room_of(request)
        recording = room.stop_recording("stopped")
        if recording is None:
            raise AdminError(404, "not_recording", "this room is not being recorded")
        log.info("admin %s stopped recording %s of room %r", request.remote, recording.id, room.id)
        return web.json_response(recording.info())

    return [
        web.get("/admin/rooms", guarded(rooms)),
        web.get("/admin/rooms/{room}/recording", guarded(get_recording)),
        web.post("/admin/rooms/{room}/recording", guarded(start_recording)),
        web.delete("/admin/rooms/{room}/recording", guarded(stop_recording)),
    ]
