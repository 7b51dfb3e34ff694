"""RoomLinks: in a worker process, the rooms the supervisor has spread over several workers.

A linked room pipes every producer of its own peers to each linked worker (existing ones at
once, later ones when published) and closes them there when they close; producers piped in
from other workers join the room like any other, so its peers subscribe to them. The
supervisor links both ways; workers talk to each other over their internal loopback API
(``/internal/...``, with the supervisor's per-run token):

- ``POST /internal/rooms/{room}/links`` (from the supervisor): pipe to that worker;
- ``POST .../piped`` and ``DELETE .../piped/{producer}``: a producer piped in, or gone;
- ``POST .../peers``: a peer joined or left over there;
- ``POST .../piped/{producer}/layers``: the simulcast layers the other side's peers want;
- ``POST .../recording``: the room's recording over there started, changed or stopped;
- ``POST .../recording/stop``: a peer over there stops the recording that runs here;
- ``POST .../unlink``: that worker's share of the room is empty.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
from aiohttp import web

from mediasrv.http.frontend import HttpFrontend
from mediasrv.http.json_body import BadRequest, bearer_ok, error, read_object
from mediasrv.media_server import MediaServer
from mediasrv.pipe_transport import MAX_LAYERS, PipeError, PipeTransport
from mediasrv.producer import Producer
from mediasrv.room import Room
from mediasrv.tasks import spawn
from mediasrv.worker import Worker

log = logging.getLogger("mediasrv.links")
TIMEOUT = aiohttp.ClientTimeout(total=5)
MAX_LINKS_PER_ROOM = 64
DELIVERY_ATTEMPTS = 3  # tries of one numbered message (layers wanted, recording state)
DELIVERY_RETRY_DELAY = 1.0  # seconds
RECORDING_KEYS = ("recording", "id", "producers", "startedAt", "stoppedAt", "reason")


def pipe_address(value: object) -> tuple[str, int]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not isinstance(value[0], str)
        or not isinstance(value[1], int)
        or not 0 < value[1] <= 65535
    ):
        raise ValueError("a UDP address is [host, port]")
    return (value[0], value[1])


class RoomLinks:
    def __init__(self, server: MediaServer) -> None:
        self.server = server
        self.links: dict[str, dict[tuple[str, int], int]] = {}  # room -> peer udp -> http port
        # the producers each room pipes toward each linked worker, and the pipe of each
        self.sending: dict[tuple[str, tuple[str, int]], list[tuple[PipeTransport, str]]] = {}
        self._watched: set[str] = set()
        self._numbered: dict[str, int] = {}  # a kind of message and subject -> its last number
        self._http: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=TIMEOUT)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _worker(self, room: Room) -> Worker:
        """The worker the room's router runs on."""
        return next(w for w in self.server.workers if w is room.router.worker)

    async def _call(
        self, method: str, http_port: int, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, str] | str:
        """One request to another worker's internal API: (status, text of the answer), or
        the name of what failed on the way (that worker may be gone)."""
        url = f"http://127.0.0.1:{http_port}{path}"
        headers = {"Authorization": f"Bearer {self.server.config.internal_token}"}
        try:
            async with self.http.request(method, url, json=body, headers=headers) as answer:
                return answer.status, await answer.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__

    # ---- this side ----

    async def link(self, room_id: str, udp: tuple[str, int], http_port: int) -> int:
        """Pipe the room's producers to the worker at ``udp`` (its internal API on
        ``http_port``), now and from now on; how many were piped now."""
        room = self.server.get_or_create_room(room_id)
        links = self.links.setdefault(room_id, {})
        if udp not in links and len(links) >= MAX_LINKS_PER_ROOM:
            raise ValueError(f"a room links to at most {MAX_LINKS_PER_ROOM} workers")
        links[udp] = http_port
        if room_id not in self._watched:
            self._watched.add(room_id)
            room.router.on("producer", lambda p: spawn(self._piped_out(room, p), "pipe out"))
            room.router.on("producerclose", lambda p: spawn(self._closed(room, p), "unpipe"))
            worker = self._worker(room)
            room.on("close", lambda: self._forget(room_id, worker))
            room.on("peerjoined", lambda peer: spawn(self._peer(room, joined=peer.info()), "peer"))
            room.on("peerleft", lambda peer: spawn(self._peer(room, left=peer.id), "peer"))
            room.on("recordingstate", lambda info: self._recording_state(room, info))
            room.remote_recording_stopper = lambda: self.stop_remote_recording(room)
        for peer in list(room.peers.values()):
            await self._tell(room, udp, http_port, {"joined": peer.info()})
        if room.recording is not None:  # running or stopped: a re-link corrects stale state
            self._post_recording(room, udp, room.recording.info())
        own = [p for p in room.router.producers.values() if "pipedFrom" not in p.app_data]
        for producer in own:
            await self._send(room, producer, udp, http_port)
        return len(own)

    def _forget(self, room_id: str, worker: Worker) -> None:
        """The room closed here (its last peer left): the linked workers stop piping to it."""
        links = self.links.pop(room_id, {})
        self._watched.discard(room_id)
        log.info("room %s closed here: %d linked worker(s) stop piping to it", room_id, len(links))
        for key in [k for k in self.sending if k[0] == room_id]:
            for pipe, producer_id in self.sending.pop(key):
                pipe.stop(producer_id)
        if links and not self.server.closed:
            udp = [worker.config.listen_ip, worker.port]
            spawn(self._tell_unlinked(room_id, udp, list(links.values())), "unlink")

    async def _tell_unlinked(self, room_id: str, udp: list[Any], http_ports: list[int]) -> None:
        for http_port in http_ports:
            await self._call("POST", http_port, f"/internal/rooms/{room_id}/unlink", {"udp": udp})

    def unlink(self, room_id: str, udp: tuple[str, int]) -> int:
        """The worker at ``udp`` has no peers of the room any more: stop piping to it."""
        self.links.get(room_id, {}).pop(udp, None)
        stopped = self.sending.pop((room_id, udp), [])
        for pipe, producer_id in stopped:
            pipe.stop(producer_id)
        room = self.server.rooms.get(room_id)
        if room is not None:
            for producer in list(room.router.producers.values()):
                if producer.app_data.get("pipedVia") == list(udp):
                    producer.close()  # what that worker's peers published: they have left
            for peer_id, info in list(room.remote_peers.items()):
                if info.get("via") == list(udp):
                    room.remote_peer_left(peer_id)
            room.remote_worker_gone(list(udp))
        log.info("room %s: no more piping to %s:%d (%d stream(s))", room_id, *udp, len(stopped))
        return len(stopped)

    async def _piped_out(self, room: Room, producer: Producer) -> None:
        if "pipedFrom" in producer.app_data:
            return  # from another worker: that worker sends it everywhere itself
        for udp, http_port in list(self.links.get(room.id, {}).items()):
            await self._send(room, producer, udp, http_port)

    async def _send(
        self, room: Room, producer: Producer, udp: tuple[str, int], http_port: int
    ) -> None:
        if producer.closed:
            return
        pipe = self._worker(room).pipe(udp)
        if producer.id in pipe.sent_ids():
            return  # linked twice while it was being sent (the unlink in between stops it)
        offer = pipe.send(producer)
        sending = self.sending.setdefault((room.id, udp), [])
        sending.append((pipe, producer.id))
        worker = self._worker(room)
        body = {"offer": offer, "from": [worker.config.listen_ip, worker.port]}
        answer = await self._call("POST", http_port, f"/internal/rooms/{room.id}/piped", body)
        if isinstance(answer, tuple) and answer[0] == 200:
            return
        log.warning("room %s: worker at %s did not take a piped producer: %s", room.id, udp,
                    answer[1] if isinstance(answer, tuple) else answer)  # fmt: skip
        # nobody receives it there: stop sending (a later link offers it again), unless an
        # unlink and a new link came meanwhile; a copy made there after all is closed
        if self.sending.get((room.id, udp)) is sending and (pipe, producer.id) in sending:
            sending.remove((pipe, producer.id))
            pipe.stop(producer.id)
            await self._call("DELETE", http_port, f"/internal/rooms/{room.id}/piped/{producer.id}")

    async def _peer(self, room: Room, **change: Any) -> None:
        for udp, http_port in list(self.links.get(room.id, {}).items()):
            await self._tell(room, udp, http_port, change)

    async def _tell(
        self, room: Room, udp: tuple[str, int], http_port: int, change: dict[str, Any]
    ) -> None:
        """A peer of the room joined or left here: the linked worker's peers hear of it."""
        worker = self._worker(room)
        body = {**change, "via": [worker.config.listen_ip, worker.port]}
        answer = await self._call("POST", http_port, f"/internal/rooms/{room.id}/peers", body)
        if isinstance(answer, str):
            log.warning("room %s: cannot tell %s of a peer: %s", room.id, udp, answer)

    def _recording_state(self, room: Room, info: dict[str, Any]) -> None:
        """The room's recording here started, changed or stopped: the linked workers' peers
        are told (the targets taken now: a stop as the room closes comes before its links
        go)."""
        for udp in list(self.links.get(room.id, {})):
            self._post_recording(room, udp, info)

    def _post_recording(self, room: Room, udp: tuple[str, int], info: dict[str, Any]) -> None:
        worker = self._worker(room)
        body = {"info": info, "via": [worker.config.listen_ip, worker.port]}
        key = f"recording|{room.id}|{udp[0]}:{udp[1]}"
        self._deliver(key, room.id, udp, f"/internal/rooms/{room.id}/recording", body)

    async def stop_remote_recording(self, room: Room) -> dict[str, Any] | None:
        """Stop the recording another worker of this spread room runs (a peer here asked);
        its info, or None when there is none to stop."""
        via = room.remote_recording_via
        recording = room.remote_recording
        if via is None or not recording or not recording.get("recording"):
            return None
        http_port = self.links.get(room.id, {}).get((via[0], via[1]))
        if http_port is None:
            return None
        answer = await self._call("POST", http_port, f"/internal/rooms/{room.id}/recording/stop")
        if not isinstance(answer, tuple) or answer[0] != 200:
            return None
        try:
            found = json.loads(answer[1])
        except ValueError:
            return None
        return found if isinstance(found, dict) else None

    async def _closed(self, room: Room, producer: Producer) -> None:
        if "pipedFrom" in producer.app_data:
            return
        for key in [k for k in self.sending if k[0] == room.id]:
            kept = [(pipe, pid) for pipe, pid in self.sending[key] if pid != producer.id]
            self.sending[key] = kept
        for http_port in list(self.links.get(room.id, {}).values()):
            # a failure: that worker is gone, and its room with it
            await self._call("DELETE", http_port, f"/internal/rooms/{room.id}/piped/{producer.id}")

    # ---- the other side ----

    def receive(self, room_id: str, offer: object, source: tuple[str, int]) -> Producer:
        room = self.server.get_or_create_room(room_id)
        pipe = self._worker(room).pipe(source)
        producer = pipe.receive(offer, router=room.router)
        producer.app_data["pipedVia"] = list(source)
        if producer.simulcast:
            key = f"layers|{producer.id}"
            producer.once("close", lambda: self._numbered.pop(key, None))
            producer.on(
                "layerswanted",
                lambda active: self._layers_wanted(room, producer, source, key, active),
            )
        return producer

    def _layers_wanted(
        self,
        room: Room,
        producer: Producer,
        source: tuple[str, int],
        key: str,
        active: list[bool],
    ) -> None:
        """The layers this worker's peers want of a piped simulcast producer: the sending
        worker pauses the others on its pipe, and its publisher may stop encoding them."""
        if producer.closed:
            return
        worker = self._worker(room)
        path = f"/internal/rooms/{room.id}/piped/{producer.app_data['pipedFrom']}/layers"
        body = {"active": active, "to": [worker.config.listen_ip, worker.port]}
        self._deliver(key, room.id, source, path, body)

    def _deliver(
        self, key: str, room_id: str, udp: tuple[str, int], path: str, body: dict[str, Any]
    ) -> None:
        """POST ``body`` to the linked worker at ``udp``, numbered (``seq``: the receiver
        ignores an older message arriving late), and again while it fails and nothing newer
        under ``key`` replaced it. Events that carry state fire on changes only, so a lost
        message would leave the other side wrong for good. The number is taken now, in the
        order of the events."""
        seq = self._numbered[key] = self._numbered.get(key, 0) + 1
        spawn(self._post_numbered(key, seq, room_id, udp, path, {**body, "seq": seq}), key)

    async def _post_numbered(
        self,
        key: str,
        seq: int,
        room_id: str,
        udp: tuple[str, int],
        path: str,
        body: dict[str, Any],
    ) -> None:
        for attempt in range(DELIVERY_ATTEMPTS):
            http_port = self.links.get(room_id, {}).get(udp)
            if http_port is None or self._numbered.get(key) != seq:
                return
            answer = await self._call("POST", http_port, path, body)
            if isinstance(answer, tuple) and answer[0] < 500:
                return  # done, or refused for good (gone over there)
            failure = answer[0] if isinstance(answer, tuple) else answer
            log.warning("room %s: %s to %s:%d failed (attempt %d): %s", room_id, path, *udp,
                        attempt + 1, failure)  # fmt: skip
            await asyncio.sleep(DELIVERY_RETRY_DELAY)

    def layers_wanted(
        self, producer_id: str, to: tuple[str, int], active: object, seq: object = None
    ) -> int:
        """The worker at ``to`` wants these layers of a producer piped to it from here
        (``seq``: the message's number, an older one than the last is ignored)."""
        if (
            not isinstance(active, list)
            or not 0 < len(active) <= MAX_LAYERS
            or not all(isinstance(a, bool) for a in active)
        ):
            raise ValueError(f"active must be a list of 1..{MAX_LAYERS} booleans")
        if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 0):
            raise ValueError("seq must be a non-negative integer")
        for worker in self.server.workers:
            pipe = worker.find_pipe(to)
            if pipe is not None and producer_id in pipe.sent_ids():
                return pipe.set_layers_wanted(producer_id, active, seq=seq)
        raise LookupError("no pipe carries that producer to that worker")

    def unpipe(self, room_id: str, source_producer: str) -> bool:
        room = self.server.rooms.get(room_id)
        if room is None:
            return False
        found = [p for p in room.router.producers.values()
                 if p.app_data.get("pipedFrom") == source_producer]  # fmt: skip
        for producer in found:
            producer.close()
        return bool(found)


def serve_links(server: MediaServer, frontend: HttpFrontend) -> RoomLinks:
    """The links of a worker process's spread rooms: their internal API on the frontend's
    application (behind ``internal_token``), closed with it."""
    links = RoomLinks(server)
    frontend.app.add_routes(internal_routes(server, links))

    async def close(_app: web.Application) -> None:
        await links.close()

    frontend.app.on_cleanup.append(close)
    return links


def internal_routes(server: MediaServer, links: RoomLinks) -> list[Any]:
    token = server.config.internal_token or ""

    def guarded(handler: Any) -> Any:
        async def run(request: web.Request) -> web.StreamResponse:
            if not token or not bearer_ok(request, token):
                return error(401, "unauthorized", "the internal API needs the supervisor's token")
            try:
                return await handler(request)  # type: ignore[no-any-return]
            except BadRequest as bad:
                return error(bad.status, bad.code, bad.message)
            except (PipeError, ValueError) as exc:
                return error(400, "invalid_request", str(exc))

        return run

    async def link(request: web.Request) -> web.Response:
        body = await read_object(request)
        http_port = body.get("http")
        if not isinstance(http_port, int) or not 0 < http_port <= 65535:
            raise BadRequest("http must be the other worker's internal port")
        piped = await links.link(request.match_info["room"], pipe_address(body.get("udp")),
                                 http_port)  # fmt: skip
        return web.json_response({"piped": piped})

    async def piped(request: web.Request) -> web.Response:
        body = await read_object(request)
        producer = links.receive(request.match_info["room"], body.get("offer"),
                                 pipe_address(body.get("from")))  # fmt: skip
        return web.json_response({"producerId": producer.id})

    async def peers(request: web.Request) -> web.Response:
        body = await read_object(request)
        via = list(pipe_address(body.get("via")))
        joined, left = body.get("joined"), body.get("left")
        if isinstance(joined, dict):
            # the room is made here if need be: the link that makes it may still be on its way
            room = server.get_or_create_room(request.match_info["room"])
            room.remote_peer_joined(joined, via)
        elif isinstance(left, str):
            # a late leave must not make an empty room here that nothing would close
            found = server.rooms.get(request.match_info["room"])
            if found is None:
                return web.json_response({"peers": 0})
            room = found
            room.remote_peer_left(left)
        else:
            raise BadRequest("joined (a peer) or left (a peer id) is required")
        return web.json_response({"peers": len(room.remote_peers)})

    async def unlink(request: web.Request) -> web.Response:
        body = await read_object(request)
        stopped = links.unlink(request.match_info["room"], pipe_address(body.get("udp")))
        return web.json_response({"stopped": stopped})

    async def layers(request: web.Request) -> web.Response:
        body = await read_object(request)
        try:
            to = pipe_address(body.get("to"))
            changed = links.layers_wanted(
                request.match_info["producer"], to, body.get("active"), body.get("seq")
            )
        except LookupError as missing:
            return error(404, "not_found", str(missing))
        return web.json_response({"changed": changed})

    async def recording(request: web.Request) -> web.Response:
        body = await read_object(request)
        info = body.get("info")
        if not isinstance(info, dict) or not isinstance(info.get("recording"), bool):
            raise BadRequest("info must be a recording's info ({recording: bool, ...})")
        room = server.rooms.get(request.match_info["room"])
        if room is None:
            return error(404, "unknown_room", "no share of that room here")
        via = list(pipe_address(body.get("via")))
        seq = body.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise BadRequest("seq must be a non-negative integer")
        fresh = room.remote_recording_changed({k: info.get(k) for k in RECORDING_KEYS}, via, seq)
        return web.json_response({"peers": len(room.peers), "applied": fresh})

    async def stop_recording(request: web.Request) -> web.Response:
        room = server.rooms.get(request.match_info["room"])
        stopped = room.stop_recording("stopped") if room is not None else None
        if stopped is None:
            return error(404, "not_recording", "no recording of that room runs here")
        return web.json_response(stopped.info())

    async def unpipe(request: web.Request) -> web.Response:
        closed = links.unpipe(request.match_info["room"], request.match_info["producer"])
        return web.json_response({"closed": closed})

    return [
        web.post("/internal/rooms/{room}/links", guarded(link)),
        web.post("/internal/rooms/{room}/piped", guarded(piped)),
        web.post("/internal/rooms/{room}/unlink", guarded(unlink)),
        web.post("/internal/rooms/{room}/peers", guarded(peers)),
        web.post("/internal/rooms/{room}/piped/{producer}/layers", guarded(layers)),
        web.post("/internal/rooms/{room}/recording", guarded(recording)),
        web.post("/internal/rooms/{room}/recording/stop", guarded(stop_recording)),
        web.delete("/internal/rooms/{room}/piped/{producer}", guarded(unpipe)),
    ]
