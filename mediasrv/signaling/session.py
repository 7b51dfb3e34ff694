"""The WebSocket signaling protocol (docs/protocol.md): JSON requests with ids, responses,
and notifications. Malformed input gets an error response naming the problem; the connection
stays open."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from mediasrv import logs
from mediasrv.denied import Denied
from mediasrv.media_server import MediaServer, TooManyRooms
from mediasrv.peer import Peer
from mediasrv.plugin import JoinRequest
from mediasrv.preferred_layers import LayerError, set_preferred_layers
from mediasrv.room import RecordingError, Room, RoomFull
from mediasrv.sdp.negotiation import NegotiationError, sending_kinds
from mediasrv.tasks import spawn
from mediasrv.turn_credentials import ice_servers

log = logging.getLogger("mediasrv.signaling")

MAX_ROOM_ID = 128
MAX_DISPLAY_NAME = 128


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _param(
    params: dict[str, Any],
    name: str,
    kind: type | tuple[type, ...],
    *,
    required: bool = True,
    default: Any = None,
) -> Any:
    if name not in params:
        if required:
            raise ProtocolError("invalid_params", f"params.{name} is required")
        return default
    value = params[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ProtocolError("invalid_params", f"params.{name} must be a {names}")
    return value


class SignalingSession:
    """One WebSocket connection: at most one Peer in one Room."""

    def __init__(
        self,
        server: MediaServer,
        ws: web.WebSocketResponse,
        remote: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.server = server
        self.ws = ws
        self.id = uuid.uuid4().hex[:16]
        self.remote = remote  # the client's IP address
        self.headers = dict(headers or {})
        self.peer: Peer | None = None
        self.room: Room | None = None  # the peer's
        self._tokens = server.config.max_requests_per_second
        self._refill = time.monotonic()
        self._outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._writer = spawn(self._write(), "signaling writer")
        self.errors = 0

    def notify(self, method: str, params: dict[str, Any]) -> None:
        if not self.ws.closed:
            self._outbox.put_nowait({"method": method, "params": params})

    async def _send(self, message: dict[str, Any]) -> None:
        """Responses and notifications leave in the order they were made."""
        self._outbox.put_nowait(message)

    async def _write(self) -> None:
        while True:
            message = await self._outbox.get()
            if message is None or self.ws.closed:
                return
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(json.dumps(message, separators=(",", ":")))

    def _rate_ok(self) -> bool:
        now = time.monotonic()
        rate = self.server.config.max_requests_per_second
        self._tokens = min(rate, self._tokens + (now - self._refill) * rate)
        self._refill = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    await self._handle_text(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self._error(None, "invalid_message", "binary frames are not accepted")
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            if self.peer is not None:
                log.info("peer left (signaling closed)")
                self.peer.close()
                self.peer = self.room = None
            self._outbox.put_nowait(None)

    async def _error(self, request_id: Any, code: str, message: str) -> None:
        self.errors += 1
        await self._send(
            {"id": request_id, "ok": False, "error": {"code": code, "message": message}}
        )

    async def _handle_text(self, text: str) -> None:
        if not self._rate_ok():
            await self._error(None, "rate_limited", "too many requests: slow down")
            return
        try:
            message = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            await self._error(None, "invalid_json", f"not JSON: {exc}")
            return
        if not isinstance(message, dict):
            await self._error(None, "invalid_message", "a message must be a JSON object")
            return
        request_id = message.get("id")
        if not isinstance(request_id, (int, str)) or isinstance(request_id, bool):
            await self._error(None, "invalid_message", "id must be an integer or a string")
            return
        method = message.get("method")
        params = message.get("params", {})
        if not isinstance(method, str):
            await self._error(request_id, "invalid_message", "method must be a string")
            return
        if not isinstance(params, dict):
            await self._error(request_id, "invalid_message", "params must be an object")
            return
        if "." in method:
            await self._plugin_request(request_id, method, params)
            return
        handler = getattr(self, "_m_" + method, None)
        if handler is None:
            await self._error(request_id, "unknown_method", f"unknown method {method!r}")
            return
        try:
            result = await handler(params)
        except ProtocolError as exc:
            await self._error(request_id, exc.code, str(exc))
            return
        except NegotiationError as exc:
            await self._error(request_id, exc.code, str(exc))
            return
        except Exception as exc:
            log.exception("signaling %s failed", method)
            await self._error(
                request_id, "internal_error", f"{method} failed: {type(exc).__name__}"
            )
            return
        await self._send({"id": request_id, "ok": True, "result": result})

    async def _plugin_request(self, request_id: Any, method: str, params: dict[str, Any]) -> None:
        """A request in a plugin's namespace ("<namespace>.<method>")."""
        namespace, _, name = method.partition(".")
        plugin = self.server.plugins.for_namespace(namespace)
        if plugin is None or not name:
            await self._error(request_id, "unknown_method", f"unknown method {method!r}")
            return
        peer = self.peer if self.peer is not None and not self.peer.closed else None
        try:
            result = await plugin.handle_request(peer, name, params)
        except Denied as denied:
            await self._error(request_id, denied.code, denied.message)
            return
        except Exception as exc:
            log.exception("plugin %s: %s failed", plugin.name, method)
            await self._error(request_id, "plugin_error", f"{method} failed: {type(exc).__name__}")
            return
        await self._send({"id": request_id, "ok": True, "result": result})

    def _joined(self) -> Peer:
        if self.peer is None or self.peer.closed:
            raise ProtocolError("not_joined", "join a room first")
        return self.peer

    def _joined_room(self) -> tuple[Peer, Room]:
        peer = self._joined()
        assert self.room is not None  # set with the peer
        return peer, self.room

    # ---- methods ----

    async def _m_join(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.peer is not None and not self.peer.closed:
            raise ProtocolError("already_joined", "this connection has already joined a room")
        if self.server.draining:
            self.server.count_rejected("join:draining")
            raise ProtocolError("draining", "this server is shutting down: join another one")
        token = _param(params, "token", str)
        room_id = _param(params, "room", str)
        name = _param(params, "displayName", str, required=False, default="")
        auto = _param(params, "autoSubscribe", bool, required=False, default=True)
        codecs = _param(params, "codecs", list, required=False, default=None)
        if codecs is not None and (
            len(codecs) > 64 or not all(isinstance(c, str) and 0 < len(c) <= 64 for c in codecs)
        ):
            raise ProtocolError(
                "invalid_params", "params.codecs must be a list of at most 64 mime type strings"
            )
        if not room_id or len(room_id) > MAX_ROOM_ID:
            raise ProtocolError(
                "invalid_params", f"params.room must be 1..{MAX_ROOM_ID} characters"
            )
        if len(name) > MAX_DISPLAY_NAME:
            raise ProtocolError(
                "invalid_params", f"params.displayName is longer than {MAX_DISPLAY_NAME} characters"
            )
        request = JoinRequest(
            token=token,
            room=room_id,
            display_name=name,
            params=dict(params),
            remote=self.remote,
            headers=self.headers,
            session_id=self.id,
        )
        plugins = self.server.plugins
        try:
            request.identity = await plugins.authenticate(request)
        except Denied as denied:
            self.server.count_rejected(f"join:{denied.code}")
            raise ProtocolError(denied.code, denied.message) from None
        tokens = self.server.config.tokens
        if request.identity is None and tokens is not None and token not in tokens:
            raise ProtocolError("unauthorized", "the token is not accepted")
        for _attempt in range(3):
            try:
                room = self.server.get_or_create_room(room_id)
            except TooManyRooms as exc:
                raise ProtocolError("too_many_rooms", str(exc)) from None
            try:
                await plugins.gate("authorize_join", request, room)
            except Denied as denied:
                self.server.count_rejected(f"join:{denied.code}")
                if not room.peers:
                    room.close()  # created for this request only
                raise ProtocolError(denied.code, denied.message) from None
            if not room.closed:
                break
            # another request's refusal closed the empty room while our gates ran: a new one
        else:
            raise ProtocolError("room_closed", f"room {room_id!r} keeps closing; try again")
        identity = request.identity
        name = request.display_name  # an authorize_join hook may have changed it
        if not name and identity is not None:
            name = identity.display_name
        app_data = dict(request.app_data)
        if identity is not None:
            app_data["identity"] = identity
        try:
            peer = room.join(
                name[:MAX_DISPLAY_NAME],
                self.notify,
                auto_subscribe=auto,
                receive_codecs=codecs,
                identity=identity,
                app_data=app_data,
                attributes=request.attributes,
            )
        except RoomFull as exc:
            raise ProtocolError("room_full", str(exc)) from None
        peer.identity = identity
        self.peer, self.room = peer, room
        logs.room_id.set(room.id)  # every line logged for this connection names them
        logs.peer_id.set(peer.id)
        log.info("peer joined from %s (%d in the room)", self.remote, len(room.peers))
        recording = room.recording_state()
        return {
            "peerId": peer.id,
            "room": room.id,
            "self": peer.info(),
            "peers": room.peer_infos(but=peer),
            "recording": recording if recording and recording.get("recording") else None,
            # TURN relays with credentials for this peer ([] when none are configured)
            "iceServers": ice_servers(self.server.config.turn, peer.id),
        }

    async def _m_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        peer = self._joined()
        sdp = _param(params, "sdp", str)
        plugins = self.server.plugins
        if plugins.overrides("authorize_publish"):
            published = {p.kind for p in peer.producers.values()}
            for kind in sending_kinds(sdp):
                if kind in published:
                    continue
                try:
                    await plugins.gate("authorize_publish", peer, kind)
                except Denied as denied:
                    self.server.count_rejected(f"publish:{denied.code}")
                    raise ProtocolError(denied.code, denied.message) from None
        return peer.publish(sdp)

    async def _m_startRecording(self, params: dict[str, Any]) -> dict[str, Any]:
        peer, room = self._joined_room()
        if not self.server.config.recording.signaling:
            raise ProtocolError("not_permitted", "recordings are not started over signaling here")
        ids = _param(params, "producerIds", list, required=False, default=None)
        if ids is not None and (
            len(ids) > 64 or not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids)
        ):
            raise ProtocolError(
                "invalid_params", "params.producerIds must be a list of at most 64 producer ids"
            )
        try:
            recording = await room.start_recording(ids, by=peer.id)
        except Denied as denied:
            self.server.count_rejected(f"recording:{denied.code}")
            raise ProtocolError(denied.code, denied.message) from None
        except RecordingError as exc:
            raise ProtocolError(exc.code, exc.message) from None
        return recording.info()

    async def _m_stopRecording(self, params: dict[str, Any]) -> dict[str, Any]:
        _peer, room = self._joined_room()
        if not self.server.config.recording.signaling:
            raise ProtocolError("not_permitted", "recordings are not stopped over signaling here")
        recording = room.stop_recording("stopped")
        if recording is not None:
            return recording.info()
        # a spread room recorded on another worker
        stopped = await room.stop_remote_recording()
        if stopped is None:
            raise ProtocolError("not_recording", "this room is not being recorded")
        return stopped

    async def _m_restartIce(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._joined().restart_ice()

    async def _m_answer(self, params: dict[str, Any]) -> dict[str, Any]:
        peer = self._joined()
        peer.apply_answer(_param(params, "sdp", str), _param(params, "revision", int))
        return {}

    def _producer(self, params: dict[str, Any]) -> Any:
        _peer, room = self._joined_room()
        producer_id = _param(params, "producerId", str)
        producer = room.router.producers.get(producer_id)
        if producer is None:
            raise ProtocolError("unknown_producer", f"no producer {producer_id!r} in this room")
        return producer

    async def _m_subscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        producer = self._producer(params)
        peer = self._joined()
        try:
            await self.server.plugins.gate("authorize_subscribe", peer, producer)
        except Denied as denied:
            self.server.count_rejected(f"subscribe:{denied.code}")
            raise ProtocolError(denied.code, denied.message) from None
        consumer = peer.subscribe(producer)
        return {"consumerId": consumer.id}

    async def _m_unsubscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        producer = self._producer(params)
        if not self._joined().unsubscribe(producer.id):
            raise ProtocolError("unknown_consumer", "not subscribed to this producer")
        return {}

    def _consumer(self, params: dict[str, Any]) -> Any:
        consumer_id = _param(params, "consumerId", str)
        consumer = self._joined().consumer(consumer_id)
        if consumer is None:
            raise ProtocolError("unknown_consumer", f"no consumer {consumer_id!r} of this peer")
        return consumer

    async def _m_pauseConsumer(self, params: dict[str, Any]) -> dict[str, Any]:
        self._consumer(params).pause()
        return {}

    async def _m_resumeConsumer(self, params: dict[str, Any]) -> dict[str, Any]:
        self._consumer(params).resume()
        return {}

    async def _m_setPreferredLayers(self, params: dict[str, Any]) -> dict[str, Any]:
        consumer = self._consumer(params)
        changes: dict[str, Any] = {
            k: params[k] for k in ("spatialLayer", "temporalLayer") if k in params
        }
        try:
            return set_preferred_layers(consumer, changes)
        except LayerError as exc:
            self.server.count_rejected(exc.reason)
            prefix = "params." if exc.reason == "layer_invalid" else ""
            raise ProtocolError("invalid_params", f"{prefix}{exc}") from None
        except ValueError as exc:
            self.server.count_rejected("layer_out_of_range")
            raise ProtocolError("invalid_params", f"params: {exc}") from None

    async def _m_closeProducer(self, params: dict[str, Any]) -> dict[str, Any]:
        peer = self._joined()
        producer = self._producer(params)
        if producer.app_data.get("peerId") != peer.id:
            raise ProtocolError("forbidden", "a peer may close only its own producers")
        producer.close()
        return {}

    async def _m_stats(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._joined().stats()

    async def _m_leave(self, params: dict[str, Any]) -> dict[str, Any]:
        peer = self._joined()
        self.peer = self.room = None
        peer.close()
        return {}
