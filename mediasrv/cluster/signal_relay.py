"""SignalRelay: one client's signaling WebSocket relayed by the supervisor to the worker
process that holds its room.

The first message picks the worker: a ``join`` goes where its room is (or where the supervisor
places a new room); anything else goes to the least loaded worker. From then on frames pass
both ways unchanged, except a later ``join`` for a room that lives on another worker, which is
answered ``room_elsewhere`` (open another connection for it). When the worker fails, the client
gets a ``reconnect`` notification and the connection closes (code 1012, service restart): a new
connection is placed on a worker that runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
from aiohttp import WSMsgType, web

from mediasrv.cluster.relay_proof import HEADER as RELAYED_HEADER
from mediasrv.cluster.relay_proof import make_proof
from mediasrv.cluster.worker_handle import WorkerHandle
from mediasrv.config import ServerConfig
from mediasrv.http.forwarded import PROXY_HEADER
from mediasrv.signaling.session import MAX_ROOM_ID

log = logging.getLogger("mediasrv.supervisor")
FIRST_MESSAGE_TIMEOUT = 30.0
MAX_ROOMS_PER_CONNECTION = 8
SERVICE_RESTART = 1012  # WebSocket close code


def join_room(text: str) -> tuple[Any, str] | None:
    """(request id, room) of a ``join`` request, else None."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        return None
    if not isinstance(message, dict) or message.get("method") != "join":
        return None
    params = message.get("params")
    room = params.get("room") if isinstance(params, dict) else None
    return (message.get("id"), room) if isinstance(room, str) and room else None


class RelayHost(Protocol):
    """What a relay needs of the supervisor (a Supervisor): where rooms are, and to be told
    of joins and leaves."""

    @property
    def config(self) -> ServerConfig: ...

    @property
    def token(self) -> str: ...

    @property
    def node_id(self) -> str: ...

    @property
    def http(self) -> aiohttp.ClientSession: ...

    @property
    def closing(self) -> bool: ...

    @property
    def rooms(self) -> Mapping[str, WorkerHandle]: ...

    @property
    def remote_relays(self) -> set[SignalRelay]: ...

    async def route(
        self, room: str | None, relayed: bool
    ) -> tuple[WorkerHandle | None, tuple[str, str] | None]: ...

    async def linked(self, room: str | None) -> None: ...

    async def take_over(self, room: str, dead: str) -> WorkerHandle | None: ...

    def room_joined(self, room: str, worker: WorkerHandle) -> None: ...

    def room_left(self, room: str, worker: WorkerHandle, generation: int) -> None: ...


class SignalRelay:
    def __init__(self, supervisor: RelayHost, client: web.WebSocketResponse, remote: str) -> None:
        self.supervisor = supervisor
        self.client = client
        self.remote = remote
        self.worker: WorkerHandle | None = None
        self.upstream: aiohttp.ClientWebSocketResponse | None = None
        self.rooms: set[str] = set()
        self.remote_node: str | None = None  # the cluster node relayed to, if not a worker
        self.generation = 0  # the worker's start count when this relay was placed
        self.failed = False

    async def run(self, relayed: bool = False) -> None:
        """Relay until either side hangs up. ``relayed``: the connection comes from another
        node of the cluster, so it is served here, never relayed again."""
        first = await self.client.receive(timeout=FIRST_MESSAGE_TIMEOUT)
        if first.type is not WSMsgType.TEXT:
            return
        joining = join_room(first.data)
        room = joining[1] if joining else None
        worker, remote = await self.supervisor.route(room, relayed)
        if remote is not None and room is not None:
            if await self._connect_remote(*remote):
                self.remote_node = remote[0]
                self.rooms.add(room)
                await self._pump(first.data, None)
                return
            # the room's node cannot be reached: serve the room here
            worker = await self.supervisor.take_over(room, remote[0])
        if worker is None:
            await self._refuse(first.data, "unavailable", "no worker is running; try again")
            return
        # the supervisor counted this connection in the room when it placed it
        generation = self.generation = worker.starts
        if room is not None:
            self.rooms.add(room)
        try:
            await self.supervisor.linked(room)
        except BaseException:
            for joined in self.rooms:
                self.supervisor.room_left(joined, worker, generation)
            raise
        try:
            self.upstream = await self.supervisor.http.ws_connect(
                f"http://127.0.0.1:{worker.http_port}/ws",
                headers={"X-Forwarded-For": self.remote, PROXY_HEADER: self.supervisor.token},
                max_msg_size=self.supervisor.config.max_message_size,
                heartbeat=20.0,
            )
        except (aiohttp.ClientError, OSError):
            for joined in self.rooms:
                self.supervisor.room_left(joined, worker, generation)
            await self._refuse(first.data, "unavailable", "the worker cannot be reached")
            return
        self.worker = worker
        worker.relays.add(self)
        try:
            await self._pump(first.data, worker)
        finally:
            worker.relays.discard(self)
            for joined in self.rooms:
                self.supervisor.room_left(joined, worker, generation)

    async def _connect_remote(self, node: str, url: str) -> bool:
        """Open the upstream to the node that serves the room."""
        proof = make_proof(self.supervisor.config.cluster.secret, self.supervisor.node_id, node)
        try:
            self.upstream = await self.supervisor.http.ws_connect(
                url,
                headers={"X-Forwarded-For": self.remote, RELAYED_HEADER: proof},
                max_msg_size=self.supervisor.config.max_message_size,
                heartbeat=20.0,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            )  # fmt: skip
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False
        self.supervisor.remote_relays.add(self)
        return True

    async def _pump(self, first: str, worker: WorkerHandle | None) -> None:
        assert self.upstream is not None
        try:
            await self.upstream.send_str(first)
            down = asyncio.ensure_future(self._downstream())
            try:
                await self._upstream()
            finally:
                down.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await down
        finally:
            self.supervisor.remote_relays.discard(self)
            await self.upstream.close()

    def _joined(self, room: str) -> None:
        if room not in self.rooms:
            self.rooms.add(room)
            assert self.worker is not None
            self.supervisor.room_joined(room, self.worker)

    async def _upstream(self) -> None:
        """Client → worker."""
        assert self.upstream is not None
        async for message in self.client:
            if message.type is WSMsgType.BINARY:  # the worker answers it (invalid_message)
                await self.upstream.send_bytes(message.data)
                continue
            if message.type is not WSMsgType.TEXT:
                break
            joining = join_room(message.data)
            if joining is not None and len(self.rooms) >= MAX_ROOMS_PER_CONNECTION:
                limit = f"at most {MAX_ROOMS_PER_CONNECTION} rooms per connection"
                await self._error(joining[0], "invalid_params", limit)
                continue
            if joining is not None and len(joining[1]) > MAX_ROOM_ID:
                joining = None  # the worker refuses it; never in the directory
            if joining is not None:
                where = self.supervisor.rooms.get(joining[1])
                elsewhere = (where is not None and where is not self.worker) or (
                    self.worker is None and joining[1] not in self.rooms
                )
                if elsewhere:
                    await self._error(
                        joining[0],
                        "room_elsewhere",
                        "that room is served by another worker: join it over "
                        "a connection of its own",
                    )
                    continue
                if self.worker is not None:
                    self._joined(joining[1])
            await self.upstream.send_str(message.data)

    async def _downstream(self) -> None:
        """Worker → client; when the worker goes away unasked, the client is told."""
        assert self.upstream is not None
        async for message in self.upstream:
            if message.type is WSMsgType.BINARY:
                await self.client.send_bytes(message.data)
                continue
            if message.type is not WSMsgType.TEXT:
                break
            await self.client.send_str(message.data)
        # the worker hung up (it died, or it stops): the client should connect again
        reason = "server_stopping" if self.supervisor.closing else "worker_failed"
        await self.worker_failed(reason)

    async def worker_failed(self, reason: str = "worker_failed") -> None:
        """The worker went away: tell the client to reconnect (once), and hang up."""
        if self.failed or self.client.closed:
            return
        self.failed = True
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.client.send_str(
                json.dumps({"method": "reconnect", "params": {"reason": reason}})
            )
            await self.client.close(code=SERVICE_RESTART, message=b"worker restarted")

    async def _error(self, request_id: Any, code: str, text: str) -> None:
        await self.client.send_str(
            json.dumps({"id": request_id, "ok": False, "error": {"code": code, "message": text}})
        )

    async def _refuse(self, first: str, code: str, text: str) -> None:
        joining = join_room(first)
        request_id = joining[0] if joining else None
        with contextlib.suppress(ValueError):
            parsed = json.loads(first)
            if isinstance(parsed, dict):
                request_id = parsed.get("id", request_id)
        await self._error(request_id, code, text)
        await self.client.close()
