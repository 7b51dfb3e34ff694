"""A Consumer: one subscriber's copy of a producer, rewritten and sent by the data plane."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from mediasrv import _core
from mediasrv.events import Emitter
from mediasrv.rtp_capabilities import SUBSCRIBE_EXTENSIONS

if TYPE_CHECKING:
    from mediasrv.producer import Producer
    from mediasrv.transport import Transport


class Consumer(Emitter):
    """Events: ``close``, ``pause``, ``resume``. close() is idempotent."""

    type = "simple"

    def __init__(
        self,
        producer: Producer,
        transport: Transport,
        *,
        ssrc: int,
        rtx_ssrc: int,
        paused: bool = False,
        app_data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.id = uuid.uuid4().hex
        self.producer = producer
        self.transport = transport
        self.kind = producer.kind
        self.codec = producer.codec
        self.ssrc = ssrc
        self.rtx_ssrc = rtx_ssrc if producer.kind == "video" else 0
        self.app_data = dict(app_data or {})
        self.closed = False
        self.started = False
        self.mid: str | None = None
        self.rtt_ms: float | None = None
        self.fraction_lost = 0
        self.pli_received = 0
        self.nack_received = 0
        ext_map = {}
        for uri, pid in producer.extensions.items():
            cid = SUBSCRIBE_EXTENSIONS[producer.kind].get(uri)
            if cid:
                ext_map[pid] = cid
        self.plane = _core.PlaneConsumer(
            transport.plane,
            producer.stream,
            ssrc=ssrc,
            payload_type=producer.codec.payload_type,
            rtx_ssrc=self.rtx_ssrc,
            rtx_payload_type=producer.codec.rtx_payload_type if self.rtx_ssrc else 0,
            extension_map=ext_map,
            paused=paused,
        )

    @property
    def paused(self) -> bool:
        return self.plane.paused

    def start(self) -> None:
        """Attach to the producer's stream: packets flow (from a keyframe, for video)."""
        if self.closed:
            return
        self.started = True
        self.producer.stream.add_consumer(self.plane)
        self._want_keyframe()

    def _want_keyframe(self) -> None:
        # asked now, and again by the producer until a keyframe arrives: a publisher may ignore
        # a request (Chrome honours one per 300 ms, so a second subscriber starting right after
        # the first would otherwise wait for the next periodic keyframe, minutes away)
        if self.kind == "video":
            self.producer.awaiting_keyframe.add(self)
        # a subscriber transport still connecting asks when its keys exist (WebRtcTransport)
        if self.transport.connected:
            self.producer.request_keyframe(force=True)

    def pause(self) -> None:
        if not self.plane.paused:
            self.plane.pause()
            self.emit("pause")

    def resume(self) -> None:
        if self.plane.paused:
            self.plane.resume()
            if self.started:
                self._want_keyframe()
            self.emit("resume")

    def request_keyframe(self) -> None:
        self.producer.request_keyframe()

    def retransmit(self, sequence_numbers: list[int]) -> int:
        self.nack_received += len(sequence_numbers)
        return int(self.plane.retransmit(sequence_numbers))

    def stats(self) -> dict[str, Any]:
        p = self.plane
        return {
            "id": self.id,
            "type": self.type,
            "kind": self.kind,
            "producerId": self.producer.id,
            "ssrc": self.ssrc,
            "paused": p.paused,
            "packets": p.packets,
            "bytes": p.bytes,
            "retransmitted": p.retransmitted,
            "retransmitMissing": p.retransmit_missing,
            "nackReceived": self.nack_received,
            "pliReceived": self.pli_received,
            "rttMs": self.rtt_ms,
            "fractionLost": self.fraction_lost,
        }

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.plane.close()
        self.producer.consumers.pop(self.id, None)
        self.producer.awaiting_keyframe.discard(self)
        self.transport._consumer_closed(self)
        self.emit("close")


class SimpleConsumer(Consumer):
    """Forwards the producer's single stream as it is."""

    type = "simple"
