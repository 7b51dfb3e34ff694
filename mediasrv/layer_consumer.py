"""LayerConsumer: one simulcast layer of a producer, forwarded as it is (a pipe's)."""

from __future__ import annotations

from typing import Any

from mediasrv import _core
from mediasrv.consumer import ConsumerTransport, SimpleConsumer
from mediasrv.producer import Producer


class LayerConsumer(SimpleConsumer):
    """Forwards one simulcast layer of a producer as it is, never switching: a pipe carries
    each layer of a simulcast producer with one of these, so that the other side's
    subscribers choose among all the layers themselves. It keeps its layer wanted (encoded by
    the publisher) while it runs."""

    type = "layer"

    def __init__(
        self, producer: Producer, transport: ConsumerTransport, *, layer: int, **kwargs: Any
    ):
        if layer not in producer.layers:
            raise ValueError(f"the producer has no layer {layer} yet")
        self.layer = layer
        self.desired_layer = layer  # what Producer._tick_layer_use keeps encoded
        super().__init__(producer, transport, **kwargs)

    def _source(self) -> _core.PlaneStream:
        return self.producer.layers[self.layer]
