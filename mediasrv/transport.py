"""Transport: what WebRtcTransport and PlainRtpTransport share — the data-plane endpoint, the
producers and consumers on it, and the RTCP policy (reports, NACK, keyframe requests, REMB)."""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections import Counter
from typing import Any, Protocol

from mediasrv import _core
from mediasrv.config import MediaConfig
from mediasrv.consumer import Consumer, SimpleConsumer
from mediasrv.events import Emitter
from mediasrv.producer import Producer
from mediasrv.simulcast_consumer import SimulcastConsumer

log = logging.getLogger("mediasrv.transport")

NTP_EPOCH_OFFSET = 2208988800
RTCP_CNAME = b"mediasrv"
SENDER_REPORTS_PER_COMPOUND = 20  # about 1,060 bytes with the SDES


def ntp_now() -> int:
    now = time.time() + NTP_EPOCH_OFFSET
    seconds = int(now)
    return (seconds << 32) | int((now - seconds) * (1 << 32))


class TransportWorker(Protocol):
    """What a transport needs of the worker it runs on (a Worker)."""

    @property
    def config(self) -> MediaConfig: ...

    @property
    def plane(self) -> _core.WorkerPlane | None: ...

    @property
    def port(self) -> int: ...

    @property
    def closed_totals(self) -> Counter[str]: ...

    def new_ssrc(self, taken: set[int]) -> int: ...

    def release_ssrcs(self, *ssrcs: int) -> None: ...

    def count_drop(self, reason: str) -> None: ...


class TransportRouter(Protocol):
    """What a transport needs of a router (a Router): its worker, and to hand it the
    producers that arrive (it forgets them when they close)."""

    @property
    def worker(self) -> TransportWorker: ...

    @property
    def closed(self) -> bool: ...

    def adopt_producer(self, producer: Producer) -> None: ...


class Transport(Emitter):
    """Events: ``close``, ``connected``, ``producer``, ``consumer``. close() cascades to the
    producers and consumers on this transport, then the data-plane endpoint; its router
    forgets it on ``close``."""

    kind = "transport"

    def __init__(
        self,
        router: TransportRouter,
        *,
        srtp: bool,
        max_incoming_bitrate: int,
        app_data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.id = uuid.uuid4().hex
        self.router = router
        self.worker = router.worker
        self.app_data = dict(app_data or {})
        if self.worker.plane is None:
            raise RuntimeError("the worker is not started")
        self.plane = _core.PlaneTransport(self.worker.plane, self, srtp=srtp)
        self.producers: dict[str, Producer] = {}
        self.consumers: dict[str, Consumer] = {}
        self._producers_by_ssrc: dict[int, Producer] = {}
        self._consumers_by_ssrc: dict[int, Consumer] = {}
        self.rtcp_ssrc = secrets.randbits(32) or 1
        self.max_incoming_bitrate = max_incoming_bitrate
        self.remb_bitrate: int | None = None
        self.rtcp_errors = 0
        self.rtcp_unknown_ssrc = 0
        self.closed = False
        self._sr_sent: dict[int, int] = {}  # consumer ssrc -> middle 32 bits of the SR's NTP time

    # ---- objects ----

    @property
    def connected(self) -> bool:
        return bool(self.plane.ready) and self.plane.remote_address is not None

    def router_of(self, producer: Producer) -> TransportRouter:
        """The router whose room a producer of this transport belongs to (its own; a pipe
        shared by the rooms of a worker says otherwise)."""
        return self.router

    def add_producer(self, producer: Producer) -> None:
        self.producers[producer.id] = producer
        for stream in producer.layers.values():
            self._producers_by_ssrc[stream.ssrc] = producer
        producer.on("close", lambda: self._producer_closed(producer))
        self.router_of(producer).adopt_producer(producer)
        self.emit("producer", producer)

    def producer_layer_added(self, producer: Producer, stream: _core.PlaneStream) -> None:
        """A simulcast layer of a producer of this transport arrived on a new SSRC."""
        self._producers_by_ssrc[stream.ssrc] = producer

    def consume(
        self, producer: Producer, *, paused: bool = False, app_data: dict[str, Any] | None = None
    ) -> Consumer:
        """A SimpleConsumer of producer on this transport, or a SimulcastConsumer when the
        producer has several layers (started by Consumer.start())."""
        if self.closed:
            raise RuntimeError("the transport is closed")
        if producer.closed:
            raise RuntimeError("the producer is closed")
        taken = set(self._consumers_by_ssrc)
        ssrc = self.worker.new_ssrc(taken)
        rtx_ssrc = self.worker.new_ssrc(taken | {ssrc}) if producer.kind == "video" else 0
        kind = SimulcastConsumer if producer.simulcast else SimpleConsumer
        consumer = kind(
            producer, self, ssrc=ssrc, rtx_ssrc=rtx_ssrc, paused=paused, app_data=app_data
        )
        self._adopt(consumer)
        return consumer

    def _adopt(self, consumer: Consumer) -> None:
        """A consumer made for this transport joins it and its producer."""
        self.consumers[consumer.id] = consumer
        self._consumers_by_ssrc[consumer.ssrc] = consumer
        consumer.producer.consumers[consumer.id] = consumer
        consumer.on("close", lambda: self._consumer_closed(consumer))
        self.emit("consumer", consumer)

    def _producer_closed(self, producer: Producer) -> None:
        self.worker.closed_totals.update(producer.counters())
        self.producers.pop(producer.id, None)
        for stream in producer.layers.values():
            self._producers_by_ssrc.pop(stream.ssrc, None)

    def _consumer_closed(self, consumer: Consumer) -> None:
        self.worker.closed_totals.update(consumer.counters())
        self.worker.release_ssrcs(consumer.ssrc, consumer.rtx_ssrc)
        self.consumers.pop(consumer.id, None)
        self._consumers_by_ssrc.pop(consumer.ssrc, None)
        self._sr_sent.pop(consumer.ssrc, None)

    # ---- RTCP in ----

    def handle_rtcp(self, data: bytes) -> None:
        compound = _core.parse_rtcp(data)
        if compound.errors:
            self.rtcp_errors += 1
            log.debug("transport %s: RTCP errors %s", self.id, compound.errors)
        for packet in compound.packets:
            if isinstance(packet, _core.RtcpSenderReport):
                producer = self._producers_by_ssrc.get(packet.ssrc)
                if producer is not None:
                    producer.sender_reports[packet.ssrc] = (
                        packet.ntp_timestamp,
                        packet.rtp_timestamp,
                        time.monotonic(),
                    )
                self._report_blocks(packet.reports)
            elif isinstance(packet, _core.RtcpReceiverReport):
                self._report_blocks(packet.reports)
            elif isinstance(packet, _core.RtcpNack):
                consumer = self._consumers_by_ssrc.get(packet.media_ssrc)
                if consumer is None:
                    self.rtcp_unknown_ssrc += 1
                else:
                    consumer.retransmit(packet.lost)
            elif isinstance(packet, _core.RtcpPli):
                self._keyframe_wanted(packet.media_ssrc)
            elif isinstance(packet, _core.RtcpFir):
                for ssrc, _seq in packet.entries:
                    self._keyframe_wanted(ssrc)
            elif isinstance(packet, _core.RtcpRemb):
                self.remb_bitrate = packet.bitrate

    def _keyframe_wanted(self, ssrc: int) -> None:
        consumer = self._consumers_by_ssrc.get(ssrc)
        if consumer is None:
            self.rtcp_unknown_ssrc += 1
            return
        consumer.pli_received += 1
        consumer.request_keyframe()

    def _report_blocks(self, blocks: list[_core.RtcpReportBlock]) -> None:
        now_mid = (ntp_now() >> 16) & 0xFFFFFFFF
        for block in blocks:
            consumer = self._consumers_by_ssrc.get(block.ssrc)
            if consumer is None:
                continue
            consumer.fraction_lost = block.fraction_lost
            if block.lsr:
                rtt = (now_mid - block.lsr - block.dlsr) & 0xFFFFFFFF
                if rtt < 0x10000 * 10:
                    consumer.rtt_ms = rtt * 1000 / 65536

    # ---- RTCP out ----

    def send_pli(self, *media_ssrcs: int) -> bool:
        return self.send_rtcp([_core.RtcpPli(self.rtcp_ssrc, ssrc) for ssrc in media_ssrcs])

    def send_rtcp(self, packets: list[Any]) -> bool:
        if self.closed or not self.connected:
            return False
        return bool(self.plane.send_rtcp(_core.serialize_rtcp(packets)))

    def tick_nack(self) -> None:
        """Ask publishers for the packets the data plane found missing, again for the
        keyframes that consumers still wait for, and for a first keyframe of a stream that
        has not shown one."""
        if not self.producers or not self.connected:
            return
        packets: list[Any] = []
        for producer in self.producers.values():
            for layer, stream in producer.layers.items():
                if stream.restarts != producer.restarts_seen.get(layer, 0):
                    # the publisher restarted its numbering: the consumers resync on a keyframe
                    producer.restarts_seen[layer] = stream.restarts
                    producer.awaiting_keyframe.update(producer.consumers.values())
                    producer.request_keyframe(force=True, layer=layer)
                lost = stream.take_nacks()
                if lost:
                    packets.append(_core.RtcpNack(self.rtcp_ssrc, stream.ssrc, lost))
            if producer.awaiting_keyframe:
                producer.retry_keyframe()
            producer.want_first_keyframe()
        if packets:
            self.send_rtcp(packets)

    def tick_reports(self) -> None:
        """Receiver reports and REMB toward publishers, sender reports toward subscribers."""
        if not self.connected:
            return
        now = time.monotonic()
        ntp = ntp_now()
        packets: list[Any] = []
        blocks = []
        video_ssrcs = []
        for producer in self.producers.values():
            producer.tick_bitrates(now)
            for stream in producer.layers.values():
                fraction, lost, highest, jitter = stream.report()
                if highest == 0:
                    continue
                lsr = dlsr = 0
                sender_report = producer.sender_reports.get(stream.ssrc)
                if sender_report is not None:
                    sr_ntp, _rtp, arrived = sender_report
                    lsr = (sr_ntp >> 16) & 0xFFFFFFFF
                    dlsr = int((now - arrived) * 65536) & 0xFFFFFFFF
                blocks.append(
                    _core.RtcpReportBlock(stream.ssrc, fraction, lost, highest, jitter, lsr, dlsr)
                )
                if producer.kind == "video":
                    video_ssrcs.append(stream.ssrc)
        for consumer in self.consumers.values():
            plane = consumer.plane
            if not plane.synced or plane.packets == 0:
                continue
            clock = consumer.codec.clock_rate
            sr = consumer.producer.sender_reports.get(plane.stream.ssrc)
            if sr is not None:
                sr_ntp, sr_rtp, arrived = sr
                elapsed = now - arrived
                rtp_ts = (sr_rtp + plane.timestamp_offset + int(elapsed * clock)) & 0xFFFFFFFF
                report_ntp = sr_ntp + int(elapsed * (1 << 32))
            else:
                rtp_ts = plane.last_timestamp
                report_ntp = ntp
            packets.append(
                _core.RtcpSenderReport(
                    consumer.ssrc,
                    report_ntp,
                    rtp_ts,
                    plane.packets & 0xFFFFFFFF,
                    plane.bytes & 0xFFFFFFFF,
                )
            )
            self._sr_sent[consumer.ssrc] = (report_ntp >> 16) & 0xFFFFFFFF
        head: list[Any] = [_core.RtcpReceiverReport(self.rtcp_ssrc, blocks[:31])]
        if video_ssrcs:
            head.append(_core.RtcpRemb(self.rtcp_ssrc, self.max_incoming_bitrate, video_ssrcs))
        sdes = _core.RtcpSdes([_core.RtcpSdesChunk(self.rtcp_ssrc, [(1, RTCP_CNAME)])])
        # compounds stay under a datagram's size: sender reports (52 bytes each) go in groups
        # (found in review: one compound for 67+ consumers was too big to send)
        if blocks or not packets:
            self.send_rtcp([*head, sdes])
        elif video_ssrcs:
            self.send_rtcp([head[1], sdes])
        for start in range(0, len(packets), SENDER_REPORTS_PER_COMPOUND):
            self.send_rtcp([*packets[start : start + SENDER_REPORTS_PER_COMPOUND], sdes])

    # ---- layer allocation ----

    def allocate_layers(self, now: float) -> None:
        """Share this subscriber's estimated bandwidth (REMB; unlimited without one) among its
        video consumers: single-stream ones take what they take, each simulcast consumer then
        gets the highest layer that fits what is left (in the order they were created)."""
        video = [c for c in self.consumers.values() if c.kind == "video" and not c.paused]
        if not video:
            return
        budget = float(self.remb_bitrate) if self.remb_bitrate else float("inf")
        for consumer in video:
            if not isinstance(consumer, SimulcastConsumer):
                budget -= consumer.allocate(budget, now)
        for consumer in video:
            if isinstance(consumer, SimulcastConsumer):
                budget -= consumer.allocate(max(budget, 0.0), now)

    # ---- end ----

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for consumer in list(self.consumers.values()):
            consumer.close()
        for producer in list(self.producers.values()):
            producer.close()
        self.plane.close()
        self.emit("close")
