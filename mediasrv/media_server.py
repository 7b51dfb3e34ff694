"""MediaServer: the embeddable server — its workers, rooms and plugins, and the frontends
clients reach it through.

server = MediaServer(ServerConfig(port=8080))
HttpFrontend(server)          # signaling, the client SDK, health, metrics, admin API
await server.start()          # workers bound, frontends listening
server.rooms                  # {room id: Room}
await server.close()
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest

from mediasrv.config import DEFAULT_CONFIG, ServerConfig
from mediasrv.events import Emitter
from mediasrv.plugin_manager import PluginManager
from mediasrv.room import Room
from mediasrv.worker import Worker

log = logging.getLogger("mediasrv")


class Frontend(Protocol):
    """A way for clients to reach the server (:class:`mediasrv.http.HttpFrontend`): it is
    added before :meth:`MediaServer.start`, starts once the workers run (before the plugins'
    ``setup``), and closes after the rooms and plugins, before the workers."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class TooManyRooms(Exception):
    pass


class MediaServer(Emitter):
    """Events: ``room`` (created), ``peerjoined`` / ``peerleft`` (room, peer), ``producer`` /
    ``producerclose`` (room, producer), ``recordingstarted`` (room, recording),
    ``recordingstopped`` (room, recording, reason), ``roomclose`` (room), ``close``."""

    def __init__(self, config: ServerConfig = DEFAULT_CONFIG) -> None:
        super().__init__()
        self.config = config
        self.workers: list[Worker] = []
        self.rooms: dict[str, Room] = {}
        self.frontends: list[Frontend] = []
        self.rejected: Counter[str] = Counter()  # requests refused, by reason
        # recordings: bytes written, records dropped, write errors (all recordings so far)
        self.recording_totals: Counter[str] = Counter()
        self.recordings_stopped: Counter[str] = Counter()  # by reason (its first word)
        self.plugins = PluginManager(self)
        for spec in config.plugins:
            self.plugins.load(spec.name, spec.config)
        # the server's Prometheus registry (no global state: several servers in one process
        # keep theirs apart); the HTTP frontend adds the server's collectors and serves it,
        # plugins may register theirs
        self.metrics = CollectorRegistry(auto_describe=False)
        # where the HTTP frontend listens (signaling, and the metrics when apart): set by it
        self.http_address: tuple[str, int] | None = None
        self.metrics_address: tuple[str, int] | None = None
        self.closed = False
        self.started = False
        self.draining = False

    def add_frontend(self, frontend: Frontend) -> None:
        """Start and close this frontend with the server (before :meth:`start`)."""
        if self.started:
            raise RuntimeError("frontends are added before the server starts")
        self.frontends.append(frontend)

    @property
    def ready(self) -> bool:
        """Started, not closing and not draining: new joins are welcome."""
        return self.started and not self.closed and not self.draining

    def metrics_text(self) -> bytes:
        """The Prometheus exposition of this server's metrics."""
        return generate_latest(self.metrics)

    @property
    def any_token(self) -> bool:
        """True when no tokens are configured: every signaling token is accepted."""
        return self.config.tokens is None

    async def start(self) -> None:
        if self.started:
            return
        self.started = True
        media = self.config.media
        for index in range(media.workers):
            port = media.rtc_port + index if media.rtc_port else 0
            worker = Worker(media, index, port)
            await worker.start()
            self.workers.append(worker)
        if self.any_token:
            log.warning(
                "no signaling tokens configured: any token is accepted "
                "(development default; set tokens before exposing the server)"
            )
        for frontend in self.frontends:
            await frontend.start()
        await self.plugins.start()

    def count_rejected(self, reason: str) -> None:
        self.rejected[reason] += 1

    def get_or_create_room(self, room_id: str) -> Room:
        room = self.rooms.get(room_id)
        if room is not None and not room.closed:
            return room
        if len(self.rooms) >= self.config.media.max_rooms:
            raise TooManyRooms(f"the server has its maximum of {self.config.media.max_rooms} rooms")
        worker = min(self.workers, key=lambda w: sum(len(r.transports) for r in w.routers.values()))
        room = Room(self, room_id, worker.create_router({"roomId": room_id}))
        self.rooms[room_id] = room
        # server-level events for plugins and embedders
        room.on("peerjoined", lambda peer: self.emit("peerjoined", room, peer))
        room.on("peerleft", lambda peer: self.emit("peerleft", room, peer))
        room.router.on("producer", lambda producer: self.emit("producer", room, producer))
        room.router.on("producerclose", lambda producer: self.emit("producerclose", room, producer))
        room.on("recording", lambda recording: self.emit("recordingstarted", room, recording))
        room.on(
            "recordingstop",
            lambda recording, reason: self.emit("recordingstopped", room, recording, reason),
        )
        room.on("close", lambda: self._room_closed(room))
        self.emit("room", room)
        return room

    def _room_closed(self, room: Room) -> None:
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]
        self.emit("roomclose", room)

    def stats(self) -> dict[str, Any]:
        return {
            "rooms": len(self.rooms),
            "peers": sum(len(r.peers) for r in self.rooms.values()),
            "workers": [w.stats() for w in self.workers],
        }

    async def drain(self, within: float | None = None) -> None:
        """Stop gracefully: refuse new joins (``draining``), tell every peer
        (``serverDraining``), wait up to ``within`` seconds (``drain_timeout``) for the rooms
        to empty, then stop the recordings (journals flushed) and close — plugins too, so
        their logs are flushed."""
        if self.closed:
            return
        limit = self.config.drain_timeout if within is None else within
        self.draining = True
        peers = sum(len(r.peers) for r in self.rooms.values())
        log.info("draining: %d rooms, %d peers, up to %.0f s", len(self.rooms), peers, limit)
        for room in list(self.rooms.values()):
            for peer in list(room.peers.values()):
                peer.notify("serverDraining", {"seconds": limit})
        empty = asyncio.Event()

        def check(*_: Any) -> None:
            if not any(r.peers for r in self.rooms.values()):
                empty.set()

        for event in ("peerleft", "roomclose"):
            self.on(event, check)
        check()
        try:
            await asyncio.wait_for(empty.wait(), limit)
        except TimeoutError:
            pass
        finally:
            for event in ("peerleft", "roomclose"):
                self.remove_listener(event, check)
        left = sum(len(r.peers) for r in self.rooms.values())
        for room in list(self.rooms.values()):
            room.stop_recording("server_stopping")
        log.info("drained: %d peers still connected are closed now", left)
        await self.close()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        recordings = [r.recording for r in self.rooms.values() if r.recording is not None]
        for room in list(self.rooms.values()):
            room.stop_recording("server_stopping")
            room.close()
        for recording in recordings:  # journals fsynced and closed, manifests written
            await recording.settled()
        await self.plugins.close()
        for frontend in reversed(self.frontends):  # clients are told, listeners stop
            await frontend.close()
        await asyncio.gather(*(w.close() for w in self.workers))
        self.emit("close")
