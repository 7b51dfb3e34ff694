"""The Python client SDK on aiortc — the same shape as the browser's mediasrv-client.js.

    client = await Client.connect("ws://127.0.0.1:8080/ws", token="t", room="r1",
                                  display_name="bot")
    client.on("track", lambda track, info: ...)       # info: consumerId, producerId, peerId, kind
    await client.publish([audio_track, video_track])
    client.on("data", lambda label, message, peer_id: ...)
    client.send_data("chat", "hello")
    await client.close()

Chat (with the server's chat plugin, plugins/chat):

    client.chat.on("message", lambda message: ...)     # also edits and deletions (same id)
    message_id = await client.chat.send("hello")        # resolves on the server's ack
    await client.chat.edit(message_id, "hello all")
    client.chat.history                                  # every message seen, by id
    message_id = await client.chat.upload(png_bytes, "photo.png")   # an attachment
    data = await client.chat.download(sha256_hex)

Other events: ``peerJoined``, ``peerLeft``, ``producerAdded``, ``producerClosed``,
``consumerClosed``, ``activeSpeaker``, ``reconnect`` (the server's worker holding the room went
away: connect again) (each with the notification's params), ``disconnected``, ``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from base64 import b64decode, b64encode
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.rtcdatachannel import RTCDataChannel
from pyee.asyncio import AsyncIOEventEmitter

from mediasrv.tasks import spawn

log = logging.getLogger("mediasrv.client")

CONTROL_LABEL = "mediasrv-control"
CHAT_LABEL = "chat"
UPLOAD_CHUNK = 32 * 1024  # bytes per upload-chunk (base64 keeps a message under 64 KiB)
UPLOAD_WINDOW = 8  # chunks in flight before waiting for upload-progress


class SignalingError(Exception):
    """An error response from the server: ``code`` as in docs/protocol.md."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class ChatError(Exception):
    """The chat plugin refused a request: ``code`` as in plugins/chat/README.md."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class Chat(AsyncIOEventEmitter):
    """The room's chat (the "chat" data channel of the chat plugin), opened on first use.

    Events: ``message`` (a message or system message dict, again when edited or deleted),
    ``typing`` (peer id), ``read`` and ``delivered`` (the receipt dicts), ``history`` (a page
    of history has arrived: the end marker dict), ``refused`` (error dicts not tied to a
    request, e.g. ``read_denied``; also kept in ``errors``).
    """

    def __init__(self, client: Client) -> None:
        super().__init__()
        self._client = client
        self._channel: RTCDataChannel | None = None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._upload_events: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._downloads: dict[str, tuple[bytearray, str]] = {}  # sha256 -> (data, client id)
        self._by_id: dict[int, dict[str, Any]] = {}
        self._loaded: asyncio.Event = asyncio.Event()
        self.last_id = 0  # the highest message id seen: history is asked from here on open
        self.errors: list[dict[str, Any]] = []
        self._denied: ChatError | None = None

    @property
    def history(self) -> list[dict[str, Any]]:
        """Every message seen (in its latest version), in server order."""
        return [self._by_id[i] for i in sorted(self._by_id)]

    async def open(self, since: int | None = None) -> None:
        """Open the channel (if not yet) and wait for the history since ``since`` (default: the
        last seen id) to arrive."""
        if since is not None:
            self.last_id = max(self.last_id, since)
        self._ensure()
        await asyncio.wait_for(self._loaded.wait(), self._client._timeout)
        if self._denied is not None:
            raise self._denied

    def _ensure(self) -> RTCDataChannel:
        if self._channel is not None:
            return self._channel
        channel = self._client.send_pc.createDataChannel(CHAT_LABEL)
        self._channel = channel
        self._client._channels[CHAT_LABEL] = channel
        channel.on("message", self._on_message)
        channel.on("open", lambda: self._write({"type": "history", "since": self.last_id}))
        return channel

    def _write(self, message: dict[str, Any]) -> None:
        channel = self._ensure()
        text = json.dumps(message)
        if channel.readyState == "open":
            channel.send(text)
        else:
            channel.on("open", lambda: channel.send(text))

    async def _request(self, message: dict[str, Any]) -> int:
        client_id = message.setdefault("clientId", uuid.uuid4().hex)
        fut = self._pending.get(client_id)
        if fut is None or fut.done():
            fut = asyncio.get_running_loop().create_future()
            self._pending[client_id] = fut
        self._write(message)
        try:
            return int(await asyncio.wait_for(asyncio.shield(fut), self._client._timeout))
        finally:
            if fut.done():
                self._pending.pop(client_id, None)

    async def send(self, text: str, *, client_id: str | None = None) -> int:
        """Post a message; its server id once it is stored. ``client_id`` makes a retry
        idempotent (the same id twice is stored once). Raises ChatError on refusal."""
        message: dict[str, Any] = {"type": "send", "text": text}
        if client_id is not None:
            message["clientId"] = client_id
        return await self._request(message)

    async def edit(self, message_id: int, text: str) -> None:
        await self._request({"type": "edit", "id": message_id, "text": text})

    async def delete(self, message_id: int) -> None:
        await self._request({"type": "delete", "id": message_id})

    def typing(self) -> None:
        self._write({"type": "typing"})

    # ---- attachments ----

    async def _next_event(
        self, queue: asyncio.Queue[dict[str, Any]], fut: asyncio.Future[Any]
    ) -> dict[str, Any] | None:
        """The next upload-ready/upload-progress; None once the upload is acked; raises the
        refusal."""
        if not queue.empty():
            return queue.get_nowait()
        getter = asyncio.ensure_future(queue.get())
        try:
            done, _ = await asyncio.wait(
                {getter, fut}, timeout=self._client._timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not getter.done():
                getter.cancel()
        if getter in done:
            return getter.result()
        if fut in done:
            fut.result()
            return None
        raise TimeoutError("no upload progress")

    async def upload(self, data: bytes, name: str, *, client_id: str | None = None) -> int:
        """Post an attachment; the message id once it is stored. If the server has part of
        this file from this sender (an upload cut off, e.g. by a reconnect), it continues from
        there. Raises ChatError on refusal (e.g. ``type_not_allowed``)."""
        client_id = client_id or uuid.uuid4().hex
        sha256 = hashlib.sha256(data).hexdigest()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[client_id] = fut
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._upload_events[client_id] = queue
        try:
            self._write(
                {
                    "type": "upload-start",
                    "clientId": client_id,
                    "name": name,
                    "size": len(data),
                    "sha256": sha256,
                }
            )
            event = await self._next_event(queue, fut)
            if event is not None:
                upload_id, acked = event["uploadId"], int(event["offset"])
                sent = acked
                while acked < len(data):
                    while sent < len(data) and sent - acked < UPLOAD_WINDOW * UPLOAD_CHUNK:
                        chunk = data[sent : sent + UPLOAD_CHUNK]
                        self._write(
                            {
                                "type": "upload-chunk",
                                "uploadId": upload_id,
                                "offset": sent,
                                "data": b64encode(chunk).decode(),
                            }
                        )
                        sent += len(chunk)
                    event = await self._next_event(queue, fut)
                    if event is None:
                        break
                    acked = max(acked, int(event["offset"]))
            return int(await asyncio.wait_for(asyncio.shield(fut), self._client._timeout))
        finally:
            self._pending.pop(client_id, None)
            self._upload_events.pop(client_id, None)

    async def download(self, sha256: str) -> bytes:
        """The bytes of an attachment posted in this room (ChatError ``not_found``
        otherwise)."""
        client_id = uuid.uuid4().hex
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[client_id] = fut
        self._downloads[sha256] = (bytearray(), client_id)
        try:
            self._write({"type": "download", "sha256": sha256, "clientId": client_id})
            result = await asyncio.wait_for(asyncio.shield(fut), self._client._timeout * 3)
            return bytes(result)
        finally:
            self._pending.pop(client_id, None)
            known = self._downloads.get(sha256)
            if known is not None and known[1] == client_id:
                del self._downloads[sha256]

    async def file_url(self, sha256: str) -> str:
        """A short-lived signed HTTP URL of an attachment posted in this room."""
        client_id = uuid.uuid4().hex
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[client_id] = fut
        try:
            self._write({"type": "file-url", "sha256": sha256, "clientId": client_id})
            path = str(await asyncio.wait_for(asyncio.shield(fut), self._client._timeout))
        finally:
            self._pending.pop(client_id, None)
        base = self._client.url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
        return urljoin(base, path)

    def read(self, up_to: int) -> None:
        self._write({"type": "read", "upTo": up_to})

    def _on_message(self, raw: str | bytes) -> None:
        self._client.emit("data", CHAT_LABEL, raw, "")
        try:
            message = json.loads(raw)
            kind = message["type"]
        except (ValueError, TypeError, KeyError):
            log.warning("chat: unreadable message from the server")
            return
        if kind in ("message", "system"):
            message_id = int(message["id"])
            known = self._by_id.get(message_id)
            if known == message:
                return  # a duplicate (history overlapping a live message)
            self._by_id[message_id] = message
            self.last_id = max(self.last_id, message_id)
            self.emit("message", message)
        elif kind == "ack":
            fut = self._pending.get(message.get("clientId"))
            if fut is not None and not fut.done():
                fut.set_result(int(message["id"]))
        elif kind == "error":
            fut = self._pending.get(message.get("clientId"))
            if fut is not None and not fut.done():
                fut.set_exception(ChatError(message.get("code", "?"), message.get("message", "")))
            else:
                self.errors.append(message)
                if message.get("code") == "read_denied":
                    self._denied = ChatError("read_denied", message.get("message", ""))
                    self._loaded.set()
                self.emit("refused", message)
        elif kind == "history":
            if message.get("more"):
                self._write({"type": "history", "since": message["last"]})
            else:
                self._loaded.set()
            self.emit("history", message)
        elif kind in ("upload-ready", "upload-progress"):
            queue = self._upload_events.get(message.get("clientId"))
            if queue is not None:
                queue.put_nowait(message)
        elif kind == "download-chunk":
            download = self._downloads.get(message.get("sha256"))
            if download is not None and int(message.get("offset", -1)) == len(download[0]):
                download[0].extend(b64decode(message.get("data", "")))
        elif kind == "download-end":
            download = self._downloads.get(message.get("sha256"))
            if download is not None:
                fut = self._pending.get(download[1])
                if fut is not None and not fut.done():
                    fut.set_result(bytes(download[0]))
        elif kind == "file-url":
            fut = self._pending.get(message.get("clientId"))
            if fut is not None and not fut.done():
                fut.set_result(message["url"])
        elif kind == "typing":
            self.emit("typing", message.get("peerId"))
        elif kind in ("read", "delivered"):
            self.emit(kind, message)


def _capabilities(kind: str) -> list[Any]:
    capabilities = RTCRtpReceiver.getCapabilities(kind)
    return list(capabilities.codecs) if capabilities is not None else []


async def _wait_connected(pc: RTCPeerConnection, limit: float) -> None:
    if pc.connectionState == "connected":
        return
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def changed() -> None:
        if done.done():
            return
        if pc.connectionState == "connected":
            done.set_result(None)
        elif pc.connectionState in ("failed", "closed"):
            done.set_exception(ConnectionError(f"peer connection {pc.connectionState}"))

    pc.on("connectionstatechange", changed)
    try:
        await asyncio.wait_for(done, limit)
    finally:
        pc.remove_listener("connectionstatechange", changed)


class Client(AsyncIOEventEmitter):
    def __init__(
        self,
        session: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        request_timeout: float,
        configuration: RTCConfiguration | None = None,
    ) -> None:
        super().__init__()
        self._session = session
        self._ws = ws
        self._timeout = request_timeout
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._negotiation = asyncio.Lock()
        # server offers wait until connect() has returned, so listeners are in place for 'track'
        self._ready = asyncio.Event()
        self.tracks: list[tuple[MediaStreamTrack, dict[str, Any]]] = []
        self._configuration = configuration or RTCConfiguration(iceServers=[])
        self.send_pc = RTCPeerConnection(self._configuration)
        self.recv_pc: RTCPeerConnection | None = None
        self._control: RTCDataChannel = self.send_pc.createDataChannel(CONTROL_LABEL)
        self.send_pc.on("datachannel", self._on_datachannel)
        self._channels: dict[str, RTCDataChannel] = {}
        self._consumers_by_mid: dict[str, dict[str, Any]] = {}
        self.peer_id = ""
        self.room = ""
        self.url = ""  # the WebSocket URL connected to
        self.peers: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}  # how the others see this peer (displayName, attributes)
        # the room's recording while one runs (recordingState), else None
        self.recording: dict[str, Any] | None = None
        self.producers: list[dict[str, Any]] = []
        self.closed = False
        self.chat = Chat(self)

    async def _add_ice_servers(self, servers: list[dict[str, Any]]) -> None:
        """The server's TURN relays (with this peer's credentials, from the join result) after
        the caller's own ice_servers. aiortc takes a configuration only when a connection is
        made, so the send connection, not negotiated yet, is made again with them."""
        if not servers:
            return
        extra = []
        for server in servers:
            urls = server.get("urls")
            if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
                raise ValueError(f"join result: malformed iceServers entry {server!r}")
            extra.append(RTCIceServer(urls, server.get("username"), server.get("credential")))
        self._configuration = RTCConfiguration(
            iceServers=[*(self._configuration.iceServers or []), *extra],
            iceTransportPolicy=self._configuration.iceTransportPolicy,
            bundlePolicy=self._configuration.bundlePolicy,
        )
        unused = self.send_pc
        self.send_pc = RTCPeerConnection(self._configuration)
        self._control = self.send_pc.createDataChannel(CONTROL_LABEL)
        self.send_pc.on("datachannel", self._on_datachannel)
        await unused.close()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        token: str,
        room: str,
        display_name: str = "",
        auto_subscribe: bool = True,
        request_timeout: float = 10.0,
        ice_servers: list[RTCIceServer] | None = None,
        relay_only: bool = False,
        join_params: Mapping[str, Any] | None = None,
    ) -> Client:
        """Join a room. The server is ICE-lite with UDP (and TCP) candidates: no STUN server is
        needed (aiortc's default would ask Google's); ice_servers adds the caller's own, and the
        TURN relays the server is configured with come with the join result; relay_only uses
        nothing but relayed candidates (iceTransportPolicy "relay").
        ``join_params`` adds plugins' join parameters (e.g. ``{"onBehalfOf": {...}}``)."""
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(
                url, max_msg_size=1 << 20, timeout=aiohttp.ClientWSTimeout(ws_close=2.0)
            )
        except Exception:
            await session.close()
            raise
        policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
        configuration = RTCConfiguration(iceServers=ice_servers or [], iceTransportPolicy=policy)
        client = cls(session, ws, request_timeout, configuration)
        client.url = url
        client._reader = asyncio.create_task(client._read())
        try:
            codecs = sorted(
                {
                    c.mimeType
                    for kind in ("audio", "video")
                    for c in _capabilities(kind)
                    if c.mimeType.split("/")[1].lower() not in ("rtx", "red", "ulpfec")
                }
            )
            result = await client.request(
                "join",
                {
                    **(join_params or {}),
                    "token": token,
                    "room": room,
                    "displayName": display_name,
                    "autoSubscribe": auto_subscribe,
                    "codecs": codecs,
                },
            )
            client.peer_id = result["peerId"]
            client.info = result.get("self", {})
            client.recording = result.get("recording")
            client.room = result["room"]
            client.peers = result["peers"]
            await client._add_ice_servers(result.get("iceServers") or [])
            await client._negotiate_send()
            # aiortc starts the senders of a renegotiation only once DTLS is up: wait for it
            await _wait_connected(client.send_pc, request_timeout)
        except BaseException:
            await client.close()
            raise
        client._ready.set()
        return client

    # ---- signaling ----

    async def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        if self.closed:
            raise ConnectionError("the client is closed")
        self._next_id += 1
        request_id = self._next_id
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        await self._ws.send_str(
            json.dumps({"id": request_id, "method": method, "params": params or {}})
        )
        try:
            return await asyncio.wait_for(fut, self._timeout)
        finally:
            self._pending.pop(request_id, None)

    async def _read(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                message = json.loads(msg.data)
                if "method" in message and "id" not in message:
                    await self._notification(message["method"], message.get("params", {}))
                    continue
                fut = self._pending.get(message.get("id"))
                if fut is None or fut.done():
                    if not message.get("ok", True):
                        log.warning("server error: %s", message.get("error"))
                    continue
                if message.get("ok"):
                    fut.set_result(message.get("result"))
                else:
                    error = message.get("error") or {}
                    fut.set_exception(
                        SignalingError(error.get("code", "?"), error.get("message", ""))
                    )
        except Exception:
            log.exception("signaling reader failed")
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("signaling closed"))
            if not self.closed:
                self.emit("disconnected")

    async def _notification(self, method: str, params: dict[str, Any]) -> None:
        if method == "offer":
            spawn(self._answer_offer(params), "answer offer")
            return
        if method == "recordingState":
            self.recording = params if params.get("recording") else None
        if method == "consumerClosed":
            # the remote track ends: its recv() raises MediaStreamError, as when a peer leaves
            for _track, info in self.tracks:
                if info.get("consumerId") == params.get("consumerId") and self.recv_pc:
                    for transceiver in self.recv_pc.getTransceivers():
                        if transceiver.mid == info.get("mid"):
                            spawn(transceiver.receiver.stop(), "stop receiver")
        self.emit(method, params)

    # ---- publishing ----

    async def _negotiate_send(self) -> dict[str, Any]:
        async with self._negotiation:
            offer = await self.send_pc.createOffer()
            await self.send_pc.setLocalDescription(offer)
            result: dict[str, Any] = await self.request(
                "publish", {"sdp": self.send_pc.localDescription.sdp}
            )
            await self.send_pc.setRemoteDescription(RTCSessionDescription(result["sdp"], "answer"))
            self.producers = result["producers"]
            return result

    async def publish(
        self, tracks: list[MediaStreamTrack], *, video_codec: str | None = None
    ) -> list[dict[str, Any]]:
        """Send tracks; returns the producers the server created for this peer.

        video_codec (e.g. ``"video/H264"``) makes the video tracks offer only that codec. When
        the server refuses (e.g. a plugin's ``authorize_publish``), the tracks are taken back
        (their m-lines stay inactive) and the error is raised: later publishes still work.
        """
        added = []
        for track in tracks:
            sender = self.send_pc.addTrack(track)
            added.append(sender)
            if video_codec and track.kind == "video":
                capabilities = RTCRtpSender.getCapabilities("video").codecs
                chosen = [c for c in capabilities if c.mimeType.lower() == video_codec.lower()]
                if not chosen:
                    raise ValueError(f"aiortc cannot send {video_codec}")
                rtx = [c for c in capabilities if c.mimeType.lower() == "video/rtx"]
                for transceiver in self.send_pc.getTransceivers():
                    if transceiver.sender is sender:
                        transceiver.setCodecPreferences(chosen + rtx)
        try:
            result = await self._negotiate_send()
        except SignalingError:
            # aiortc has no rollback: the next offer carries these m-lines as inactive
            for transceiver in self.send_pc.getTransceivers():
                if transceiver.sender in added:
                    transceiver.direction = "inactive"
                    transceiver.sender.replaceTrack(None)
            raise
        return list(result["producers"])

    async def unpublish(self, track: MediaStreamTrack) -> None:
        for sender in self.send_pc.getSenders():
            if sender.track is track:
                for transceiver in self.send_pc.getTransceivers():
                    if transceiver.sender is sender:
                        transceiver.direction = "inactive"
                        sender.replaceTrack(None)
        await self._negotiate_send()

    # ---- subscribing ----

    async def _answer_offer(self, params: dict[str, Any]) -> None:
        try:
            await self._ready.wait()
            async with self._negotiation:
                if self.closed:
                    return
                if self.recv_pc is None:
                    self.recv_pc = RTCPeerConnection(self._configuration)
                    self.recv_pc.on("track", self._on_track)
                for info in params.get("consumers", []):
                    self._consumers_by_mid[info["mid"]] = info
                await self.recv_pc.setRemoteDescription(
                    RTCSessionDescription(params["sdp"], "offer")
                )
                answer = await self.recv_pc.createAnswer()
                await self.recv_pc.setLocalDescription(answer)
                await self.request(
                    "answer",
                    {"sdp": self.recv_pc.localDescription.sdp, "revision": params["revision"]},
                )
                await _wait_connected(self.recv_pc, self._timeout)
        except Exception:
            log.exception("answering the server's offer failed")

    def _on_track(self, track: MediaStreamTrack) -> None:
        assert self.recv_pc is not None
        mid = next(
            (t.mid for t in self.recv_pc.getTransceivers() if t.receiver.track is track), None
        )
        info = self._consumers_by_mid.get(mid or "", {"mid": mid})
        self.tracks.append((track, info))
        self.emit("track", track, info)

    async def subscribe(self, producer_id: str) -> str:
        result = await self.request("subscribe", {"producerId": producer_id})
        return str(result["consumerId"])

    async def unsubscribe(self, producer_id: str) -> None:
        await self.request("unsubscribe", {"producerId": producer_id})

    async def pause_consumer(self, consumer_id: str) -> None:
        await self.request("pauseConsumer", {"consumerId": consumer_id})

    async def start_recording(self, producer_ids: list[str] | None = None) -> dict[str, Any]:
        """Record the room (every producer, now and later) or these producers; plugins may
        refuse (SignalingError, e.g. ``consent_missing``). Every peer hears ``recordingState``."""
        params = {"producerIds": producer_ids} if producer_ids is not None else {}
        result: dict[str, Any] = await self.request("startRecording", params)
        return result

    async def stop_recording(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("stopRecording", {})
        return result

    async def resume_consumer(self, consumer_id: str) -> None:
        await self.request("resumeConsumer", {"consumerId": consumer_id})

    async def set_preferred_layer(self, consumer_id: str, spatial_layer: int | None) -> None:
        """The highest simulcast layer (0: lowest) to receive on this consumer; None: any."""
        await self.request(
            "setPreferredLayers", {"consumerId": consumer_id, "spatialLayer": spatial_layer}
        )

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("stats")
        return result

    # ---- data ----

    def send_data(self, label: str, message: str | bytes) -> None:
        """Send on the channel with this label (opened on first use)."""
        channel = self._channels.get(label)
        if channel is None:
            channel = self.send_pc.createDataChannel(label)
            self._channels[label] = channel
            # answers on our own channel come from the server (e.g. a plugin that owns the label)
            channel.on("message", lambda message: self.emit("data", label, message, ""))
        if channel.readyState == "open":
            channel.send(message)
        else:
            channel.on("open", lambda: channel.send(message))

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        label, peer_id = channel.label, channel.protocol
        channel.on("message", lambda message: self.emit("data", label, message, peer_id))

    # ---- end ----

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            if not self._ws.closed:
                await asyncio.wait_for(self.request_nowait_leave(), 2)
        await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self.send_pc.close()
        if self.recv_pc is not None:
            await self.recv_pc.close()
        await self._session.close()
        self.emit("close")

    async def request_nowait_leave(self) -> None:
        self._next_id += 1
        await self._ws.send_str(json.dumps({"id": self._next_id, "method": "leave", "params": {}}))
