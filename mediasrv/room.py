"""Room: the application-level meeting — its Router, its Peers, and who receives what."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mediasrv.data_producer import DataProducer
from mediasrv.events import Emitter
from mediasrv.peer import Notify, Peer
from mediasrv.plugin import Denied, Identity
from mediasrv.producer import Producer
from mediasrv.tasks import spawn

if TYPE_CHECKING:
    from mediasrv.media_server import MediaServer
    from mediasrv.router import Router

log = logging.getLogger("mediasrv.room")


class RoomFull(Exception):
    pass


class Room(Emitter):
    """Events: ``peerjoined``, ``peerleft``, ``activespeaker``, ``close``. A room closes when its
    last peer leaves; close() makes every peer leave and closes the router."""

    def __init__(self, server: MediaServer, room_id: str, router: Router) -> None:
        super().__init__()
        self.id = room_id
        self.server = server
        self.router = router
        self.peers: dict[str, Peer] = {}
        self.closed = False
        router.on("activespeaker", self._active_speaker)
        router.on("producer", self._producer_added)

    def join(
        self,
        display_name: str,
        notify: Notify,
        *,
        auto_subscribe: bool = True,
        receive_codecs: list[str] | None = None,
        identity: Identity | None = None,
        app_data: dict[str, Any] | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Peer:
        if self.closed:
            raise RuntimeError("the room is closed")
        limit = self.server.config.media.max_peers_per_room
        if len(self.peers) >= limit:
            raise RoomFull(f"room {self.id!r} has its maximum of {limit} peers")
        peer = Peer(
            self,
            display_name,
            notify,
            auto_subscribe=auto_subscribe,
            receive_codecs=receive_codecs,
            app_data=app_data,
            attributes=attributes,
        )
        peer.identity = identity  # before anyone hears of the peer
        others = list(self.peers.values())
        self.peers[peer.id] = peer
        peer.on("dataproducer", lambda dp: self._data_producer_added(peer, dp))
        peer.on("close", lambda: self._peer_left(peer))
        peer.send_transport.on("connected", lambda: self._data_ready(peer))
        for other in others:
            other.notify("peerJoined", {"peer": peer.info()})
        if auto_subscribe:
            for producer in list(self.router.producers.values()):
                self._auto_subscribe(peer, producer)
        self.emit("peerjoined", peer)
        return peer

    def _producer_added(self, producer: Producer) -> None:
        """Any producer of the router — a peer's, or an ingest's (PlainRtpTransport)."""
        owner_id = producer.app_data.get("peerId")
        info = {
            "id": producer.id,
            "kind": producer.kind,
            "mid": producer.mid,
            "mimeType": producer.codec.mime_type,
            "peerId": owner_id,
        }
        producer.on("close", lambda: self._producer_closed(owner_id, producer))
        for peer in list(self.peers.values()):
            if peer.id == owner_id:
                continue
            peer.notify("producerAdded", info)
            if peer.auto_subscribe:
                self._auto_subscribe(peer, producer)

    def _auto_subscribe(self, peer: Peer, producer: Producer) -> None:
        """Subscribe at once, or after the plugins' authorize_subscribe gates when any."""
        if not peer.can_receive(producer):
            return
        if not self.server.plugins.overrides("authorize_subscribe"):
            peer.subscribe(producer)
            return
        spawn(self._subscribe_checked(peer, producer), "authorize_subscribe")

    async def _subscribe_checked(self, peer: Peer, producer: Producer) -> None:
        try:
            await self.server.plugins.gate("authorize_subscribe", peer, producer)
        except Denied as denied:
            self.server.count_rejected(f"subscribe:{denied.code}")
            peer.notify(
                "subscriptionDenied",
                {"producerId": producer.id, "code": denied.code, "message": denied.message},
            )
            return
        if not peer.closed and not producer.closed:
            peer.subscribe(producer)

    def _producer_closed(self, owner_id: str | None, producer: Producer) -> None:
        for peer in list(self.peers.values()):
            if peer.id != owner_id and not peer.closed:
                peer.notify("producerClosed", {"producerId": producer.id, "peerId": owner_id})

    def _data_producer_added(self, owner: Peer, producer: DataProducer) -> None:
        for peer in list(self.peers.values()):
            if peer is not owner:
                peer.consume_data(producer)

    def _data_ready(self, peer: Peer) -> None:
        for other in list(self.peers.values()):
            if other is peer:
                continue
            for producer in list(other.data_producers.values()):
                peer.consume_data(producer)

    def _active_speaker(self, producer: Producer) -> None:
        peer_id = producer.app_data.get("peerId")
        for peer in list(self.peers.values()):
            peer.notify("activeSpeaker", {"peerId": peer_id, "producerId": producer.id})
        self.emit("activespeaker", peer_id, producer)

    def _peer_left(self, peer: Peer) -> None:
        if self.peers.pop(peer.id, None) is None:
            return
        for other in list(self.peers.values()):
            other.notify("peerLeft", {"peerId": peer.id})
        self.emit("peerleft", peer)
        if not self.peers:
            self.close()

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "peers": [p.info() for p in self.peers.values()]}

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for peer in list(self.peers.values()):
            peer.close()
        self.router.close()
        self.server._room_closed(self)
        self.emit("close")
