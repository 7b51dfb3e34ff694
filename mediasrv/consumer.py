"""A Consumer: one subscriber's copy of a producer, rewritten and sent by the data plane."""

from __future__ import annotations

import time
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
        self.transport.worker.closed_totals.update(self.counters())
        self.plane.close()
        self.producer.consumers.pop(self.id, None)
        self.producer.awaiting_keyframe.discard(self)
        self.transport._consumer_closed(self)
        self.emit("close")


class SimpleConsumer(Consumer):
    """Forwards the producer's single stream as it is."""

    type = "simple"


class LayerConsumer(SimpleConsumer):
    """Forwards one simulcast layer of a producer as it is, never switching: a pipe carries
    each layer of a simulcast producer with one of these, so that the other side's
    subscribers choose among all the layers themselves. It keeps its layer wanted (encoded by
    the publisher) while it runs."""

    type = "layer"

    def __init__(self, producer: Producer, transport: Transport, *, layer: int, **kwargs: Any):
        if layer not in producer.layers:
            raise ValueError(f"the producer has no layer {layer} yet")
        self.layer = layer
        self.desired_layer = layer  # what Producer._tick_layer_use keeps encoded
        super().__init__(producer, transport, **kwargs)

    def _source(self) -> _core.PlaneStream:
        return self.producer.layers[self.layer]


class SimulcastConsumer(Consumer):
    """Forwards one of the producer's simulcast layers, chosen per subscriber. Switching happens
    in the data plane at a keyframe of the new layer, with sequence numbers, timestamps and VP8
    PictureID/TL0PICIDX continuous.

    Policy: the preferred layer (the highest by default), reached one step at a time, UP_DELAY
    seconds apart, while the subscriber is not congested; congestion — its estimate (REMB) under
    CONGESTION_SHARE of what this consumer sends, outside GRACE seconds after a step up, or
    LOSS_DOWN loss in its receiver reports — moves it at once to the highest layer that fits the
    estimate. A receiver's estimate mostly follows its incoming rate, so it is read as a
    congestion signal, not as room to grow.

    Events (besides Consumer's): ``layerschange`` (the layer now forwarded)."""

    type = "simulcast"
    UP_DELAY = 2.0  # seconds without congestion before each step up
    GRACE = 3.0  # seconds after a step up in which a low estimate is not yet congestion
    CONGESTION_SHARE = 0.5  # an estimate under this share of what is sent is congestion
    LOSS_DOWN = 26  # fraction lost (of 256) in receiver reports that is congestion

    def _setup(self) -> None:
        """Attach to every layer the producer has so far (later ones: layer_added)."""
        self.preferred_layer: int | None = None  # None: the highest
        self.target_layer: int | None = None
        self.layer_changes = 0
        self._switches_seen = 0
        self._calm_since = 0.0  # last congestion or step up
        self._raised_at = -1e9  # last step up
        self._sent_seen: tuple[int, float] | None = None
        self.desired_layer: int | None = None
        self.plane.set_vp8_continuity(self.producer.codec.name == "VP8")
        for stream in self.producer.layers.values():
            if stream is not self.plane.stream:
                self.plane.attach_layer(stream)

    def start(self) -> None:
        if self.closed:
            return
        super().start()
        self.allocate(float("inf"), time.monotonic(), immediate=True)

    def layer_added(self, layer: int, stream: _core.PlaneStream) -> None:
        self.plane.attach_layer(stream)

    def set_preferred_layer(self, layer: int | None) -> None:
        """The highest layer this subscriber wants (None: any); applied at once when lower."""
        if layer is not None and not 0 <= layer < len(self.producer.rids):
            raise ValueError(
                f"layer {layer} is outside 0..{len(self.producer.rids) - 1} of this producer"
            )
        self.preferred_layer = layer
        self.allocate(float("inf"), time.monotonic(), immediate=True)

    def allocate(self, budget: float, now: float, immediate: bool = False) -> float:
        """Choose the layer to forward (see the class docstring); budget is the subscriber's
        estimate (REMB) left for this consumer, inf when there is none."""
        if not self.started or self.closed:
            return 0.0
        producer = self.producer
        known = sorted(producer.layers)
        active = [layer for layer in producer.active_layers() if layer in producer.layers]
        if not active:
            active = known
        ceiling = self.preferred_layer if self.preferred_layer is not None else max(known)
        allowed = [layer for layer in active if layer <= ceiling] or [min(active)]
        rates = dict(producer.layer_bitrates)
        sent = self._measure_sent(now)
        current = self.target_layer
        in_grace = now - self._raised_at < self.GRACE
        congested = self.fraction_lost > self.LOSS_DOWN or (
            sent is not None and sent > 0 and budget < sent * self.CONGESTION_SHARE and not in_grace
        )
        if congested:
            # the estimate (or the loss) says the link no longer carries what is sent: the
            # highest layer that fits it, at once
            limit = (
                min(budget, (sent or budget) * 0.8)
                if self.fraction_lost > self.LOSS_DOWN
                else budget
            )
            fitting = [layer for layer in allowed if rates.get(layer, 0) <= limit]
            choice = max(fitting) if fitting else min(allowed)
            self._calm_since = now
            desired = choice
        else:
            # no congestion: the preferred layer, reached one step at a time, UP_DELAY apart
            desired = ceiling if ceiling in known else max(known)
            if current is None or immediate or current not in allowed or current > desired:
                choice = (
                    max(layer for layer in allowed if layer <= desired)
                    if any(layer <= desired for layer in allowed)
                    else min(allowed)
                )
            else:
                higher = [layer for layer in allowed if current < layer <= desired]
                if higher and now - self._calm_since >= self.UP_DELAY:
                    choice = min(higher)
                    self._calm_since = now
                    self._raised_at = now
                else:
                    choice = current
        # a subscriber that cannot carry even the lowest layer gets its base temporal layer
        starved = congested and choice == min(allowed) and rates.get(choice, 0) > budget
        preferred_t = self.preferred_temporal_layer
        self._apply_temporal(
            0 if starved and (preferred_t is None or preferred_t > 0) else preferred_t
        )
        self.desired_layer = desired
        self._set_target(choice)
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


class LayerError(ValueError):
    """A preferred layer that does not fit the consumer: ``reason`` is ``layer_invalid`` (not
    an integer or null) or ``layer_not_simulcast``; the message says which key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def set_preferred_layers(consumer: Consumer, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply ``{"spatialLayer"?: int | None, "temporalLayer"?: int | None}`` to a consumer
    (signaling's setPreferredLayers and the admin API); the layers now. LayerError when a
    value is not an integer or null, out of range, or spatial on a non-simulcast consumer."""
    for key in ("spatialLayer", "temporalLayer"):
        value = changes.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise LayerError("layer_invalid", f"{key} must be an integer or null")
    if "spatialLayer" in changes and not isinstance(consumer, SimulcastConsumer):
        raise LayerError("layer_not_simulcast", "the consumer's producer is not simulcast")
    spatial = changes.get("spatialLayer")
    layers = len(consumer.producer.rids)
    if spatial is not None and not 0 <= spatial < layers:
        # checked before anything changes: a refused request changes nothing
        raise ValueError(f"layer {spatial} is outside 0..{layers - 1} of this producer")
    if "temporalLayer" in changes:
        consumer.set_preferred_temporal_layer(changes["temporalLayer"])
    if isinstance(consumer, SimulcastConsumer) and "spatialLayer" in changes:
        consumer.set_preferred_layer(changes["spatialLayer"])
    return {
        "preferredLayer": getattr(consumer, "preferred_layer", None),
        "targetLayer": consumer.wanted_layer(),
        "preferredTemporalLayer": consumer.preferred_temporal_layer,
    }
