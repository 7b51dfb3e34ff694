"""A Producer: one track published on a transport, and the data-plane stream that carries it."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from mediasrv import _core
from mediasrv.events import Emitter
from mediasrv.rtp_capabilities import EXT_AUDIO_LEVEL, CodecSpec

if TYPE_CHECKING:
    from mediasrv.consumer import Consumer
    from mediasrv.transport import Transport

KEYFRAME_REQUEST_INTERVAL = 0.5  # seconds between two PLI/FIR sent to one publisher
PACKET_CACHE_SIZE = 1024


class Producer(Emitter):
    """Events: ``close``, ``score``. close() is idempotent and closes every consumer first."""

    def __init__(
        self,
        transport: Transport,
        *,
        kind: str,
        codec: CodecSpec,
        payload_type: int,
        rtx_payload_type: int,
        ssrc: int,
        rtx_ssrc: int | None,
        mid: str,
        extensions: dict[str, int],
        app_data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.id = uuid.uuid4().hex
        self.transport = transport
        self.kind = kind
        self.codec = codec
        self.payload_type = payload_type
        self.rtx_payload_type = rtx_payload_type
        self.ssrc = ssrc
        self.rtx_ssrc = rtx_ssrc or 0
        self.mid = mid
        self.extensions = dict(extensions)
        self.app_data = dict(app_data or {})
        self.consumers: dict[str, Consumer] = {}
        # started video consumers still waiting for their first keyframe (see retry_keyframe)
        self.awaiting_keyframe: set[Consumer] = set()
        self.closed = False
        self.paused = False
        self.keyframe_requests = 0
        self.restarts_seen = 0
        self._last_keyframe_request = 0.0
        self.sender_report: tuple[int, int, float] | None = None  # ntp, rtp ts, arrival (monotonic)
        self.stream = _core.PlaneStream(
            transport.plane,
            ssrc=ssrc,
            payload_type=payload_type,
            codec=codec.plane_codec,
            clock_rate=codec.clock_rate,
            rtx_ssrc=self.rtx_ssrc,
            rtx_payload_type=rtx_payload_type if self.rtx_ssrc else 0,
            audio_level_id=extensions.get(EXT_AUDIO_LEVEL, 0) if kind == "audio" else 0,
            cache_size=PACKET_CACHE_SIZE if kind == "video" else 0,
            owner=self,
        )
        transport.plane.add_stream(self.stream)

    def request_keyframe(self, force: bool = False) -> bool:
        """Ask the publisher for a keyframe (PLI), at most every KEYFRAME_REQUEST_INTERVAL."""
        if self.closed or self.kind != "video":
            return False
        now = time.monotonic()
        if not force and now - self._last_keyframe_request < KEYFRAME_REQUEST_INTERVAL:
            return False
        self._last_keyframe_request = now
        self.keyframe_requests += 1
        return bool(self.transport.send_pli(self.ssrc))

    def retry_keyframe(self) -> None:
        """Ask again (spaced by KEYFRAME_REQUEST_INTERVAL) while a started, unpaused consumer
        still waits for a keyframe: the publisher may have ignored or lost the first request."""
        waiting = False
        for consumer in list(self.awaiting_keyframe):
            plane = consumer.plane
            if consumer.closed or plane.paused or not plane.waiting_keyframe:
                self.awaiting_keyframe.discard(consumer)  # resume() adds it again
            else:
                waiting = True
        if waiting:
            self.request_keyframe()

    def stats(self) -> dict[str, Any]:
        s = self.stream
        return {
            "id": self.id,
            "kind": self.kind,
            "mimeType": self.codec.mime_type,
            "ssrc": self.ssrc,
            "packets": s.packets,
            "bytes": s.bytes,
            "keyframes": s.keyframes,
            "rtxPackets": s.rtx_packets,
            "nackRequested": s.nack_requested,
            "nackRecovered": s.nack_recovered,
            "jitter": s.jitter,
            "consumers": len(self.consumers),
        }

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for consumer in list(self.consumers.values()):
            consumer.close()
        self.awaiting_keyframe.clear()
        self.stream.close()
        self.transport._producer_closed(self)
        self.emit("close")
