"""The small surface of aiortc's RTCDtlsTransport that its RTCSctpTransport uses, on top of a
DtlsSession: aiortc's SCTP stack then runs over mediasrv's DTLS on the shared socket."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from mediasrv.tasks import spawn


class _Session(Protocol):
    state: str

    def send(self, data: bytes) -> None: ...


class SctpDtlsAdapter:
    def __init__(self, session: _Session, role: str) -> None:
        self._session = session
        self._role = role  # "server" or "client": SCTP stream ids follow the DTLS role
        self._receiver: Any = None
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1024)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    @property
    def state(self) -> str:
        return (
            "connected"
            if self._session.state == "connected"
            else "closed"
            if self._session.state in ("closed", "failed")
            else "connecting"
        )

    def _register_data_receiver(self, receiver: Any) -> None:
        self._receiver = receiver

    def _unregister_data_receiver(self, receiver: Any) -> None:
        if self._receiver is receiver:
            self._receiver = None

    async def _send_data(self, data: bytes) -> None:
        if self._session.state != "connected":
            raise ConnectionError("DTLS is not connected")
        self._session.send(data)

    def deliver(self, data: bytes) -> None:
        """An SCTP packet from the DTLS session: handed to SCTP in arrival order."""
        if self._task is None:
            self._task = spawn(self._pump(), "sctp inbound")
        try:
            self._inbox.put_nowait(data)
        except asyncio.QueueFull:
            self.dropped += 1  # SCTP retransmits what it misses

    async def _pump(self) -> None:
        while True:
            data = await self._inbox.get()
            if self._receiver is not None:
                await self._receiver._handle_data(data)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
