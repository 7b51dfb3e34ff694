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
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from mediasrv.supervisor import Supervisor
    from mediasrv.worker_handle import WorkerHandle

log = logging.getLogger("mediasrv.supervisor")
FIRST_MESSAGE_TIMEOUT = 30.0
SERVICE_RESTART = 1012  # WebSocket close code


def join_room(text: str) -> tuple[Any, str] | None:
    """(request id, room) of a ``join`` request, else None."""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("method") != "join":
        return None
    params = message.get("params")
    room = params.get("room") if isinstance(params, dict) else None
    return (message.get("id"), room) if isinstance(room, str) and room else None


class SignalRelay:
    def __init__(self, supervisor: Supervisor, client: web.WebSocketResponse, remote: str) -> None:
        self.supervisor = supervisor
        self.client = client
        self.remote = remote
        self.worker: WorkerHandle | None = None
        self.upstream: aiohttp.ClientWebSocketResponse | None = None
        self.rooms: set[str] = set()
        self.failed = False

    async def run(self) -> None:
        first = await self.client.receive(timeout=FIRST_MESSAGE_TIMEOUT)
        if first.type is not WSMsgType.TEXT:
            return
        joining = join_room(first.data)
        worker = self.supervisor.place(joining[1] if joining else None)
        if worker is None:
            await self._refuse(first.data, "unavailable", "no worker is running; try again")
            return
        try:
            self.upstream = await self.supervisor.http.ws_connect(
                f"http://127.0.0.1:{worker.http_port}/ws",
                headers={"X-Forwarded-For": self.remote},
                max_msg_size=self.supervisor.config.max_message_size,
                heartbeat=20.0,
            )
        except (aiohttp.ClientError, OSError):
            await self._refuse(first.data, "unavailable", "the worker cannot be reached")
            return
        self.worker = worker
        worker.relays.add(self)
        try:
            if joining:
                self._joined(joining[1])
            await self.upstream.send_str(first.data)
            down = asyncio.ensure_future(self._downstream())
            try:
                await self._upstream()
            finally:
                down.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await down
        finally:
            worker.relays.discard(self)
            for room in self.rooms:
                self.supervisor.room_left(room, worker)
            await self.upstream.close()

    def _joined(self, room: str) -> None:
        if room not in self.rooms:
            self.rooms.add(room)
            assert self.worker is not None
            self.supervisor.room_joined(room, self.worker)

    async def _upstream(self) -> None:
        """Client → worker."""
        assert self.upstream is not None and self.worker is not None
        async for message in self.client:
            if message.type is not WSMsgType.TEXT:
                break
            joining = join_room(message.data)
            if joining is not None:
                where = self.supervisor.rooms.get(joining[1])
                if where is not None and where is not self.worker:
                    await self._error(
                        joining[0],
                        "room_elsewhere",
                        "that room is served by another worker: join it over "
                        "a connection of its own",
                    )
                    continue
                self._joined(joining[1])
            await self.upstream.send_str(message.data)

    async def _downstream(self) -> None:
        """Worker → client; when the worker goes away unasked, the client is told."""
        assert self.upstream is not None
        async for message in self.upstream:
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
