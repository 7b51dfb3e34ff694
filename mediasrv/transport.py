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
from mediasrv.rtp_capabilities import TRANSPORT_CC_ID
from mediasrv.simulcast_consumer import SimulcastConsumer

log = logging.getLogger("mediasrv.transport")

NTP_EPOCH_OFFSET = 2208988800
RTCP_CNAME = b"mediasrv"
SENDER_REPORTS_PER_COMPOUND = 20  # about 1,060 bytes with the SDES
# transport-cc (cext/bwe.pyx): the send-side estimator's start and bounds, the feedback messages
# it needs before its estimate is used (about a second), how often publishers get feedback
BWE_START_BITRATE = 2_000_000
BWE_MIN_BITRATE = 30_000
BWE_MAX_BITRATE = 20_000_000
BWE_WARMUP_FEEDBACKS = 10
NACK_TICK = 0.02  # the worker calls tick_nack every 20 ms
FEEDBACK_TICKS = 3  # transport-cc feedback to a publisher every 60 ms
# probes: padding for PROBE_TICKS ticks at the rate a higher layer needs, at most every
# PROBE_INTERVAL seconds (backing off to PROBE_INTERVAL_MAX while they fail)
PROBE_TICKS = 4
PROBE_PACKET = 260  # bytes on the wire of a padding packet
PROBE_MAX_PACKETS = 40  # per tick
PROBE_INTERVAL = 2.0
PROBE_INTERVAL_MAX = 4.0
PROBE_ECHO = 0.5  # seconds after a probe in which an overuse is its own queue, not a reason to
# move down a layer (the estimate still falls)
PROBE_AFTER_SUCCESS = 0.5  # the next probe after one that found the rate it looked for
PROBE_HEADROOM = 1.5  # a probe asks for this much more than the layer needs (its result is noisy)
AUDIO_RESERVE = 48_000  # bit/s kept for each audio consumer before video gets any
STARVED_ALLOCATIONS = 3  # allocations (0.5 s apart) that could not carry video before its pause


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
    ice_restarts = 0  # WebRtcTransport counts its own

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
        # transport-cc: the send-side estimator toward a subscriber, feedback toward a publisher
        self.estimator: _core.SendSideEstimator | None = None
        self._overuses_seen = 0
        self._probe_ticks = 0  # ticks of the probe being sent (0: none)
        self._probe_bitrate = 0.0  # what the probe sends in all, bit/s
        self._next_probe = 0.0
        self._probe_interval = PROBE_INTERVAL
        self._probes_seen = 0
        self._probe_found = False  # the last probe got through at the rate it asked
        self._probe_ended = -1e9
        self._probe_need = 0.0
        self._probe_padder: Consumer | None = None  # the video consumer whose RTX pads
        self._feedback_ticks = 0
        self._starved = 0  # allocations in a row whose budget could not carry the video
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

    # ---- transport-cc ----

    def enable_transport_feedback(self, ext_id: int) -> None:
        """The publisher negotiated transport-cc with extension ext_id: report its packets'
        arrivals every FEEDBACK_TICKS timer ticks, so that its own estimator drives its uplink
        (the REMB of max_incoming_bitrate stays its ceiling)."""
        self.plane.enable_transport_feedback(ext_id)

    def enable_send_side_estimation(self) -> None:
        """The subscriber negotiated transport-cc: estimate its bandwidth from its feedback
        (the estimate replaces its REMB in the layer allocation)."""
        if self.estimator is None:
            self.estimator = self.plane.enable_send_side_estimation(
                TRANSPORT_CC_ID, BWE_START_BITRATE, BWE_MIN_BITRATE, BWE_MAX_BITRATE
            )

    @property
    def bandwidth_estimate(self) -> float | None:
        """bit/s: the send-side estimate once it has feedback to go by, else the
        subscriber's REMB, else None."""
        bwe = self.estimator
        if bwe is not None and bwe.feedbacks >= BWE_WARMUP_FEEDBACKS:
            return float(bwe.estimate)
        return float(self.remb_bitrate) if self.remb_bitrate else None

    def probe(self, bitrate: float, now: float, need: float | None = None) -> bool:
        """Send padding for PROBE_TICKS timer ticks so that this subscriber receives about
        `bitrate` in all: the estimator measures whether the path carries it (`need`, default
        the whole bitrate: what counts as found). False when a probe runs or ran less than
        the probe interval ago."""
        bwe = self.estimator
        if bwe is None or self._probe_ticks or now < self._next_probe or not self.connected:
            return False
        padder = next(
            (c for c in self.consumers.values() if c.kind == "video" and c.rtx_ssrc and c.started),
            None,
        )
        if padder is None:
            return False
        self._probe_bitrate = bitrate
        self._probe_need = bitrate if need is None else need
        self._probe_ticks = PROBE_TICKS
        self._probe_padder = padder
        bwe.start_probe()
        return True

    def _tick_probe(self, now: float) -> None:
        bwe = self.estimator
        if bwe is None:
            return
        if self._probe_ticks:
            self._probe_ticks -= 1
            padder = self._probe_padder
            extra = self._probe_bitrate - bwe.acknowledged_bitrate
            if extra > 0 and padder is not None and not padder.closed:
                packets = min(PROBE_MAX_PACKETS, int(extra * NACK_TICK / 8 / PROBE_PACKET) + 1)
                padder.plane.send_padding(packets)
            if not self._probe_ticks:
                bwe.end_probe()
                self._next_probe = now + self._probe_interval
                self._probe_ended = now
        elif bwe.probes != self._probes_seen:
            # a probe's result came: toward the rate asked for, probe again soon; else back off
            self._probes_seen = bwe.probes
            self._probe_found = bwe.last_probe >= self._probe_need
            if self._probe_found:
                self._probe_interval = PROBE_INTERVAL
                self._next_probe = min(self._next_probe, now + PROBE_AFTER_SUCCESS)
            else:
                self._probe_interval = min(self._probe_interval * 2, PROBE_INTERVAL_MAX)

    def tick_nack(self) -> None:
        """Ask publishers for the packets the data plane found missing, again for the
        keyframes that consumers still wait for, and for a first keyframe of a stream that
        has not shown one; send transport-cc feedback and probes."""
        bwe = self.estimator
        if bwe is not None:
            now = time.monotonic()
            self._tick_probe(now)
            if bwe.overuses != self._overuses_seen and bwe.feedbacks >= BWE_WARMUP_FEEDBACKS:
                # the path is overused: move down now, not at the next allocation
                self.allocate_layers(now)
        if not self.producers or not self.connected:
            return
        if self.plane.transport_feedback is not None:
            self._feedback_ticks += 1
            if self._feedback_ticks >= FEEDBACK_TICKS:
                self._feedback_ticks = 0
                first = next(iter(self.producers.values()))
                self.plane.send_transport_feedback(self.rtcp_ssrc, first.ssrc)
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
        """Share this subscriber's estimated bandwidth among its video consumers: single-
        stream ones take what they take, each simulcast consumer then gets the highest layer
        that fits what is left (in the order they were created).

        With transport-cc the estimate is the server's own (send-side, from the subscriber's
        feedback): audio is served first (AUDIO_RESERVE each), video that cannot fit even at
        its lowest layer's base temporal layer is paused until it can, and a consumer that
        wants a higher layer than fits gets a probe. Without it the estimate is the
        subscriber's REMB, read as a congestion signal; without either, unlimited."""
        video = [c for c in self.consumers.values() if c.kind == "video" and not c.paused]
        if not video:
            return
        estimate = self.bandwidth_estimate
        bwe = self.estimator
        estimated = bwe is not None and bwe.feedbacks >= BWE_WARMUP_FEEDBACKS
        overused = False
        if bwe is not None:
            overused = bwe.overuses != self._overuses_seen and (
                now - self._probe_ended > PROBE_ECHO or bool(self._probe_ticks)
            )
            self._overuses_seen = bwe.overuses
        budget = estimate if estimate is not None else float("inf")
        probe_wanted = 0.0
        if estimated:
            # audio first: what each audio stream takes (RED doubles Opus), at least the reserve
            budget -= sum(
                max(AUDIO_RESERVE, 1.2 * c.producer.layer_bitrates.get(0, 0))
                for c in self.consumers.values()
                if c.kind == "audio" and not c.paused
            )
            probe_wanted = self._pause_starved(video, budget)
        for consumer in video:
            if not isinstance(consumer, SimulcastConsumer):
                budget -= consumer.allocate(budget, now)
        for consumer in video:
            if isinstance(consumer, SimulcastConsumer):
                used = consumer.allocate(
                    max(budget, 0.0), now, estimated=estimated, overused=overused
                )
                if consumer.probe_wanted:
                    # after a probe that found its rate, look for the top layer at once
                    wanted = consumer.probe_top if self._probe_found else consumer.probe_wanted
                    probe_wanted = max(probe_wanted, wanted - used)
                budget -= used
        if estimated and probe_wanted > 0 and bwe is not None:
            acked = bwe.acknowledged_bitrate
            self.probe(acked + probe_wanted * PROBE_HEADROOM, now, need=acked + probe_wanted)

    def _pause_starved(self, video: list[Consumer], budget: float) -> float:
        """Pause the video of a subscriber whose estimate has not carried it beside its audio
        for STARVED_ALLOCATIONS allocations in a row (the lowest layer's base temporal layer is
        about a third of its rate); resume when 1.5 times that fits. While paused, the rate a
        probe should find (else 0)."""
        need = 0.0
        for consumer in video:
            rates = [r for r in consumer.producer.layer_bitrates.values() if r > 0]
            need += min(rates) / 3 if rates else 0.0
        self._starved = self._starved + 1 if need and budget < need else 0
        paused = [c for c in video if c.bwe_paused]
        if paused and budget >= 1.5 * need:
            for consumer in paused:
                consumer.set_bwe_paused(False)
            return 0.0
        if self._starved >= STARVED_ALLOCATIONS:
            for consumer in video:
                consumer.set_bwe_paused(True)
        return 1.5 * need if any(c.bwe_paused for c in video) else 0.0

    # ---- end ----

    def counters(self) -> Counter[str]:
        """Totals for the metrics, kept by the worker when this transport closes."""
        out: Counter[str] = Counter()
        bwe = self.estimator
        if bwe is not None:
            out["bwe_overuses"] = bwe.overuses
            out["bwe_probes"] = bwe.probes
        out["ice_restarts"] = self.ice_restarts
        return out

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.worker.closed_totals.update(self.counters())
        for consumer in list(self.consumers.values()):
            consumer.close()
        for producer in list(self.producers.values()):
            producer.close()
        self.plane.close()
        self.emit("close")
