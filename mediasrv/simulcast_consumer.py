"""SimulcastConsumer: one of a producer's simulcast layers, chosen per subscriber."""

from __future__ import annotations

import time
from typing import Any

from mediasrv import _core
from mediasrv.consumer import Consumer


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
    FIT_MARGIN = 1.1  # with a send-side estimate, a higher layer needs this share of its rate

    def _setup(self) -> None:
        """Attach to every layer the producer has so far (later ones: layer_added)."""
        self.preferred_layer: int | None = None  # None: the highest
        self.target_layer = None
        self.layer_changes = 0
        self._switches_seen = 0
        self._calm_since = 0.0  # last congestion or step up
        self._raised_at = -1e9  # last step up
        self._sent_seen: tuple[int, float] | None = None
        self.desired_layer = None
        # with a send-side estimate: the rate of the next layer up, when the estimate does not
        # cover it (the transport probes for it)
        self.probe_wanted = 0.0
        self.probe_top = 0.0  # ... and of the highest layer wanted
        self._switch_down_at: float | None = None  # a switch down waits for its keyframe
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

    def allocate(
        self,
        budget: float,
        now: float,
        immediate: bool = False,
        *,
        estimated: bool = False,
        overused: bool = False,
    ) -> float:
        """Choose the layer to forward (see the class docstring); budget is the subscriber's
        estimate left for this consumer, inf when there is none. estimated: the budget is the
        server's send-side estimate (transport-cc), which is room and not only a congestion
        signal; overused: its delay detector found the path overused since the last call."""
        self.probe_wanted = self.probe_top = 0.0
        if estimated and not immediate:
            return self._allocate_estimated(budget, now, overused)
        if not self.started or self.closed:
            return 0.0
        known, ceiling, allowed, rates = self._layer_options()
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
        return self._apply(choice, desired, congested, budget, allowed, rates)

    def _allocate_estimated(self, budget: float, now: float, overused: bool) -> float:
        """The policy with a send-side estimate: down at once to the highest layer that fits
        when the path is overused, lossy or the estimate fell below what is sent; up (as far
        as the estimate covers, FIT_MARGIN included) after UP_DELAY calm seconds, asking for a
        probe when the next layer does not fit."""
        if not self.started or self.closed:
            return 0.0
        known, ceiling, allowed, rates = self._layer_options()
        sent = self._measure_sent(now)
        current = self.target_layer
        congested = (
            overused
            or self.fraction_lost > self.LOSS_DOWN
            or (sent is not None and sent > 0 and sent > budget * 1.05)
        )
        desired = ceiling if ceiling in known else max(known)
        if current is None or current not in allowed:
            fitting = [layer for layer in allowed if rates.get(layer, 0) <= budget]
            choice = max(fitting) if fitting else min(allowed)
        elif congested:
            fitting = [
                layer for layer in allowed if layer <= current and rates.get(layer, 0) <= budget
            ]
            choice = max(fitting) if fitting else min(allowed)
            self._calm_since = now
            if choice < current:
                # until the lower layer's keyframe comes, half the frames of this one
                self._switch_down_at = now
        elif current > desired:
            choice = max(layer for layer in allowed if layer <= desired)
        else:
            choice = current
            higher = [layer for layer in allowed if current < layer <= desired]
            if higher and now - self._calm_since >= self.UP_DELAY:
                fits = [
                    layer for layer in higher if rates.get(layer, 0) * self.FIT_MARGIN <= budget
                ]
                if fits:
                    # the estimate (a probe's, often) vouches for it: no calm period after it
                    choice = max(fits)
                    self._raised_at = now
                higher = [layer for layer in higher if layer > choice]
                if higher:
                    self.probe_wanted = float(rates.get(min(higher), 0))
                    self.probe_top = float(rates.get(max(higher), 0))
        return self._apply(choice, desired, congested, budget, allowed, rates)

    def _layer_options(self) -> tuple[list[int], int, list[int], dict[int, int]]:
        """The layers known, the highest wanted, those that may be chosen (active at the
        publisher and not above the preference) and each layer's bit rate."""
        producer = self.producer
        known = sorted(producer.layers)
        active = [layer for layer in producer.active_layers() if layer in producer.layers]
        if not active:
            active = known
        ceiling = self.preferred_layer if self.preferred_layer is not None else max(known)
        allowed = [layer for layer in active if layer <= ceiling] or [min(active)]
        return known, ceiling, allowed, dict(producer.layer_bitrates)

    def _apply(
        self,
        choice: int,
        desired: int,
        congested: bool,
        budget: float,
        allowed: list[int],
        rates: dict[int, int],
    ) -> float:
        """Switch to the layer chosen; a subscriber that cannot carry even the lowest layer
        gets its base temporal layer. What the layer costs (bit/s)."""
        starved = congested and choice == min(allowed) and rates.get(choice, 0) > budget
        preferred_t = self.preferred_temporal_layer
        switching_down = self._switch_down_at is not None and (
            self.plane.target is not None or choice != self.target_layer
        )
        temporal: int | None
        if starved:
            temporal = 0 if preferred_t is None or preferred_t > 0 else preferred_t
        elif switching_down:
            temporal = 1 if preferred_t is None or preferred_t > 1 else preferred_t
        else:
            self._switch_down_at = None
            temporal = preferred_t
        self._apply_temporal(temporal)
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
