"""Supervisor: one server of several worker processes (``ServerConfig.processes``).

Each worker process is a whole :class:`~mediasrv.media_server.MediaServer` with its own event
loop, UDP port (``media.rtc_port + index``) and rooms; the supervisor owns the public listener:

- ``/ws``: every signaling connection is relayed to the worker of its room
  (:class:`~mediasrv.cluster.signal_relay.SignalRelay`); a new room goes to the least loaded worker;
- ``/healthz``, ``/readyz`` (ready while every worker runs), ``/`` (the workers);
- ``/metrics``: the supervisor's own metrics and every worker's, each sample labelled
  ``worker``;
- ``/admin/...`` and ``/plugins/...``: forwarded to the worker of the room named in the path,
  else to a running worker (``GET /admin/rooms`` lists every worker's rooms;
  :class:`~mediasrv.cluster.admin_forward.AdminForward`);
- ``/client/mediasrv-client.js``.

A worker that exits unasked is noticed at once (its process ends): its clients get a
``reconnect`` notification, its rooms leave the directory, and it is started again (after 0.5 s,
doubling up to 10 s while it keeps failing).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from mediasrv.cluster.admin_forward import PROXY_TIMEOUT, AdminForward
from mediasrv.cluster.directory import ClusterDirectory
from mediasrv.cluster.metrics import SupervisorCollector, WorkersCollector
from mediasrv.cluster.relay_proof import HEADER as RELAYED_HEADER
from mediasrv.cluster.relay_proof import RelayProofs
from mediasrv.cluster.signal_relay import SignalRelay
from mediasrv.cluster.worker_handle import WorkerHandle, WorkerStartError
from mediasrv.config import ServerConfig
from mediasrv.http.app import client_sdk
from mediasrv.http.forwarded import client_address
from mediasrv.http.json_body import bearer_ok
from mediasrv.version import __version__

log = logging.getLogger("mediasrv.supervisor")
RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)
STABLE_SECONDS = 30.0  # a worker up this long starts again after the shortest delay
SCRAPE_TIMEOUT = aiohttp.ClientTimeout(total=3)
MAX_PROXY_BODY = 16 * 1024 * 1024


def process_count(config: ServerConfig) -> int:
    return config.processes or os.cpu_count() or 1


def supervised(config: ServerConfig) -> bool:
    """Whether a supervisor runs this server: worker processes, or a node of a cluster."""
    return process_count(config) > 1 or config.cluster.enabled


class Supervisor:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.workers = [WorkerHandle(i) for i in range(process_count(config))]
        self.rooms: dict[str, WorkerHandle] = {}  # room -> the worker that holds it
        self._room_sessions: Counter[str] = Counter()
        self._on_worker: Counter[tuple[str, int]] = Counter()  # (room, worker index) -> sessions
        self.spans: dict[str, list[WorkerHandle]] = {}  # the workers a room is spread over
        self._linking: dict[str, asyncio.Task[None]] = {}  # rooms whose workers are linking
        self.token = secrets.token_urlsafe(32)  # the workers' internal API
        self.restarts: Counter[int] = Counter()  # by worker index
        self.http_address: tuple[str, int] | None = None
        self.closing = False
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._watchers: list[asyncio.Task[None]] = []
        self.directory: ClusterDirectory | None = None  # with config.cluster (Redis)
        self.node_id = ""
        self.remote_relays: set[SignalRelay] = set()  # relayed to other nodes of the cluster
        self.forged_relays = 0  # connections claiming to be relayed, without a valid proof
        self.relay_proofs: RelayProofs | None = None  # with a cluster
        self._background: set[asyncio.Task[None]] = set()
        self.metrics = CollectorRegistry(auto_describe=False)
        self.metrics.register(SupervisorCollector(self))

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None, "the supervisor has not started"
        return self._http

    @property
    def ready(self) -> bool:
        return not self.closing and all(w.ready for w in self.workers)

    # ---- life ----

    async def start(self) -> None:
        # no connection limit: every relayed signaling connection holds one upstream socket
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        await asyncio.gather(*(w.start(self.config, self.token) for w in self.workers))
        self._watchers = [asyncio.ensure_future(self._watch(w)) for w in self.workers]
        app = web.Application(client_max_size=MAX_PROXY_BODY)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/", self._info)
        app.router.add_get("/client/mediasrv-client.js", client_sdk)
        if self.config.metrics.enabled:
            app.router.add_get("/metrics", self._metrics)
        forward = AdminForward(self)
        app.router.add_route("*", "/admin/{tail:.*}", forward.handle)
        app.router.add_route("*", "/plugins/{tail:.*}", forward.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        self.http_address = (self.config.host, self._runner.addresses[0][1])
        cluster = self.config.cluster
        port = self.http_address[1]
        # the default: the host name and port, as a node id may be (64 ASCII characters)
        host = socket.gethostname().encode("ascii", "replace").decode()[:50].replace(" ", "-")
        self.node_id = cluster.node_id or f"{host}:{port}"
        if cluster.enabled:
            url = cluster.public_url or f"ws://{self.config.host}:{port}/ws"
            self.directory = ClusterDirectory(cluster, self.node_id, url)
            self.relay_proofs = RelayProofs(cluster.secret, self.node_id)
            await self.directory.start()
            log.info("cluster: node %s at %s", self.node_id, url)

    async def close(self) -> None:
        """Stop taking connections, let every worker drain (``drain_timeout``), stop."""
        if self.closing:
            return
        self.closing = True
        for task in self._watchers:
            task.cancel()
        if self.directory is not None:
            await self.directory.close()
        await asyncio.gather(
            *(w.stop(self.config.drain_timeout + 5.0) for w in self.workers),
            return_exceptions=True,
        )
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _watch(self, worker: WorkerHandle) -> None:
        failures = 0
        while not self.closing:
            started = time.monotonic()
            code = await worker.wait()
            if self.closing:
                return
            self.restarts[worker.index] += 1
            log.error(
                "worker %d (pid %d) exited with status %s: %d client(s) told to "
                "reconnect; restarting",
                worker.index,
                worker.pid,
                code,
                len(worker.relays),
            )
            self.forget(worker)
            await asyncio.gather(*(relay.worker_failed() for relay in list(worker.relays)))
            failures = 0 if time.monotonic() - started > STABLE_SECONDS else failures + 1
            while not self.closing:
                await asyncio.sleep(RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)])
                try:
                    await worker.start(self.config, self.token)
                    break
                except WorkerStartError as exc:
                    log.error("%s", exc)
                    failures += 1
                except Exception:  # e.g. the spawn itself failed: keep trying
                    log.exception("worker %d could not be started", worker.index)
                    failures += 1

    # ---- placing rooms ----

    def place(self, room: str | None) -> WorkerHandle | None:
        """The worker for a connection to this room: the room's (or, when the room spreads,
        a worker of the room with room left, or a new one linked to the others), else the
        least loaded running worker, which then holds the room. Counts the connection."""
        if room is not None:
            found = self.rooms.get(room)
            if found is not None and found.ready:
                found = self._spread(room, found)
                self._count(room, found, 1)
                return found
        running = [w for w in self.workers if w.ready]
        if not running:
            return None
        chosen = min(running, key=lambda w: (w.load, self._rooms_on(w), w.index))
        if room is not None:
            self.rooms[room] = chosen
            self.spans[room] = [chosen]
            self._count(room, chosen, 1)  # the connection placed here counts at once
        return chosen

    def _count(self, room: str, worker: WorkerHandle, delta: int) -> None:
        self._room_sessions[room] += delta
        self._on_worker[(room, worker.index)] += delta

    def _spread(self, room: str, found: WorkerHandle) -> WorkerHandle:
        """With ``room_spread_at``: the worker of the room with room left, or a new worker for
        it, linked to the room's others (their producers piped both ways)."""
        limit = self.config.room_spread_at
        if not limit or self.config.media.workers != 1:
            return found
        spans = self.spans.setdefault(room, [found])
        for worker in [found, *spans]:
            if worker.ready and self._on_worker[(room, worker.index)] < limit:
                self.rooms[room] = worker
                return worker
        others = [w for w in self.workers if w.ready and w not in spans]
        if not others:
            return min(
                (w for w in spans if w.ready),
                key=lambda w: self._on_worker[(room, w.index)],
                default=found,
            )
        new = min(others, key=lambda w: (w.load, w.index))
        linked = [w for w in spans if w.ready]
        spans.append(new)
        self.rooms[room] = new
        task = asyncio.ensure_future(self._link(room, new, linked))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        self._linking[room] = task
        task.add_done_callback(lambda _: self._linking.pop(room, None))
        log.info(
            "room %r spreads to worker %d (linked to %s)",
            room,
            new.index,
            [w.index for w in linked],
        )
        return new

    async def _link(self, room: str, new: WorkerHandle, others: list[WorkerHandle]) -> None:
        """Pipe the room's producers both ways between ``new`` and each of ``others``."""
        ip = self.config.media.listen_ip
        calls = []
        for other in others:
            calls.append(
                self._internal(
                    other,
                    f"/internal/rooms/{room}/links",
                    {"udp": [ip, new.rtc_ports[0]], "http": new.http_port},
                )
            )
            calls.append(
                self._internal(
                    new,
                    f"/internal/rooms/{room}/links",
                    {"udp": [ip, other.rtc_ports[0]], "http": other.http_port},
                )
            )
        await asyncio.gather(*calls)

    async def _internal(self, worker: WorkerHandle, path: str, body: dict[str, Any]) -> None:
        url = f"http://127.0.0.1:{worker.http_port}{path}"
        try:
            async with self.http.post(
                url,
                json=body,
                timeout=PROXY_TIMEOUT,
                headers={"Authorization": f"Bearer {self.token}"},
            ) as answer:
                if answer.status != 200:
                    log.warning("worker %d refused %s: %s", worker.index, path, await answer.text())
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("worker %d: %s failed: %s", worker.index, path, type(exc).__name__)

    async def route(
        self, room: str | None, relayed: bool
    ) -> tuple[WorkerHandle | None, tuple[str, str] | None]:
        """Where a connection goes: (a worker here, None) or (None, (node, URL)) of the node
        of the cluster that serves its room."""
        directory = self.directory
        if directory is None or room is None:
            return self.place(room), None
        here = self.rooms.get(room)
        if here is not None and here.ready:
            return self.place(room), None
        owner = node = await directory.claim(room)
        if relayed and owner != self.node_id:
            # sent here by a node that thought this one serves the room: serve it
            node = await directory.take_over(room, owner)
        if node == self.node_id:
            return self.place(room), None
        url = await directory.url_of(node)
        if url is None:  # the owner died since it was claimed
            return await self.take_over(room, node), None
        return None, (node, url)

    async def linked(self, room: str | None) -> None:
        """Until the room's workers are linked (a joiner then sees the room's other peers)."""
        task = self._linking.get(room) if room is not None else None
        if task is not None:
            await asyncio.shield(task)

    async def take_over(self, room: str, dead: str) -> WorkerHandle | None:
        """Serve a room here whose node cannot be reached."""
        if self.directory is not None:
            await self.directory.take_over(room, dead)
        return self.place(room)

    def forget(self, worker: WorkerHandle) -> None:
        """A worker died: its rooms leave the directory (its relays' late leaves are ignored:
        they carry the generation it had), and the other workers of its spread rooms forget
        its share (_unlink_dead)."""
        for room in [r for r, w in self.rooms.items() if w is worker]:
            del self.rooms[room]
            self._room_sessions.pop(room, None)
        for room, spans in list(self.spans.items()):
            if worker in spans:
                spans.remove(worker)
                self._room_sessions[room] -= self._on_worker.pop((room, worker.index), 0)
                if spans and room not in self.rooms:
                    self.rooms[room] = spans[-1]
            # its share may have left the spans already (its relays ended as it died)
            self._unlink_dead(room, worker, spans)
            if not spans:
                del self.spans[room]
                self._room_sessions.pop(room, None)

    def _unlink_dead(self, room: str, dead: WorkerHandle, others: list[WorkerHandle]) -> None:
        """The room's other workers forget a dead one's share: its peers leave their lists,
        what it piped to them closes, they stop piping to it, and a recording it ran is
        over."""
        if not dead.rtc_ports:
            return
        body = {"udp": [self.config.media.listen_ip, dead.rtc_ports[0]]}
        for other in others:
            task = asyncio.ensure_future(
                self._internal(other, f"/internal/rooms/{room}/unlink", body)
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def connections(self, room: str, worker: WorkerHandle) -> int:
        """The connections of a room that a worker serves now."""
        return self._on_worker[(room, worker.index)]

    def _rooms_on(self, worker: WorkerHandle) -> int:
        return sum(1 for w in self.rooms.values() if w is worker)

    def room_joined(self, room: str, worker: WorkerHandle) -> None:
        self.rooms.setdefault(room, worker)
        if worker not in self.spans.setdefault(room, [worker]):
            self.spans[room].append(worker)
        self._count(room, worker, 1)

    def room_left(self, room: str, worker: WorkerHandle, generation: int) -> None:
        if generation != worker.starts:
            return  # that worker died and its rooms were cleared then
        self._count(room, worker, -1)
        if self._on_worker[(room, worker.index)] <= 0:
            self._on_worker.pop((room, worker.index), None)
            spans = self.spans.get(room, [])
            if worker in spans and self._room_sessions[room] > 0:
                spans.remove(worker)  # its share of the room is empty: new joins go elsewhere
                if self.rooms.get(room) is worker and spans:
                    self.rooms[room] = spans[-1]
        if self._room_sessions[room] <= 0:
            self._room_sessions.pop(room, None)
            self.spans.pop(room, None)
            if self.rooms.get(room) is worker:
                del self.rooms[room]
                if self.directory is not None and not self.closing:
                    task = asyncio.ensure_future(self.directory.release(room))
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)

    # ---- HTTP ----

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if self.closing:
            raise web.HTTPServiceUnavailable(text="the server is shutting down")
        ws = web.WebSocketResponse(max_msg_size=self.config.max_message_size, heartbeat=20.0)
        await ws.prepare(request)
        relay = SignalRelay(self, ws, client_address(request, self.config))
        try:
            await relay.run(relayed=self._relayed_by_a_node(request))
        except (TimeoutError, ConnectionError, aiohttp.ClientError) as exc:
            log.info("signaling relay ended: %s", type(exc).__name__)
        finally:
            await ws.close()
        return ws

    def _relayed_by_a_node(self, request: web.Request) -> bool:
        """Whether another node of the cluster relays this connection: its header carries a
        valid proof (relay_proof.py). A header without one is counted, logged and ignored:
        the connection is routed as any client's."""
        value = request.headers.get(RELAYED_HEADER)
        if value is None:
            return False
        if self.relay_proofs is not None and self.relay_proofs.check(value):
            return True
        self.forged_relays += 1
        log.warning("a connection from %s claims to be relayed by a node without a valid "
                    "proof: routed as any client's", request.remote)  # fmt: skip
        return False

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        running = sum(1 for w in self.workers if w.ready)
        body = {
            "status": "ready" if self.ready else "starting",
            "workers": len(self.workers),
            "running": running,
        }
        if self.closing:
            body["status"] = "stopping"
        return web.json_response(body, status=200 if self.ready else 503)

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "name": "mediasrv",
                "version": __version__,
                "workers": [
                    {
                        "index": w.index,
                        "pid": w.pid,
                        "ready": w.ready,
                        "udp": w.rtc_ports,
                        "sessions": w.load,
                        "restarts": self.restarts[w.index],
                    }
                    for w in self.workers
                ],
                "rooms": len(self.rooms),
                "node": self.node_id,
                "relayedToNodes": len(self.remote_relays),
            }
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        token = self.config.metrics.token
        if token is not None and not bearer_ok(request, token):
            return web.Response(status=401, text="a valid bearer token is required\n")
        texts = await asyncio.gather(*(self._scrape(w) for w in self.workers))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(WorkersCollector(list(zip(self.workers, texts, strict=True))))
        body = generate_latest(self.metrics) + generate_latest(registry)
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    async def _scrape(self, worker: WorkerHandle) -> str:
        if not worker.ready:
            return ""
        try:
            async with self.http.get(
                f"http://127.0.0.1:{worker.http_port}/metrics", timeout=SCRAPE_TIMEOUT
            ) as response:
                return await response.text() if response.status == 200 else ""
        except (aiohttp.ClientError, TimeoutError):
            return ""
