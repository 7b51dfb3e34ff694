"""PipeTransport: a producer of one router carried to another router, on another worker
process or node, over plain RTP/RTCP (the routers' workers' UDP ports, loopback or a private
network). The cascading primitive: a room's producer reaches subscribers served elsewhere.

    # on the sending router's side
    out = router_a.create_pipe_transport()
    out.connect(remote_worker_address)                 # where the other side's worker listens
    offer = out.send(producer)                         # {kind, mimeType, ssrc, ...} (JSON)
    # on the receiving router's side (another process: send `offer` over any channel)
    into = router_b.create_pipe_transport()
    into.connect(sending_worker_address)
    piped = into.receive(offer)                        # a Producer of router_b: its room's
                                                       # peers subscribe to it as to any other

Repairs and keyframes cross the pipe as for any subscriber: the receiving side NACKs losses
(answered from the sending consumer's packet cache, by RTX) and forwards keyframe requests
(PLI) of its subscribers, which reach the publisher. A simulcast producer is carried with all
its layers, each as a stream of its own (a LayerConsumer per layer on the sending side, the
layers of one simulcast producer on the receiving side), so each subscriber over there gets
the layer that suits it. The other side's copy says which layers its subscribers want
(its ``layerswanted`` event, passed back to :meth:`PipeTransport.set_layers_wanted` over the
channel that carried the offer): the other layers' streams pause, and the publisher may stop
encoding them, as for a subscriber of its own.

``create_pipe_transport(srtp="AEAD_AES_128_GCM")`` protects the pipe with SRTP, for pipes
that leave the machine: each side passes its ``srtp_parameters`` to the other's ``connect``.

The data plane matches a datagram to a transport by its source address, so between two workers
there is one pipe transport on each side; every producer piped between them goes through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mediasrv.consumer import Consumer
from mediasrv.layer_consumer import LayerConsumer
from mediasrv.plain_rtp_transport import PlainRtpTransport
from mediasrv.producer import Producer
from mediasrv.rtp_capabilities import SUBSCRIBE_EXTENSIONS
from mediasrv.transport import TransportRouter

OFFER_KEYS = ("kind", "mimeType", "payloadType", "ssrc", "rtxPayloadType", "rtxSsrc",
              "extensions", "producerId", "appData")  # fmt: skip
MAX_LAYERS = 4
RID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


class PipeError(ValueError):
    """A pipe offer is malformed; the message names the field."""


class PipeTransport(PlainRtpTransport):
    kind = "pipe"

    def __init__(self, router: TransportRouter, **kwargs: Any) -> None:
        super().__init__(router, **kwargs)
        self._rooms: dict[str, TransportRouter] = {}  # received producer id -> the router it joined
        self._target: TransportRouter | None = None
        # producers sent from here: id -> their consumers on this pipe, one per layer
        self._sent: dict[str, list[Consumer]] = {}
        # layers of a sent simulcast producer whose first packet has not come yet
        self._layers_due: dict[str, dict[int, tuple[int, int]]] = {}
        # the layers the other side's copy wants (set_layers_wanted), by producer id
        self._wanted: dict[str, list[bool]] = {}
        self._wanted_seq: dict[str, int] = {}
        # the listeners on each sent producer, removed when it stops being sent
        self._listening: dict[str, list[tuple[Producer, str, Callable[..., None]]]] = {}

    def router_of(self, producer: Producer) -> TransportRouter:
        return self._rooms.get(producer.id, self.router)

    @property
    def local_address(self) -> tuple[str, int]:
        """The address the other side connects to: this worker's UDP port."""
        worker = self.router.worker
        return (worker.config.listen_ip, worker.port)

    # ---- the sending side ----

    def send(self, producer: Producer) -> dict[str, Any]:
        """Carry ``producer`` (of this worker) to the other side: consumers on this pipe,
        started at once; returns the offer the other side's :meth:`receive` takes."""
        if self.remote_address is None:
            raise RuntimeError("connect() the pipe first")
        if producer.id in self._sent:
            raise ValueError("the producer is already sent on this pipe")
        kind = producer.kind
        extensions = {uri: i for uri, i in SUBSCRIBE_EXTENSIONS[kind].items()
                      if uri in producer.extensions}  # fmt: skip
        offer: dict[str, Any] = {
            "kind": kind,
            "mimeType": producer.codec.mime_type,
            "payloadType": producer.codec.payload_type,
            "extensions": extensions,
            "producerId": producer.id,
            "appData": {k: v for k, v in producer.app_data.items() if k == "peerId"},
        }
        self._sent[producer.id] = []
        self._listen(producer, "close", lambda: self._forget_sent(producer.id))
        if producer.simulcast:
            layers = self._send_layers(producer)
            offer["rids"] = list(producer.rids)
            offer["layers"] = [{"ssrc": ssrc, "rtxSsrc": rtx} for ssrc, rtx in layers]
            offer["ssrc"], offer["rtxSsrc"] = layers[0]
        else:
            consumer = self.consume(producer, app_data={"pipe": True})
            consumer.start()
            self._sent[producer.id].append(consumer)
            offer["ssrc"], offer["rtxSsrc"] = consumer.ssrc, consumer.rtx_ssrc
        offer["rtxPayloadType"] = producer.codec.rtx_payload_type if offer["rtxSsrc"] else 0
        return offer

    def _send_layers(self, producer: Producer) -> list[tuple[int, int]]:
        """An SSRC pair for every layer, now: the layers that exist start at once, the others
        when their first packet arrives (the producer's ``layer`` event)."""
        taken = set(self._consumers_by_ssrc)
        pairs: list[tuple[int, int]] = []
        for _ in producer.rids:
            ssrc = self.worker.new_ssrc(taken)
            rtx = self.worker.new_ssrc(taken | {ssrc})
            taken.update((ssrc, rtx))
            pairs.append((ssrc, rtx))
        self._layers_due[producer.id] = dict(enumerate(pairs))
        for layer in sorted(producer.layers):
            self._start_layer(producer, layer)
        if self._layers_due.get(producer.id):
            self._listen(producer, "layer", lambda layer, _s: self._start_layer(producer, layer))
        return pairs

    def _listen(self, producer: Producer, event: str, listener: Callable[..., None]) -> None:
        producer.on(event, listener)
        self._listening.setdefault(producer.id, []).append((producer, event, listener))

    def _start_layer(self, producer: Producer, layer: int) -> None:
        due = self._layers_due.get(producer.id, {})
        pair = due.pop(layer, None)
        if pair is None:
            return
        ssrc, rtx = pair
        if self.closed or producer.closed:
            self.worker.release_ssrcs(ssrc, rtx)
            return
        consumer = LayerConsumer(producer, self, layer=layer, ssrc=ssrc, rtx_ssrc=rtx,
                                 app_data={"pipe": True, "layer": layer})  # fmt: skip
        wanted = self._wanted.get(producer.id)
        if wanted is not None and layer < len(wanted) and not wanted[layer]:
            consumer.pause()
        self._adopt(consumer)
        consumer.start()
        self._sent[producer.id].append(consumer)

    def set_layers_wanted(
        self, producer_id: str, active: list[bool], *, seq: int | None = None
    ) -> int:
        """The layers the other side's copy of a simulcast producer wants (its producer's
        ``layerswanted`` event: what its subscribers take): the streams of the other layers
        pause here, so that the publisher may stop encoding them, and resume when wanted
        again. ``seq`` numbers the messages: one not newer than the last is ignored. How many
        streams changed."""
        if producer_id not in self._sent:
            raise ValueError("the producer is not sent on this pipe")
        if seq is not None:  # numbered messages: one older than the last came late
            if seq <= self._wanted_seq.get(producer_id, -1):
                return 0
            self._wanted_seq[producer_id] = seq
        self._wanted[producer_id] = list(active)
        changed = 0
        for consumer in self._sent[producer_id]:
            if not isinstance(consumer, LayerConsumer) or consumer.layer >= len(active):
                continue
            if active[consumer.layer] and consumer.paused:
                consumer.resume()
                changed += 1
            elif not active[consumer.layer] and not consumer.paused:
                consumer.pause()
                changed += 1
        return changed

    def sent_ids(self) -> list[str]:
        """The ids of the producers this pipe carries to the other side."""
        return list(self._sent)

    def sent(self, producer: Producer) -> list[Consumer]:
        """The consumers carrying ``producer`` on this pipe (one per layer that has begun)."""
        return list(self._sent.get(producer.id, []))

    def stop(self, producer_id: str) -> int:
        """Stop carrying a producer (the other side closes its copy when told so); how many
        streams stopped."""
        consumers = self._sent.get(producer_id, [])
        for consumer in consumers:
            consumer.close()
        stopped = len(consumers)
        self._forget_sent(producer_id)
        return stopped

    def _forget_sent(self, producer_id: str) -> None:
        self._sent.pop(producer_id, None)
        self._wanted.pop(producer_id, None)
        self._wanted_seq.pop(producer_id, None)
        for producer, event, listener in self._listening.pop(producer_id, []):
            producer.remove_listener(event, listener)
        due = self._layers_due.pop(producer_id, {})
        for ssrc, rtx in due.values():
            self.worker.release_ssrcs(ssrc, rtx)

    def close(self) -> None:
        for producer_id in list(self._sent):
            self._forget_sent(producer_id)  # its consumers close with the transport
        super().close()

    # ---- the receiving side ----

    def receive(self, offer: object, router: TransportRouter | None = None) -> Producer:
        """The producer the other side's :meth:`send` carries here, a producer of ``router``
        (default: this transport's; a worker's shared pipe serves every room's router). It
        closes when that router closes."""
        if self.remote_address is None:
            raise RuntimeError("connect() the pipe first")
        o = check_offer(offer)
        target = router or self.router
        if target.worker is not self.router.worker:
            raise ValueError("the router is on another worker than the pipe")
        if target.closed:
            raise RuntimeError("the router is closed")
        streams = o.get("layers") or [{"ssrc": o["ssrc"], "rtxSsrc": o["rtxSsrc"]}]
        taken = {s for p in self.producers.values() for x in p.layers.values()
                 for s in (x.ssrc, x.rtx_ssrc) if s}  # fmt: skip
        if any(s in taken for layer in streams for s in (layer["ssrc"], layer["rtxSsrc"])):
            raise PipeError("pipe offer: an ssrc of it is already received on this pipe")
        self._target = target
        try:
            producer = self._produce(o)
        finally:
            self._target = None
        return producer

    def add_producer(self, producer: Producer) -> None:
        if self._target is not None:
            self._rooms[producer.id] = self._target
        super().add_producer(producer)

    def _producer_closed(self, producer: Producer) -> None:
        super()._producer_closed(producer)
        self._rooms.pop(producer.id, None)

    def _produce(self, o: dict[str, Any]) -> Producer:
        producer = self.produce(
            kind=o["kind"],
            mime_type=o["mimeType"],
            payload_type=o["payloadType"],
            ssrc=o["ssrc"],
            rtx_payload_type=o["rtxPayloadType"],
            rtx_ssrc=o["rtxSsrc"],
            extensions=o["extensions"],
            rids=o.get("rids"),
            app_data={**o["appData"], "pipedFrom": o["producerId"]},
        )
        for layer, streams in enumerate(o.get("layers", [])[1:], start=1):
            producer.add_layer(layer, streams["ssrc"])
            if streams["rtxSsrc"]:
                producer.set_layer_rtx(layer, streams["rtxSsrc"])
        return producer


def _check_int(value: object, key: str, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
        raise PipeError(f"pipe offer: {key} must be an integer 0..{high}")


def check_offer(offer: object) -> dict[str, Any]:
    """A pipe offer with every field of the right type (PipeError naming the first that is
    not): offers may come from another process or node."""
    if not isinstance(offer, dict):
        raise PipeError("the pipe offer must be an object")
    missing = [k for k in OFFER_KEYS if k not in offer]
    if missing:
        raise PipeError(f"pipe offer: {missing[0]} is missing")
    if offer["kind"] not in ("audio", "video"):
        raise PipeError("pipe offer: kind must be audio or video")
    for key in ("mimeType", "producerId"):
        if not isinstance(offer[key], str) or not 0 < len(offer[key]) <= 64:
            raise PipeError(f"pipe offer: {key} must be a string")
    for key, high in (("payloadType", 127), ("rtxPayloadType", 127), ("ssrc", 0xFFFFFFFF),
                      ("rtxSsrc", 0xFFFFFFFF)):  # fmt: skip
        _check_int(offer[key], key, high)
    if offer["ssrc"] == 0:
        raise PipeError("pipe offer: ssrc must not be 0")
    extensions = offer["extensions"]
    if not isinstance(extensions, dict) or not all(
        isinstance(u, str) and isinstance(i, int) and 1 <= i <= 14 for u, i in extensions.items()
    ):
        raise PipeError("pipe offer: extensions must map URIs to ids 1..14")
    if not isinstance(offer["appData"], dict):
        raise PipeError("pipe offer: appData must be an object")
    if "rids" in offer or "layers" in offer:
        if offer["kind"] != "video":
            raise PipeError("pipe offer: only video has simulcast layers (rids)")
        _check_layers(offer)
    return dict(offer)


def _check_layers(offer: dict[str, Any]) -> None:
    """A simulcast offer: rids (2..MAX_LAYERS distinct RIDs) and one {ssrc, rtxSsrc} per rid,
    the first being the offer's own ssrc; no SSRC twice."""
    rids, layers = offer.get("rids"), offer.get("layers")
    if (
        not isinstance(rids, list)
        or not 2 <= len(rids) <= MAX_LAYERS
        or not all(isinstance(r, str) and 0 < len(r) <= 16 and set(r) <= RID_CHARS for r in rids)
        or len(set(rids)) != len(rids)
    ):
        raise PipeError(f"pipe offer: rids must be 2..{MAX_LAYERS} distinct RIDs")
    if not isinstance(layers, list) or len(layers) != len(rids):
        raise PipeError("pipe offer: layers must have one entry per rid")
    seen: set[int] = set()
    for index, layer in enumerate(layers):
        if not isinstance(layer, dict) or "ssrc" not in layer or "rtxSsrc" not in layer:
            raise PipeError(f"pipe offer: layers[{index}] must be {{ssrc, rtxSsrc}}")
        _check_int(layer["ssrc"], f"layers[{index}].ssrc", 0xFFFFFFFF)
        _check_int(layer["rtxSsrc"], f"layers[{index}].rtxSsrc", 0xFFFFFFFF)
        used = {layer["ssrc"], layer["rtxSsrc"]} - {0}
        if layer["ssrc"] == 0 or used & seen:
            raise PipeError(f"pipe offer: layers[{index}] repeats an ssrc or has ssrc 0")
        seen |= used
    if layers[0]["ssrc"] != offer["ssrc"] or layers[0]["rtxSsrc"] != offer["rtxSsrc"]:
        raise PipeError("pipe offer: layers[0] must be the offer's own ssrc and rtxSsrc")
