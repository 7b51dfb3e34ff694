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
(PLI) of its subscribers, which reach the publisher. A simulcast producer is carried as one
stream: the layer the pipe's bandwidth allows (REMB from the receiving side), switched at
keyframes.

The data plane matches a datagram to a transport by its source address, so between two workers
there is one pipe transport on each side; every producer piped between them goes through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mediasrv.plain_rtp_transport import PlainRtpTransport
from mediasrv.rtp_capabilities import SUBSCRIBE_EXTENSIONS

if TYPE_CHECKING:
    from mediasrv.consumer import Consumer
    from mediasrv.producer import Producer
    from mediasrv.router import Router

OFFER_KEYS = ("kind", "mimeType", "payloadType", "ssrc", "rtxPayloadType", "rtxSsrc",
              "extensions", "producerId", "appData")  # fmt: skip


class PipeError(ValueError):
    """A pipe offer is malformed; the message names the field."""


class PipeTransport(PlainRtpTransport):
    kind = "pipe"

    def __init__(self, router: Router, **kwargs: Any) -> None:
        super().__init__(router, **kwargs)
        self._rooms: dict[str, Router] = {}  # received producer id -> the router it joined
        self._target: Router | None = None

    def router_of(self, producer: Producer) -> Router:
        return self._rooms.get(producer.id, self.router)

    @property
    def local_address(self) -> tuple[str, int]:
        """The address the other side connects to: this worker's UDP port."""
        worker = self.router.worker
        return (worker.config.listen_ip, worker.port)

    def send(self, producer: Producer) -> dict[str, Any]:
        """Carry ``producer`` (of this worker) to the other side: a consumer on this pipe,
        started at once; returns the offer the other side's :meth:`receive` takes."""
        if self.remote_address is None:
            raise RuntimeError("connect() the pipe first")
        consumer: Consumer = self.consume(producer, app_data={"pipe": True})
        consumer.start()
        kind = producer.kind
        extensions = {uri: i for uri, i in SUBSCRIBE_EXTENSIONS[kind].items()
                      if uri in producer.extensions}  # fmt: skip
        return {
            "kind": kind,
            "mimeType": producer.codec.mime_type,
            "payloadType": producer.codec.payload_type,
            "ssrc": consumer.ssrc,
            "rtxPayloadType": producer.codec.rtx_payload_type if consumer.rtx_ssrc else 0,
            "rtxSsrc": consumer.rtx_ssrc,
            "extensions": extensions,
            "producerId": producer.id,
            "appData": {k: v for k, v in producer.app_data.items() if k == "peerId"},
        }

    def receive(self, offer: object, router: Router | None = None) -> Producer:
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
        self._target = target
        try:
            producer = self._produce(o)
        finally:
            self._target = None
        if target is not self.router:
            target.once("close", producer.close)
        return producer

    def add_producer(self, producer: Producer) -> None:
        if self._target is not None:
            self._rooms[producer.id] = self._target
        super().add_producer(producer)

    def _producer_closed(self, producer: Producer) -> None:
        super()._producer_closed(producer)
        self._rooms.pop(producer.id, None)

    def _produce(self, o: dict[str, Any]) -> Producer:
        return self.produce(
            kind=o["kind"],
            mime_type=o["mimeType"],
            payload_type=o["payloadType"],
            ssrc=o["ssrc"],
            rtx_payload_type=o["rtxPayloadType"],
            rtx_ssrc=o["rtxSsrc"],
            extensions=o["extensions"],
            app_data={**o["appData"], "pipedFrom": o["producerId"]},
        )


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
        value = offer[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
            raise PipeError(f"pipe offer: {key} must be an integer 0..{high}")
    if offer["ssrc"] == 0:
        raise PipeError("pipe offer: ssrc must not be 0")
    extensions = offer["extensions"]
    if not isinstance(extensions, dict) or not all(
        isinstance(u, str) and isinstance(i, int) and 1 <= i <= 14 for u, i in extensions.items()
    ):
        raise PipeError("pipe offer: extensions must map URIs to ids 1..14")
    if not isinstance(offer["appData"], dict):
        raise PipeError("pipe offer: appData must be an object")
    return dict(offer)
