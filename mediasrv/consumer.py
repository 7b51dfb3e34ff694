"""A Consumer: one subscriber's copy of a producer, rewritten and sent by the data plane."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from mediasrv import _core
from mediasrv.events import Emitter
from mediasrv.rtp_capabilities import EXT_ABS_SEND_TIME, SUBSCRIBE_EXTENSIONS

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
        self.preferred_temporal_layer: int | None = None
        ext_map = {}
        for uri, pid in producer.extensions.items():
            cid = SUBSCRIBE_EXTENSIONS[producer.kind].get(uri)
            if cid:
                ext_map[pid] = cid
        abs_send_time = SUBSCRIBE_EXTENSIONS[producer.kind].get(EXT_ABS_SEND_TIME, 0)
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
        if EXT_ABS_SEND_TIME in producer.extensions:
            # our own send time, so that the subscriber's bandwidth estimate (REMB) measures
            # the path from us, not from the publisher
            self.plane.set_abs_send_time_id(abs_send_time)

    @property
    def paused(self) -> bool:
        return self.plane.paused

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


class SimulcastConsumer(Consumer):
    """Forwards one of the producer's simulcast layers, chosen per subscriber: the highest that
    is active, not above the preferred layer, and within the subscriber's bandwidth. Switching
    happens in the data plane at a keyframe of the new layer, with sequence numbers, timestamps
    and VP8 PictureID/TL0PICIDX continuous. Going down is immediate; going up waits until the
    higher layer has fitted the budget for UP_DELAY seconds.

    Events (besides Consumer's): ``layerschange`` (the layer now forwarded)."""

    type = "simulcast"
    UP_DELAY = 2.0  # seconds a higher layer must fit before switching up
    UP_MARGIN = 1.15  # ... with this much room to spare
    LOSS_DOWN = 26  # fraction lost (of 256) in receiver reports that moves one layer down
    DOWN_TOLERANCE = 0.85  # keep the current layer while the estimate is above this share of it

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
        super().__init__(
            producer, transport, ssrc=ssrc, rtx_ssrc=rtx_ssrc, paused=paused, app_data=app_data
        )
        self.preferred_layer: int | None = None  # None: the highest
        self.target_layer: int | None = None
        self.layer_changes = 0
        self._switches_seen = 0
        self._up_candidate: int | None = None
        self._up_since = 0.0
        self._sent_seen: tuple[int, float] | None = None
        self.plane.set_vp8_continuity(producer.codec.name == "VP8")
        for stream in producer.layers.values():
            if stream is not self.plane.stream:
                self.plane.attach_layer(stream)

    def start(self) -> None:
        if self.closed:
            return
        super().start()
        self.allocate(float("inf"), 0.0)

    def layer_added(self, layer: int, stream: _core.PlaneStream) -> None:
        self.plane.attach_layer(stream)

    def set_preferred_layer(self, layer: int | None) -> None:
        """The highest layer this subscriber wants (None: any); applied at once when lower."""
        if layer is not None and not 0 <= layer < len(self.producer.rids):
            raise ValueError(
                f"layer {layer} is outside 0..{len(self.producer.rids) - 1} of this producer"
            )
        self.preferred_layer = layer
        self._up_candidate = None
        self.allocate(float("inf"), 0.0, immediate=True)

    def allocate(self, budget: float, now: float, immediate: bool = False) -> float:
        if not self.started or self.closed:
            return 0.0
        producer = self.producer
        active = [layer for layer in producer.active_layers() if layer in producer.layers]
        if not active:
            active = sorted(producer.layers)
        ceiling = self.preferred_layer if self.preferred_layer is not None else max(active)
        allowed = [layer for layer in active if layer <= ceiling] or [min(active)]
        rates = dict(producer.layer_bitrates)
        sent = self._measure_sent(now)
        if sent is not None and self.target_layer is not None and self.plane.target is None:
            # what the current layer costs is what we actually send (dropped temporal layers
            # included): a receiver's estimate that follows its incoming rate is not congestion
            rates[self.target_layer] = int(min(rates.get(self.target_layer, sent), sent))
        if self.fraction_lost > self.LOSS_DOWN and self.target_layer is not None:
            # heavy loss toward this subscriber: fit under what the current layer needs
            budget = min(budget, rates.get(self.target_layer, 0) * 0.8)
        # the layer being forwarded stays while the estimate is within DOWN_TOLERANCE of its
        # cost: estimates that follow the incoming rate hover around it
        fitting = [
            layer
            for layer in allowed
            if rates.get(layer, 0) * (self.DOWN_TOLERANCE if layer == self.target_layer else 1)
            <= budget
        ]
        choice = max(fitting) if fitting else min(allowed)
        # not even the lowest layer fits: its base temporal layer (a third of the frame rate)
        starved = not fitting and rates.get(choice, 0) > 0
        preferred_t = self.preferred_temporal_layer
        self._apply_temporal(
            0 if starved and (preferred_t is None or preferred_t > 0) else preferred_t
        )
        current = self.target_layer
        if current is None or choice < current or immediate or current not in allowed:
            self._set_target(choice)
        elif choice > current:
            fits_well = rates.get(choice, 0) * self.UP_MARGIN <= budget
            if self._up_candidate != choice or not fits_well:
                self._up_candidate, self._up_since = (choice, now) if fits_well else (None, 0.0)
            elif now - self._up_since >= self.UP_DELAY:
                self._set_target(choice)
        else:
            self._up_candidate = None
        self._note_switches()
        return float(rates.get(self.target_layer or 0, 0))

    def _measure_sent(self, now: float) -> float | None:
        """This consumer's own sending rate (bit/s) since the previous allocation."""
        previous = self._sent_seen
        self._sent_seen = (self.plane.bytes, now)
        if previous is None or now - previous[1] < 0.2:
            return None
        return (self.plane.bytes - previous[0]) * 8 / (now - previous[1])

    def _set_target(self, layer: int) -> None:
        self._up_candidate = None
        if layer == self.target_layer:
            return
        self.target_layer = layer
        stream = self.producer.layers[layer]
        self.plane.set_target(stream)
        if self.plane.target is not None and not self.plane.paused:
            self.producer.awaiting_keyframe.add(self)
            if self.transport.connected:
                self.producer.request_keyframe(force=True, layer=layer)

    def _note_switches(self) -> None:
        switches = self.plane.layer_switches
        if switches != self._switches_seen:
            self._switches_seen = switches
            self.layer_changes += 1
            self.emit("layerschange", self.current_layer())

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        stats["preferredLayer"] = self.preferred_layer
        stats["targetLayer"] = self.target_layer
        return stats
