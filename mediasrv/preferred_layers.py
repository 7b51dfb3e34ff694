"""setPreferredLayers: a subscriber's choice of spatial and temporal layers, checked and
applied to a consumer (signaling and the admin API)."""

from __future__ import annotations

from typing import Any

from mediasrv.consumer import Consumer
from mediasrv.simulcast_consumer import SimulcastConsumer


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
