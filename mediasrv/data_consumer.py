"""DataConsumer: a data channel the server opened toward a subscriber, carrying one
DataProducer's messages. The channel's ``protocol`` names the producing peer."""

from __future__ import annotations

import uuid
from typing import Any

from mediasrv.data_producer import DataProducer
from mediasrv.events import Emitter

MAX_BUFFERED = 4 * 1024 * 1024  # a subscriber that falls this far behind loses messages


class DataConsumer(Emitter):
    """Events: ``close``. close() is idempotent."""

    def __init__(self, producer: DataProducer, channel: Any) -> None:
        super().__init__()
        self.id = uuid.uuid4().hex
        self.producer = producer
        self.channel = channel
        self.sent = 0
        self.dropped_backlog = 0
        self.closed = False
        self._pending: list[str | bytes] = []
        channel.on("open", self._flush)
        channel.on("close", self.close)
        producer.consumers[self.id] = self

    def send(self, message: str | bytes) -> None:
        if self.closed:
            return
        if self.channel.readyState != "open":
            if len(self._pending) < 1000:
                self._pending.append(message)
            else:
                self.dropped_backlog += 1
            return
        if self.channel.bufferedAmount > MAX_BUFFERED:
            self.dropped_backlog += 1
            return
        self.channel.send(message)
        self.sent += 1

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for message in pending:
            self.send(message)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.producer.consumers.pop(self.id, None)
        if self.channel.readyState not in ("closing", "closed"):
            self.channel.close()
        self.emit("close")
