"""A Consumer: one subscriber's copy of a producer, rewritten and sent by the data plane."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from mediasrv import _core
from mediasrv.events import Emitter
from mediasrv.producer import Producer
from mediasrv.rtp_capabilities import EXT_ABS_SEND_TIME, SUBSCRIBE_EXTENSIONS


class ConsumerTransport(Protocol):
    """What a consumer needs of the transport it sends on (a Transport)."""

    @property
    def plane(self) -> _core.PlaneTransport: ...

    @property
    def connected(self) -> bool: ...


class Consumer(Emitter):
    """Events: ``close``, ``pause``, ``resume``. close() is idempotent; its transport forgets
    it on ``close``. The strategies: SimpleConsumer (here), SimulcastConsumer,
    LayerConsumer."""

    type = "simple"
    # the layer it switches to, and the one it climbs toward (a simulcast consumer's choice)
    target_layer: int | None = None
    desired_layer: int | None = None

    def __init__(
        self,
        producer: Producer,
        transport: ConsumerTransport,
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
        self._user_paused = paused
        self._bwe_paused = False
        self.mid: str | None = None
        self.rtt_ms: float | None = None
        self.fraction_lost = 0
        self.pli_received = 0
        self.nack_received = 0
        self.preferred_temporal_layer: int | None = None
        ext_map = {}
        for uri, pid in producer.extensions.items():
            cid = SUBSCRIBE_EXTENSIONS[producer.kind].get(uri)
            if cid:
                ext_map[pid] = cid
        abs_send_time = SUBSCRIBE_EXTENSIONS[producer.kind].get(EXT_ABS_SEND_TIME, 0)
        self.plane = _core.PlaneConsumer(
            transport.plane,
            self._source(),
            ssrc=ssrc,
            payload_type=producer.codec.payload_type,
            rtx_ssrc=self.rtx_ssrc,
            rtx_payload_type=producer.codec.rtx_payload_type if self.rtx_ssrc else 0,
            extension_map=ext_map,
            paused=paused,
        )
        if EXT_ABS_SEND_TIME in producer.extensions:
            # our own send time, so that the subscriber's bandwidth estimate (REMB) measures
            # the path from us, not from the publisher
            self.plane.set_abs_send_time_id(abs_send_time)
        self._setup()

    def _source(self) -> _core.PlaneStream:
        """The producer's stream this consumer forwards from."""
        return self.producer.stream

    def _setup(self) -> None:
        """What a subclass adds once the data-plane consumer exists."""

    @property
    def paused(self) -> bool:
        """Paused by the subscriber (or its application); not by bandwidth (bwe_paused)."""
        return self._user_paused

    @property
    def bwe_paused(self) -> bool:
        """Paused because the subscriber's estimated bandwidth cannot carry this video
        beside its audio (set_bwe_paused); resumed from a keyframe when it can."""
        return self._bwe_paused

    def set_bwe_paused(self, paused: bool) -> None:
        if paused == self._bwe_paused:
            return
        self._bwe_paused = paused
        if paused:
            self.plane.pause()
        elif not self._user_paused:
            self.plane.resume()
            if self.started:
                self._want_keyframe()
        self.emit("bwepause" if paused else "bweresume")

    def start(self) -> None:
        """Attach to the producer's stream: packets flow (from a keyframe, for video)."""
        if self.closed:
            return
        self.started = True
        self.plane.stream.add_consumer(self.plane)
        self._want_keyframe()

    # ---- layers (a simple consumer has the one) ----

    def current_layer(self) -> int | None:
        """The layer forwarded now (None before the first keyframe)."""
        if not self.plane.synced:
            return None
        return self.producer.layer_of(self.plane.stream)

    def wanted_layer(self) -> int | None:
        """The layer this consumer needs a keyframe of: the one it switches to, else its own."""
        target = self.plane.target
        return self.producer.layer_of(target if target is not None else self.plane.stream)

    def waiting_for_layer(self) -> int | None:
        """The layer whose keyframe this consumer still waits for, or None."""
        if self.plane.waiting_keyframe or self.plane.target is not None:
            return self.wanted_layer()
        return None

    def layer_added(self, layer: int, stream: _core.PlaneStream) -> None:
        """A simulcast layer appeared (only SimulcastConsumer uses it)."""

    def layers_in_use(self) -> set[int]:
        """The layers of its producer that must stay encoded for this consumer: what it
        forwards, what it switches to, and every layer up to the one it climbs toward (it
        climbs one layer at a time, so each step must stay encoded; found in review: pausing
        the layer in between left a consumer stuck on layer 0). None while not started or
        paused."""
        if not self.started or self.paused:
            return set()
        current = self.current_layer()
        wanted = {layer for layer in (current, self.target_layer) if layer is not None}
        desired = self.desired_layer
        if desired is not None:
            wanted.update(range(min(current or 0, desired), desired + 1))
        return wanted

    MAX_TEMPORAL_LAYER = 3  # VP8 carries up to four temporal layers

    def set_preferred_temporal_layer(self, layer: int | None) -> None:
        """Forward VP8 frames of temporal layers up to this one (None: all): a lower frame rate
        for the same picture size, where the publisher encodes temporal layers."""
        if layer is not None and not 0 <= layer <= self.MAX_TEMPORAL_LAYER:
            raise ValueError(f"temporal layer {layer} is outside 0..{self.MAX_TEMPORAL_LAYER}")
        self.preferred_temporal_layer = layer
        self._apply_temporal(layer)

    def _apply_temporal(self, layer: int | None) -> None:
        self.plane.set_temporal_layer(255 if layer is None else layer)

    def allocate(self, budget: float, now: float) -> float:
        """Take what this consumer needs from a subscriber's bandwidth budget (bit/s)."""
        return float(self.producer.layer_bitrates.get(self.wanted_layer() or 0, 0))

    def _want_keyframe(self) -> None:
        # asked now, and again by the producer until a keyframe arrives: a publisher may ignore
        # a request (Chrome honours one per 300 ms, so a second subscriber starting right after
        # the first would otherwise wait for the next periodic keyframe, minutes away)
        if self.kind == "video":
            self.producer.awaiting_keyframe.add(self)
        # a subscriber transport still connecting asks when its keys exist (WebRtcTransport)
        if self.transport.connected:
            self.producer.request_keyframe(force=True, layer=self.wanted_layer())

    def pause(self) -> None:
        if not self._user_paused:
            self._user_paused = True
            self.plane.pause()
            self.emit("pause")

    def resume(self) -> None:
        if self._user_paused:
            self._user_paused = False
            if not self._bwe_paused:
                self.plane.resume()
                if self.started:
                    self._want_keyframe()
            self.emit("resume")

    def request_keyframe(self) -> None:
        self.producer.request_keyframe(layer=self.wanted_layer())

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
            "currentLayer": self.current_layer(),
            "targetLayer": self.wanted_layer(),
            "layerSwitches": p.layer_switches,
            "temporalLayer": None if p.max_temporal_layer == 255 else p.max_temporal_layer,
            "droppedTemporal": p.dropped_temporal,
        }

    def counters(self) -> dict[str, int]:
        """Monotonic counters of this consumer, as the metrics add them up."""
        p = self.plane
        kind = self.kind
        return {
            f"forwarded_packets_{kind}": p.packets,
            f"forwarded_bytes_{kind}": p.bytes,
            "nacks_received": self.nack_received,
            "retransmitted": p.retransmitted,
            "pli_received": self.pli_received,
            "layer_switches": p.layer_switches,
        }

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.plane.close()
        self.producer.consumers.pop(self.id, None)
        self.producer.awaiting_keyframe.discard(self)
        self.emit("close")


class SimpleConsumer(Consumer):
    """Forwards the producer's single stream as it is."""

    type = "simple"
