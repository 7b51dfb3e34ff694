"""The admin API under /admin (``Authorization: Bearer <admin_token>``; off without a token).

``GET    /admin/rooms``                                   rooms: peers, producers, recording
``GET    /admin/rooms/{room}``                            a room with every peer's live stats
                                                          (transports, producers, consumers)
``DELETE /admin/rooms/{room}``                            close it (peers get ``removed``)
``DELETE /admin/rooms/{room}/peers/{peer}``               kick a peer (it gets ``removed``)
``PUT    /admin/rooms/{room}/consumers/{consumer}/layers`` ``{"spatialLayer"?, "temporalLayer"?}``
``GET    /admin/rooms/{room}/recording``                  the room's recording with stats
``POST   /admin/rooms/{room}/recording``                  start one: ``{"producerIds"?: [...]}``
                                                          (the authorize_recording gates run)
``DELETE /admin/rooms/{room}/recording``                  stop it
``GET    /admin/openapi.json``                            this API as OpenAPI 3.1

Errors are ``{"error": code, "message": text}`` with 400 (bad input), 401 (no or a wrong
token), 403 (a plugin refused), 404 (no such room, peer, consumer or recording), 409 (already
recording), 413 (a body over 16 KiB) or 503 (the recording cannot be written). Every change is
logged with the caller's address.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from mediasrv.denied import Denied
from mediasrv.http.admin_openapi import OPENAPI
from mediasrv.http.json_body import BadRequest, bearer_ok, error, read_object, unauthorized
from mediasrv.media_server import MediaServer
from mediasrv.preferred_layers import set_preferred_layers
from mediasrv.room import RecordingError, Room

log = logging.getLogger("mediasrv.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATUS = {
    "already_recording": 409,
    "recording_unavailable": 503,
    "room_closed": 404,
    "unknown_producer": 400,
    "invalid_params": 400,
}


class AdminError(BadRequest):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, status, code)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    return await read_object(request, empty_ok=True)


def admin_routes(server: MediaServer, token: str) -> list[web.RouteDef]:
    def guarded(handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            if not bearer_ok(request, token):
                return unauthorized("mediasrv-admin")
            try:
                return await handler(request)
            except BadRequest as exc:
                return error(exc.status, exc.code, exc.message)

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
                        "id": room.id,
                        "peers": len(room.peers),
                        "producers": len(room.router.producers),
                        "recording": room.recording.info() if room.recording else None,
                    }
                    for room in server.rooms.values()
                ]
            }
        )

    async def room_detail(request: web.Request) -> web.Response:
        room = room_of(request)
        return web.json_response(
            {
                "id": room.id,
                "recording": room.recording.info() if room.recording else None,
                "peers": [{**peer.info(), "stats": peer.stats()} for peer in room.peers.values()],
            }
        )

    async def close_room(request: web.Request) -> web.Response:
        room = room_of(request)
        peers = list(room.peers.values())
        for peer in peers:
            peer.notify("removed", {"reason": "room_closed"})
        room.close()
        log.info("admin %s closed room %r (%d peers)", request.remote, room.id, len(peers))
        return web.json_response({"closed": room.id, "peers": len(peers)})

    async def kick(request: web.Request) -> web.Response:
        room = room_of(request)
        peer = room.peers.get(request.match_info["peer"])
        if peer is None:
            raise AdminError(404, "unknown_peer", "no such peer in this room")
        peer.notify("removed", {"reason": "kicked"})
        peer.close()
        log.info("admin %s removed peer %s from room %r", request.remote, peer.id, room.id)
        return web.json_response({"removed": peer.id})

    async def set_layers(request: web.Request) -> web.Response:
        room = room_of(request)
        wanted = request.match_info["consumer"]
        consumer = next(
            (
                c
                for peer in room.peers.values()
                for t in (peer.recv_transport, peer.send_transport)
                if t is not None
                for c in t.consumers.values()
                if c.id == wanted
            ),
            None,
        )
        if consumer is None:
            raise AdminError(404, "unknown_consumer", "no such consumer in this room")
        body = await _body(request)
        try:
            layers = set_preferred_layers(consumer, body)
        except ValueError as exc:
            raise AdminError(400, "invalid_params", str(exc)) from None
        log.info("admin %s set layers of consumer %s: %s", request.remote, consumer.id, body)
        return web.json_response({"consumerId": consumer.id, **layers})

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)

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
        web.get("/admin/rooms/{room}", guarded(room_detail)),
        web.delete("/admin/rooms/{room}", guarded(close_room)),
        web.delete("/admin/rooms/{room}/peers/{peer}", guarded(kick)),
        web.put("/admin/rooms/{room}/consumers/{consumer}/layers", guarded(set_layers)),
        web.get("/admin/openapi.json", guarded(openapi)),
        web.get("/admin/rooms/{room}/recording", guarded(get_recording)),
        web.post("/admin/rooms/{room}/recording", guarded(start_recording)),
        web.delete("/admin/rooms/{room}/recording", guarded(stop_recording)),
    ]
