"""Peer: one participant of a Room — its send transport (it offers, the server answers), its
receive transport (the server offers one m-line per consumer), and its data channels."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mediasrv import _core
from mediasrv.config import ServerConfig
from mediasrv.consumer import Consumer
from mediasrv.data_consumer import DataConsumer
from mediasrv.data_producer import DataProducer
from mediasrv.events import Emitter
from mediasrv.identity import Identity
from mediasrv.producer import Producer
from mediasrv.router import Router
from mediasrv.rtp_capabilities import EXT_MID, EXT_RID, EXT_RRID, TRANSPORT_CC_ID
from mediasrv.sdp.negotiation import (
    MAX_MESSAGE_SIZE,
    NegotiationError,
    OfferedTrack,
    SubscribeSlot,
    answer_publish_offer,
    build_subscribe_offer,
    parse_subscribe_answer,
)
from mediasrv.webrtc_transport import WebRtcTransport

log = logging.getLogger("mediasrv.peer")

CONTROL_LABEL_PREFIX = "mediasrv"  # data channel labels the server keeps for itself
Notify = Callable[[str, dict[str, Any]], None]


class DataChannelOwner(Protocol):
    """Who takes the data channels of its labels instead of the room (a Plugin)."""

    @property
    def name(self) -> str: ...

    def on_data_channel(self, peer: Peer, channel: Any) -> None: ...


class DataChannelOwners(Protocol):
    """The owners of data channel labels (a PluginManager)."""

    def for_label(self, label: str) -> DataChannelOwner | None: ...


class PeerServer(Protocol):
    @property
    def config(self) -> ServerConfig: ...

    @property
    def plugins(self) -> DataChannelOwners: ...


class PeerRoom(Protocol):
    """What a peer needs of its room (a Room): the router its transports are made on, the
    other peers, and the server's limits and data channel owners. ``mediasrv.room.room_of``
    gives the whole Room."""

    @property
    def id(self) -> str: ...

    @property
    def router(self) -> Router: ...

    @property
    def peers(self) -> Mapping[str, Peer]: ...

    @property
    def server(self) -> PeerServer: ...


@dataclass
class _Slot:
    """One m-section of the receive connection. A closed slot is offered with port 0; once the
    client has answered that offer, its position may carry a new consumer under a new mid
    (JSEP recycling), which keeps the description from growing with every unsubscribe."""

    mid: str
    kind: str
    consumer: Consumer | None
    closed_offered: bool = False
    reusable: bool = False


class Peer(Emitter):
    """Events: ``producer``, ``dataproducer``, ``close``. close() closes both transports (and so
    every producer, consumer and data channel of this peer)."""

    def __init__(
        self,
        room: PeerRoom,
        display_name: str,
        notify: Notify,
        *,
        auto_subscribe: bool = True,
        receive_codecs: list[str] | None = None,
        app_data: dict[str, Any] | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.id = uuid.uuid4().hex[:16]
        # the mime types this peer can decode (None: anything the server forwards)
        self.receive_codecs = (
            None if receive_codecs is None else {c.lower() for c in receive_codecs}
        )
        self.room = room
        self.display_name = display_name
        self.notify = notify
        self.auto_subscribe = auto_subscribe
        self.app_data = dict(app_data or {})
        # facts plugins show to the other peers (e.g. "onBehalfOf"); JSON-serializable
        self.attributes = dict(attributes or {})
        self.identity: Identity | None = None  # set by an authenticate plugin hook
        self.send_transport: WebRtcTransport = room.router.create_webrtc_transport()
        self.send_transport.on("unknownssrc", self._claim_ssrc)
        self.send_transport.on("datachannel", self._on_datachannel)
        self.send_transport.on("close", self._transport_closed)
        self.recv_transport: WebRtcTransport | None = None
        self.producers: dict[str, Producer] = {}  # by mid of the send transport
        self._pending: dict[str, OfferedTrack] = {}  # sending tracks without an SSRC yet
        self._simulcast: dict[str, OfferedTrack] = {}  # RID-simulcast tracks, by mid
        self.data_producers: dict[str, DataProducer] = {}
        self.data_consumers: dict[str, DataConsumer] = {}
        self._publish_version = 0
        self._slots: list[_Slot] = []
        self._offer_revision = 0
        self._awaiting: int | None = None
        self._dirty = False
        self._started_slots: set[str] = set()
        self._offered_mids: list[str] = []
        self._mid_counter = 0
        self.closed = False

    # ---- publishing ----

    def publish(self, offer_sdp: object) -> dict[str, Any]:
        """Apply the send transport's offer: producers appear, change or close to match it."""
        if self.closed:
            raise NegotiationError("not_joined", "the peer has left")
        self._publish_version += 1
        transport = self.send_transport
        answer = answer_publish_offer(offer_sdp, transport.local_parameters, self._publish_version)
        previous = transport.remote
        if previous is not None and (answer.remote.ice_ufrag, answer.remote.ice_pwd) != (
            previous.ice_ufrag,
            previous.ice_pwd,
        ):
            # the client restarts ICE with this offer: answer with new credentials of ours
            transport.restart_ice()
            answer = answer_publish_offer(
                offer_sdp, transport.local_parameters, self._publish_version
            )
        transport.set_remote(
            answer.remote, local_setup="passive" if answer.remote.setup != "passive" else "active"
        )
        transport.want_sctp = answer.data_mid is not None
        if answer.remote.transport_cc:
            transport.enable_transport_feedback(answer.remote.transport_cc)
        sending = {t.mid: t for t in answer.tracks if t.sending}
        limit = self.room.server.config.media.max_producers_per_peer
        for mid, producer in list(self.producers.items()):
            track = sending.get(mid)
            if (
                track is None
                or (track.ssrc is not None and track.ssrc != producer.ssrc)
                or track.rids != producer.rids
                or track.codec is not producer.codec
            ):
                producer.close()
        self._pending = {}
        self._simulcast = {mid: t for mid, t in sending.items() if t.rids and not t.sim_ssrcs}
        for mid, track in sending.items():
            if mid in self.producers:
                continue
            if len(self.producers) >= limit:
                answer.rejected[mid] = f"more than {limit} producers per peer"
                continue
            if track.ssrc is None:
                self._pending[mid] = track
                continue
            producer = self._create_producer(track, track.ssrc)
            for layer in range(1, len(track.sim_ssrcs)):
                producer.add_layer(layer, track.sim_ssrcs[layer])
                if track.sim_rtx_ssrcs[layer]:
                    producer.set_layer_rtx(layer, track.sim_rtx_ssrcs[layer])
        return {
            "sdp": answer.sdp,
            "producers": [self._producer_info(p) for p in self.producers.values()],
            "pending": sorted(self._pending),
            "rejected": answer.rejected,
        }

    def _create_producer(self, track: OfferedTrack, ssrc: int, layer: int = 0) -> Producer:
        producer = Producer(
            self.send_transport,
            kind=track.kind,
            codec=track.codec,
            payload_type=track.payload_type,
            rtx_payload_type=track.rtx_payload_type,
            ssrc=ssrc,
            rtx_ssrc=track.rtx_ssrc,
            mid=track.mid,
            extensions=track.extensions,
            rids=track.rids,
            layer=layer,
            red_payload_type=track.red_payload_type,
            app_data={"peerId": self.id, "streamId": track.stream_id, "trackId": track.track_id},
        )
        self.producers[track.mid] = producer
        producer.on("close", lambda: self._producer_closed(producer))
        producer.on(
            "layerswanted",
            lambda active: self.notify(
                "producerLayers", {"producerId": producer.id, "mid": producer.mid, "active": active}
            ),
        )
        self.send_transport.add_producer(producer)
        self.emit("producer", producer)
        return producer

    def _claim_ssrc(self, ssrc: int, payload_type: int, packet: bytes) -> None:
        """A packet on an SSRC no producer owns yet: a track offered without a=ssrc, matched by
        its MID extension, or a simulcast layer (RID) or its RTX stream (repaired RID)."""
        if not self._pending and not self._simulcast:
            return
        try:
            rtp = _core.RtpPacket.parse(packet)
        except ValueError:
            return
        for mid, track in list(self._simulcast.items()):
            mid_id = track.extensions.get(EXT_MID, 0)
            if not mid_id or rtp.mid(mid_id) != mid:
                continue
            if payload_type == track.payload_type:
                rid = rtp.rid(track.extensions.get(EXT_RID, 0))
                if rid is None or rid not in track.rids:
                    self.send_transport.worker.count_drop("rid_undeclared")
                    return
                layer = track.rids.index(rid)
                self._pending.pop(mid, None)
                producer = self.producers.get(mid)
                if producer is None:
                    self._create_producer(track, ssrc, layer)
                elif layer not in producer.layers:
                    producer.add_layer(layer, ssrc)
                self.send_transport.plane.redeliver(packet)
                return
            if track.rtx_payload_type and payload_type == track.rtx_payload_type:
                rrid = rtp.rid(track.extensions.get(EXT_RRID, 0))
                producer = self.producers.get(mid)
                if rrid in track.rids and producer is not None:
                    producer.set_layer_rtx(track.rids.index(rrid), ssrc)
                return
        for mid, track in list(self._pending.items()):
            if track.rids:
                continue
            ext = track.extensions.get(EXT_MID)
            found = rtp.mid(ext) if ext else None
            if (
                found == mid or (found is None and len(self._pending) == 1)
            ) and payload_type == track.payload_type:
                del self._pending[mid]
                self._create_producer(track, ssrc)
                self.send_transport.plane.redeliver(packet)
                return

    def _producer_closed(self, producer: Producer) -> None:
        if self.producers.get(producer.mid) is producer:
            del self.producers[producer.mid]

    def _producer_info(self, producer: Producer) -> dict[str, Any]:
        return {
            "id": producer.id,
            "kind": producer.kind,
            "mid": producer.mid,
            "mimeType": producer.codec.mime_type,
            "peerId": self.id,
        }

    # ---- subscribing ----

    def restart_ice(self) -> dict[str, Any]:
        """The client's network changed: new ICE credentials for the receive transport, sent
        with a new offer (the send transport restarts when the client offers new credentials
        of its own). Producers, consumers and the room are untouched."""
        if self.closed:
            raise NegotiationError("not_joined", "the peer has left")
        transport = self.recv_transport
        if transport is None or transport.closed:
            return {"receive": False}
        transport.restart_ice()
        self._renegotiate()
        return {"receive": True}

    def _ensure_recv_transport(self) -> WebRtcTransport:
        if self.recv_transport is None:
            self.recv_transport = self.room.router.create_webrtc_transport(enable_sctp=False)
            self.recv_transport.on("close", self._transport_closed)
            self.recv_transport.offered()  # made to offer on: its ICE timeout runs now
        return self.recv_transport

    def can_receive(self, producer: Producer) -> bool:
        codecs = self.receive_codecs
        return codecs is None or producer.codec.mime_type.lower() in codecs

    def subscribe(self, producer: Producer) -> Consumer:
        if self.closed:
            raise NegotiationError("not_joined", "the peer has left")
        if not self.can_receive(producer):
            raise NegotiationError(
                "unsupported_codec",
                f"this peer cannot receive {producer.codec.mime_type} "
                "(not among the codecs it joined with)",
            )
        for slot in self._slots:
            if slot.consumer is not None and slot.consumer.producer is producer:
                return slot.consumer
        transport = self._ensure_recv_transport()
        consumer = transport.consume(producer)
        self._mid_counter += 1
        mid = str(self._mid_counter - 1)
        for slot in self._slots:
            if slot.consumer is None and slot.reusable and slot.kind == producer.kind:
                slot.mid, slot.consumer = mid, consumer
                slot.closed_offered = slot.reusable = False
                break
        else:
            self._slots.append(_Slot(mid, producer.kind, consumer))
        consumer.mid = next(s.mid for s in self._slots if s.consumer is consumer)
        consumer.on("close", lambda: self._consumer_closed(consumer))
        consumer.on(
            "layerschange",
            lambda layer: self.notify(
                "layersChanged", {"consumerId": consumer.id, "spatialLayer": layer}
            ),
        )
        self._renegotiate()
        return consumer

    def unsubscribe(self, producer_id: str) -> bool:
        for slot in self._slots:
            if slot.consumer is not None and slot.consumer.producer.id == producer_id:
                slot.consumer.close()
                return True
        return False

    def consumer(self, consumer_id: str) -> Consumer | None:
        for slot in self._slots:
            if slot.consumer is not None and slot.consumer.id == consumer_id:
                return slot.consumer
        return None

    def _consumer_closed(self, consumer: Consumer) -> None:
        for slot in self._slots:
            if slot.consumer is consumer:
                slot.consumer = None
                self._started_slots.discard(slot.mid)
        if not self.closed:
            self.notify(
                "consumerClosed", {"consumerId": consumer.id, "producerId": consumer.producer.id}
            )
            self._renegotiate()

    def _renegotiate(self) -> None:
        if self._awaiting is not None:
            self._dirty = True
            return
        self._send_offer()

    def _send_offer(self) -> None:
        transport = self._ensure_recv_transport()
        self._offer_revision += 1
        self._awaiting = self._offer_revision
        self._dirty = False
        slots = []
        consumers = []
        for slot in self._slots:
            c = slot.consumer
            if c is None:
                slot.closed_offered = True
                slots.append(SubscribeSlot(slot.mid, slot.kind, None))
                continue
            owner = c.producer.app_data.get("peerId", "")
            slots.append(
                SubscribeSlot(
                    slot.mid,
                    slot.kind,
                    c.codec,
                    c.ssrc,
                    c.rtx_ssrc,
                    stream_id=owner or c.producer.id,
                    track_id=c.producer.id,
                    cname=owner or "mediasrv",
                )
            )
            consumers.append(
                {
                    "consumerId": c.id,
                    "producerId": c.producer.id,
                    "peerId": owner,
                    "kind": c.kind,
                    "mid": slot.mid,
                    "paused": c.paused,
                }
            )
        self._offered_mids = [s.mid for s in slots if s.codec is not None]
        sdp = build_subscribe_offer(transport.local_parameters, slots, self._offer_revision)
        self.notify("offer", {"sdp": sdp, "revision": self._offer_revision, "consumers": consumers})

    def apply_answer(self, answer_sdp: object, revision: object) -> None:
        if self._awaiting is None or revision != self._awaiting:
            raise NegotiationError(
                "stale_revision", f"answer for revision {revision!r}, awaiting {self._awaiting!r}"
            )
        transport = self._ensure_recv_transport()
        remote = parse_subscribe_answer(answer_sdp, self._offered_mids)
        transport.set_remote(remote, local_setup="actpass")
        if remote.transport_cc == TRANSPORT_CC_ID:
            transport.enable_send_side_estimation()
        self._awaiting = None
        for slot in self._slots:
            if slot.consumer is None and slot.closed_offered:
                slot.reusable = True
        for slot in self._slots:
            if (
                slot.consumer is not None
                and slot.mid in self._offered_mids
                and slot.mid not in self._started_slots
            ):
                self._started_slots.add(slot.mid)
                if slot.consumer.kind == "audio":
                    # RED as it came to a subscriber that kept it, its primary Opus to others
                    slot.consumer.plane.set_red(remote.red_payload_type)
                slot.consumer.start()
        if self._dirty:
            self._send_offer()

    # ---- data channels ----

    def _on_datachannel(self, channel: Any) -> None:
        if channel.label.startswith(CONTROL_LABEL_PREFIX):
            return
        owner = self.room.server.plugins.for_label(channel.label)
        if owner is not None:
            try:
                owner.on_data_channel(self, channel)
            except Exception:
                log.exception("plugin %s: on_data_channel failed", owner.name)
            return
        producer = DataProducer(channel, self.id, MAX_MESSAGE_SIZE)
        self.data_producers[producer.id] = producer
        producer.on("close", lambda: self.data_producers.pop(producer.id, None))
        self.emit("dataproducer", producer)

    def consume_data(self, producer: DataProducer) -> DataConsumer | None:
        """Open a channel with the producer's label toward this peer (protocol: its peer id)."""
        transport = self.send_transport
        if self.closed or transport.sctp is None:
            return None
        channel = transport.open_data_channel(producer.label, protocol=producer.owner_id)
        consumer = DataConsumer(producer, channel)
        self.data_consumers[consumer.id] = consumer
        consumer.on("close", lambda: self.data_consumers.pop(consumer.id, None))
        return consumer

    # ---- end ----

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "attributes": self.attributes,
            "producers": [self._producer_info(p) for p in self.producers.values()],
        }

    def stats(self) -> dict[str, Any]:
        def transport_stats(t: WebRtcTransport | None) -> dict[str, Any] | None:
            if t is None:
                return None
            return {
                "id": t.id,
                "iceState": t.ice_state,
                "dtlsState": t.dtls_state,
                "packetsIn": t.plane.rtp_packets_in,
                "packetsOut": t.plane.packets_out,
                "bytesOut": t.plane.bytes_out,
                "rtcpIn": t.plane.rtcp_packets_in,
                "rembBitrate": t.remb_bitrate,
            }

        return {
            "peerId": self.id,
            "sendTransport": transport_stats(self.send_transport),
            "recvTransport": transport_stats(self.recv_transport),
            "producers": [p.stats() for p in self.producers.values()],
            "consumers": [s.consumer.stats() for s in self._slots if s.consumer is not None],
        }

    def _transport_closed(self) -> None:
        if not self.closed:
            asyncio.get_event_loop().call_soon(self.close)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for producer in list(self.data_producers.values()):
            producer.close()
        for consumer in list(self.data_consumers.values()):
            consumer.close()
        if self.recv_transport is not None:
            self.recv_transport.close("peer left")
        self.send_transport.close("peer left")
        self.emit("close")
