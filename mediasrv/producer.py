"""A Producer: one track published on a transport, and the data-plane stream that carries it."""

from __future__ import annotations

import time
import uuid
from typing import Any, Protocol

from mediasrv import _core
from mediasrv.events import Emitter
from mediasrv.rtp_capabilities import EXT_AUDIO_LEVEL, CodecSpec

KEYFRAME_REQUEST_INTERVAL = 0.5  # seconds between two PLI/FIR sent to one publisher
PAUSE_UNUSED_AFTER = 5.0  # seconds a simulcast layer nobody wants keeps being encoded
PACKET_CACHE_SIZE = 1024


class ProducerTransport(Protocol):
    """What a producer needs of the transport it arrives on (a Transport)."""

    @property
    def plane(self) -> _core.PlaneTransport: ...

    def send_pli(self, *media_ssrcs: int) -> bool: ...

    def producer_layer_added(self, producer: Producer, stream: _core.PlaneStream) -> None:
        """A simulcast layer of the producer arrived on a new SSRC."""
        ...


class ProducerConsumer(Protocol):
    """What a producer needs of its consumers (a Consumer)."""

    @property
    def closed(self) -> bool: ...

    @property
    def plane(self) -> _core.PlaneConsumer: ...

    def layers_in_use(self) -> set[int]: ...

    def waiting_for_layer(self) -> int | None: ...

    def layer_added(self, layer: int, stream: _core.PlaneStream) -> None: ...

    def close(self) -> None: ...


class Producer(Emitter):
    """A published track. A simulcast producer has one data-plane stream per RID layer (index 0
    is the lowest), created as each layer's first packet arrives.

    Events: ``close``, ``layer`` (index, stream: a simulcast layer appeared),
    ``layerswanted`` (the layers to encode, see _tick_layer_use). close() is idempotent and
    closes every consumer first; its transport and router forget it on ``close``."""

    def __init__(
        self,
        transport: ProducerTransport,
        *,
        kind: str,
        codec: CodecSpec,
        payload_type: int,
        rtx_payload_type: int,
        ssrc: int,
        rtx_ssrc: int | None,
        mid: str,
        extensions: dict[str, int],
        rids: list[str] | None = None,
        layer: int = 0,
        red_payload_type: int = 0,
        app_data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.id = uuid.uuid4().hex
        self.transport = transport
        self.kind = kind
        self.codec = codec
        self.payload_type = payload_type
        self.rtx_payload_type = rtx_payload_type
        self.red_payload_type = red_payload_type  # RED (RFC 2198) around Opus; 0: none
        self.ssrc = ssrc
        self.rtx_ssrc = rtx_ssrc or 0
        self.mid = mid
        self.extensions = dict(extensions)
        self.rids = list(rids or [])
        self.app_data = dict(app_data or {})
        self.consumers: dict[str, ProducerConsumer] = {}
        # started video consumers still waiting for a keyframe (see retry_keyframe)
        self.awaiting_keyframe: set[ProducerConsumer] = set()
        self.closed = False
        self.paused = False
        self.keyframe_requests = 0
        self.restarts_seen: dict[int, int] = {}
        self._last_keyframe_request: dict[int, float] = {}
        # per SSRC: ntp, rtp timestamp, arrival (monotonic) of the last sender report
        self.sender_reports: dict[int, tuple[int, int, float]] = {}
        self.layers: dict[int, _core.PlaneStream] = {}
        self.layer_bitrates: dict[int, int] = {}
        self._bytes_seen: dict[int, tuple[int, float]] = {}
        # simulcast layers the publisher is asked to encode (see _tick_layer_use)
        self.layers_active: list[bool] = [True] * len(self.rids)
        self._layer_wanted_at: dict[int, float] = {}
        self.stream = self._add_stream(layer, ssrc, self.rtx_ssrc)

    @property
    def simulcast(self) -> bool:
        return len(self.rids) > 1

    @property
    def sender_report(self) -> tuple[int, int, float] | None:
        return self.sender_reports.get(self.ssrc)

    def _add_stream(self, layer: int, ssrc: int, rtx_ssrc: int) -> _core.PlaneStream:
        stream = _core.PlaneStream(
            self.transport.plane,
            ssrc=ssrc,
            payload_type=self.payload_type,
            codec=self.codec.plane_codec,
            clock_rate=self.codec.clock_rate,
            rtx_ssrc=rtx_ssrc,
            rtx_payload_type=self.rtx_payload_type if rtx_ssrc else 0,
            audio_level_id=self.extensions.get(EXT_AUDIO_LEVEL, 0) if self.kind == "audio" else 0,
            cache_size=PACKET_CACHE_SIZE if self.kind == "video" else 0,
            owner=self,
        )
        if self.red_payload_type:
            stream.set_red_payload_type(self.red_payload_type)
        self.transport.plane.add_stream(stream)
        self.layers[layer] = stream
        return stream

    def add_layer(self, layer: int, ssrc: int) -> _core.PlaneStream:
        """A simulcast layer's first packet arrived on a new SSRC."""
        if self.closed:
            raise RuntimeError("the producer is closed")
        if not 0 <= layer < len(self.rids) or layer in self.layers:
            raise ValueError(f"layer {layer} is not a missing layer of this producer")
        stream = self._add_stream(layer, ssrc, 0)
        self.transport.producer_layer_added(self, stream)
        for consumer in list(self.consumers.values()):
            consumer.layer_added(layer, stream)
        self.emit("layer", layer, stream)
        return stream

    def set_layer_rtx(self, layer: int, rtx_ssrc: int) -> bool:
        stream = self.layers.get(layer)
        if stream is None or not self.rtx_payload_type or stream.rtx_ssrc:
            return False
        stream.set_rtx(rtx_ssrc, self.rtx_payload_type)
        return True

    def layer_of(self, stream: _core.PlaneStream) -> int:
        for layer, candidate in self.layers.items():
            if candidate is stream:
                return layer
        raise ValueError("not a stream of this producer")

    def active_layers(self, now: float | None = None) -> list[int]:
        """Layers that carried packets in the last second, lowest first."""
        now_ms = (time.monotonic() if now is None else now) * 1000
        return sorted(
            layer
            for layer, stream in self.layers.items()
            if stream.packets and now_ms - stream.last_packet_ms < 1000
        )

    def tick_bitrates(self, now: float) -> None:
        """Each layer's bitrate since the last tick; a layer that went quiet (paused by us, or
        by the publisher's encoder) keeps its last rate as what it would cost again."""
        for layer, stream in self.layers.items():
            seen = self._bytes_seen.get(layer)
            self._bytes_seen[layer] = (stream.bytes, now)
            if seen is not None and now > seen[1] and stream.bytes > seen[0]:
                self.layer_bitrates[layer] = int((stream.bytes - seen[0]) * 8 / (now - seen[1]))
        self._tick_layer_use(now)

    def _tick_layer_use(self, now: float) -> None:
        """Ask the publisher (event ``layerswanted``, a list of bools by layer) to stop
        encoding layers no consumer wants for PAUSE_UNUSED_AFTER seconds, and to start them
        again as soon as one does. The lowest layer always runs, so a new subscriber starts at
        once."""
        if not self.simulcast:
            return
        wanted = {0}
        for consumer in self.consumers.values():
            wanted |= consumer.layers_in_use()
        for layer in wanted:
            self._layer_wanted_at[layer] = now
        active = [
            layer in wanted or now - self._layer_wanted_at.get(layer, now) < PAUSE_UNUSED_AFTER
            for layer in range(len(self.rids))
        ]
        for layer in range(len(self.rids)):
            self._layer_wanted_at.setdefault(layer, now)
        if active != self.layers_active:
            self.layers_active = active
            self.emit("layerswanted", list(active))

    def request_keyframe(self, force: bool = False, layer: int | None = None) -> bool:
        """Ask the publisher for a keyframe (PLI) of one layer (all layers when None), at most
        every KEYFRAME_REQUEST_INTERVAL per layer."""
        if self.closed or self.kind != "video":
            return False
        now = time.monotonic()
        ssrcs = []
        for index, stream in self.layers.items():
            if layer is not None and index != layer:
                continue
            last = self._last_keyframe_request.get(index, 0.0)
            if not force and now - last < KEYFRAME_REQUEST_INTERVAL:
                continue
            self._last_keyframe_request[index] = now
            ssrcs.append(stream.ssrc)
        if not ssrcs:
            return False
        self.keyframe_requests += len(ssrcs)
        return bool(self.transport.send_pli(*ssrcs))

    def retry_keyframe(self) -> None:
        """Ask again (spaced by KEYFRAME_REQUEST_INTERVAL) while a started, unpaused consumer
        still waits for a keyframe — of its first layer, or of the layer it switches to: the
        publisher may have ignored or lost the first request."""
        wanted: set[int] = set()
        for consumer in list(self.awaiting_keyframe):
            layer = consumer.waiting_for_layer()
            if consumer.closed or consumer.plane.paused or layer is None:
                self.awaiting_keyframe.discard(consumer)  # resume() or a switch adds it again
            else:
                wanted.add(layer)
        for layer in wanted:
            self.request_keyframe(layer=layer)

    def want_first_keyframe(self) -> None:
        """Ask for a keyframe (spaced by KEYFRAME_REQUEST_INTERVAL) of each layer that
        carries packets but has shown none yet: its first keyframe was lost, or the stream
        began mid-picture, and until one comes nothing can decode it — not a subscriber that
        joins later, not a recording, not a pipe to another worker."""
        if self.kind != "video":
            return
        now_ms = time.monotonic() * 1000
        for layer, stream in self.layers.items():
            if not stream.packets or stream.keyframes:
                continue
            # not a layer that went quiet (paused, here or by the publisher) before its first
            # keyframe: it is asked again when it comes back and a consumer waits for it
            paused = bool(self.rids) and not self.layers_active[layer]
            if now_ms - stream.last_packet_ms < 2000 and not paused:
                self.request_keyframe(layer=layer)

    def stats(self) -> dict[str, Any]:
        s = self.stream
        stats: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "mimeType": self.codec.mime_type,
            "ssrc": self.ssrc,
            "packets": sum(x.packets for x in self.layers.values()),
            "bytes": sum(x.bytes for x in self.layers.values()),
            "keyframes": sum(x.keyframes for x in self.layers.values()),
            "rtxPackets": sum(x.rtx_packets for x in self.layers.values()),
            "nackRequested": sum(x.nack_requested for x in self.layers.values()),
            "nackRecovered": sum(x.nack_recovered for x in self.layers.values()),
            "jitter": s.jitter,
            "consumers": len(self.consumers),
        }
        if self.rids:
            stats["layersActive"] = list(self.layers_active)
            stats["layers"] = [
                {
                    "layer": layer,
                    "rid": self.rids[layer],
                    "ssrc": stream.ssrc,
                    "packets": stream.packets,
                    "bitrate": self.layer_bitrates.get(layer, 0),
                }
                for layer, stream in sorted(self.layers.items())
            ]
        return stats

    def counters(self) -> dict[str, int]:
        """Monotonic counters of this producer, as the metrics add them up."""
        streams = list(self.layers.values())
        kind = self.kind
        return {
            f"received_packets_{kind}": sum(x.packets for x in streams),
            f"received_bytes_{kind}": sum(x.bytes for x in streams),
            "lost": sum(x.gaps for x in streams),  # monotonic, unlike RFC 3550's lost
            "nacks_sent": sum(x.nack_requested for x in streams),
            "nack_recovered": sum(x.nack_recovered for x in streams),
            "keyframe_requests": self.keyframe_requests,
        }

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for consumer in list(self.consumers.values()):
            consumer.close()
        self.awaiting_keyframe.clear()
        for stream in self.layers.values():
            stream.close()
        self.emit("close")
