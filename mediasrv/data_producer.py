"""DataProducer: a data channel a peer opened toward the server; its messages go to every
DataConsumer of it, with per-producer size and rate limits."""

from __future__ import annotations

import time
import uuid
from typing import Any, Protocol

from mediasrv.events import Emitter

MAX_MESSAGES_PER_SECOND = 200
MAX_BYTES_PER_SECOND = 2_000_000


class DataSink(Protocol):
    """What a data producer needs of its consumers (a DataConsumer)."""

    def send(self, message: str | bytes) -> None: ...

    def close(self) -> None: ...


class DataProducer(Emitter):
    """Events: ``message`` (data), ``close``. close() closes every DataConsumer of it."""

    def __init__(self, channel: Any, owner_id: str, max_message_size: int) -> None:
        super().__init__()
        self.id = uuid.uuid4().hex
        self.channel = channel
        self.label: str = channel.label
        self.owner_id = owner_id
        self.max_message_size = max_message_size
        self.consumers: dict[str, DataSink] = {}
        self.messages = 0
        self.dropped_too_large = 0
        self.dropped_rate = 0
        self.closed = False
        self._window_start = time.monotonic()
        self._window_messages = 0
        self._window_bytes = 0
        channel.on("message", self._on_message)
        channel.on("close", self.close)

    def _on_message(self, message: str | bytes) -> None:
        size = len(message.encode() if isinstance(message, str) else message)
        if size > self.max_message_size:
            self.dropped_too_large += 1
            return
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._window_messages, self._window_bytes = now, 0, 0
        self._window_messages += 1
        self._window_bytes += size
        if (
            self._window_messages > MAX_MESSAGES_PER_SECOND
            or self._window_bytes > MAX_BYTES_PER_SECOND
        ):
            self.dropped_rate += 1
            return
        self.messages += 1
        for consumer in list(self.consumers.values()):
            consumer.send(message)
        self.emit("message", message)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for consumer in list(self.consumers.values()):
            consumer.close()
        if self.channel.readyState not in ("closing", "closed"):
            self.channel.close()
        self.emit("close")
