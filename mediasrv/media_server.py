"""MediaServer: the embeddable server — workers, rooms, and the HTTP/WebSocket front door.

server = MediaServer(ServerConfig(port=8080))
await server.start()          # workers bound, HTTP listening
server.rooms                  # {room id: Room}
await server.close()
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from aiohttp import WSCloseCode, web

from mediasrv.config import DEFAULT_CONFIG, ServerConfig
from mediasrv.events import Emitter
from mediasrv.plugin_manager import PluginManager
from mediasrv.room import Room
from mediasrv.worker import Worker

log = logging.getLogger("mediasrv")


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
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None
        self.signaling_sessions: set[web.WebSocketResponse] = set()
        self.rejected: Counter[str] = Counter()  # requests refused, by reason
        # recordings: bytes written, records dropped, write errors (all recordings so far)
        self.recording_totals: Counter[str] = Counter()
        self.recordings_stopped: Counter[str] = Counter()  # by reason (its first word)
        self.plugins = PluginManager(self)
        for spec in config.plugins:
            self.plugins.load(spec.name, spec.config)
        self.http_address: tuple[str, int] | None = None
        self.metrics_address: tuple[str, int] | None = None
        self.closed = False
        self.started = False
        self.draining = False
        from mediasrv.metrics import LoopLagMonitor, server_registry

        self.metrics = server_registry(self)
        self.loop_lag = LoopLagMonitor(self.metrics)
        self._metrics_runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        from mediasrv.room_links import RoomLinks

        self.links = RoomLinks(self)  # rooms spread over worker processes (supervisor)

    @property
    def app(self) -> web.Application:
        """The HTTP application: signaling, the client SDK, health, metrics, admin API and the
        plugins' routes (mounted at start). An embedding service adds its own routes or
        sub-applications here before :meth:`start` (paths outside ``/ws``, ``/client``,
        ``/admin``, ``/plugins`` and the health checks)."""
        if self._app is None:
            from mediasrv.http_app import create_app

            self._app = create_app(self)
        return self._app

    @property
    def ready(self) -> bool:
        """Started, not closing and not draining: new joins are welcome."""
        return self.started and not self.closed and not self.draining

    def metrics_text(self) -> bytes:
        """The Prometheus exposition of this server's metrics."""
        from mediasrv.metrics import exposition

        return exposition(self.metrics)

    @property
    def any_token(self) -> bool:
        """True when no tokens are configured: every signaling token is accepted."""
        return self.config.tokens is None

    async def start(self, *, http: bool = True) -> None:
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
        if http:
            app = self.app
            self.plugins.mount(app)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.config.host, self.config.port)
            await site.start()
            server = getattr(site, "_server", None)
            sockets = getattr(server, "sockets", None) or []
            port = sockets[0].getsockname()[1] if sockets else self.config.port
            self.http_address = (self.config.host, port)
            metrics = self.config.metrics
            if metrics.enabled and metrics.host:
                from mediasrv.http_app import create_metrics_app

                self._metrics_runner = web.AppRunner(create_metrics_app(self), access_log=None)
                await self._metrics_runner.setup()
                msite = web.TCPSite(self._metrics_runner, metrics.host, metrics.port)
                await msite.start()
                msockets = getattr(getattr(msite, "_server", None), "sockets", None) or []
                mport = msockets[0].getsockname()[1] if msockets else metrics.port
                self.metrics_address = (metrics.host, mport)
        self._tasks.append(asyncio.ensure_future(self.loop_lag.run()))
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
        room.on("close", lambda: self.emit("roomclose", room))
        self.emit("room", room)
        return room

    def _room_closed(self, room: Room) -> None:
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]

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
        for task in self._tasks:
            task.cancel()
        recordings = [r.recording for r in self.rooms.values() if r.recording is not None]
        for room in list(self.rooms.values()):
            room.stop_recording("server_stopping")
            room.close()
        for recording in recordings:  # journals fsynced and closed, manifests written
            await recording.settled()
        await self.plugins.close()
        # tell every client, instead of leaving them to time out on a dead connection
        await asyncio.gather(
            *(
                ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
                for ws in list(self.signaling_sessions)
            ),
            return_exceptions=True,
        )
        if self._runner is not None:
            await self._runner.cleanup()
        await self.links.close()
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        await asyncio.gather(*(w.close() for w in self.workers))
        self.emit("close")
