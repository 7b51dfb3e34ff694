"""Room: the application-level meeting — its Router, its Peers, and who receives what."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from mediasrv.config import ServerConfig
from mediasrv.data_producer import DataProducer
from mediasrv.denied import Denied
from mediasrv.events import Emitter
from mediasrv.identity import Identity
from mediasrv.peer import DataChannelOwners, Notify, Peer
from mediasrv.producer import Producer
from mediasrv.recording.room_recording import Recording
from mediasrv.router import Router
from mediasrv.tasks import spawn

log = logging.getLogger("mediasrv.room")


class RoomGates(DataChannelOwners, Protocol):
    """The plugins' gates as a room runs them (a PluginManager)."""

    def overrides(self, hook: str) -> Sequence[object]: ...

    async def gate(self, hook: str, *args: Any) -> None: ...


class RoomHost(Protocol):
    """What a room needs of its server (a MediaServer): the configuration, the plugins'
    gates, and the counters it adds to."""

    @property
    def config(self) -> ServerConfig: ...

    @property
    def plugins(self) -> RoomGates: ...

    @property
    def recording_totals(self) -> Counter[str]: ...

    @property
    def recordings_stopped(self) -> Counter[str]: ...

    def count_rejected(self, reason: str) -> None: ...


class RoomFull(Exception):
    pass


class RecordingError(Exception):
    """A recording cannot start or stop; ``code`` and the message reach the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Room(Emitter):
    """Events: ``peerjoined``, ``peerleft``, ``activespeaker``, ``recording`` (a Recording
    started), ``recordingstop`` (recording, reason), ``recordingstate`` (its info),
    ``close``. A room closes when its last peer leaves; close() stops its recording, makes
    every peer leave and closes the router; its server forgets it on ``close``."""

    def __init__(self, server: RoomHost, room_id: str, router: Router) -> None:
        super().__init__()
        self.id = room_id
        self.server = server
        self.router = router
        self.peers: dict[str, Peer] = {}
        self.recording: Recording | None = None  # the one running, or the last one
        # a spread room's recording running on another worker (RoomLinks tells): its info
        self.remote_recording: dict[str, Any] | None = None
        self.remote_recording_via: list[Any] | None = None  # that worker's UDP address
        self._remote_recording_seqs: dict[str, int] = {}  # by that address: the last number
        # peers of this room on other worker processes (a spread room): id -> info, "via"
        self.remote_peers: dict[str, dict[str, Any]] = {}
        # stops the recording another worker of this spread room runs (set by RoomLinks)
        self.remote_recording_stopper: Callable[[], Awaitable[dict[str, Any] | None]] | None = None
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
        recording = self.recording
        if recording is not None and recording.active and recording.whole_room:
            spawn(self._record_later(recording, producer), "record a new producer")

    # ---- recording ----

    @property
    def recording_active(self) -> bool:
        return self.recording is not None and self.recording.active

    async def start_recording(
        self, producer_ids: list[str] | None = None, *, by: str | None = None
    ) -> Recording:
        """Record these producers (None: the whole room, producers published later too) after
        the plugins' ``authorize_recording`` gates (a Denied propagates). Peers are told
        (``recordingState``)."""
        if self.closed:
            raise RecordingError("room_closed", f"room {self.id!r} is closed")
        if self.recording_active:
            raise RecordingError("already_recording", f"room {self.id!r} is being recorded")
        if self.remote_recording is not None and self.remote_recording.get("recording"):
            raise RecordingError(
                "already_recording", f"room {self.id!r} is being recorded on another worker"
            )
        producers = list(self.router.producers.values())
        if producer_ids is not None:
            # a producer piped from another worker answers to its own id there too
            known = {p.app_data.get("pipedFrom", p.id): p for p in producers}
            known.update({p.id: p for p in producers})
            unknown = [i for i in producer_ids if i not in known]
            if unknown:
                raise RecordingError("unknown_producer", f"no producer {unknown[0]!r} in this room")
            producers = [known[i] for i in dict.fromkeys(producer_ids)]
            if not producers:
                raise RecordingError("invalid_params", "no producers to record")
        await self.server.plugins.gate("authorize_recording", self, producers)
        if self.closed:  # while the gates ran
            raise RecordingError("room_closed", f"room {self.id!r} closed")
        if self.recording_active:
            raise RecordingError("already_recording", f"room {self.id!r} is being recorded")
        if self.remote_recording is not None and self.remote_recording.get("recording"):
            raise RecordingError(
                "already_recording", f"room {self.id!r} is being recorded on another worker"
            )
        try:
            recording = Recording(
                self,
                self.server.config.recording,
                whole_room=producer_ids is None,
                started_by=by,
            )
        except OSError as exc:
            log.error("room %s: cannot start a recording: %s", self.id, exc)
            raise RecordingError(
                "recording_unavailable", f"the recording cannot be written: {exc.strerror or exc}"
            ) from None
        self.recording = recording
        recording.on("journal", lambda journal: self._announce_recording())
        recording.on("journalstop", lambda journal: self._announce_recording())
        recording.on("stop", lambda reason: self._recording_stopped(recording, reason))
        for producer in producers:
            recording.add(producer)
        if producer_ids is None:
            # published while the gates ran: asked about on their own, like later ones
            for producer in list(self.router.producers.values()):
                if producer not in producers:
                    spawn(self._record_later(recording, producer), "record a new producer")
        self._announce_recording()
        self.emit("recording", recording)
        return recording

    async def stop_remote_recording(self) -> dict[str, Any] | None:
        """Stop the recording another worker of this spread room runs: its info, or None when
        there is none to stop."""
        stopper = self.remote_recording_stopper
        return None if stopper is None else await stopper()

    def stop_recording(self, reason: str = "stopped") -> Recording | None:
        """Stop the running recording (its journals flushed and closed); None when none ran."""
        recording = self.recording
        if recording is None or not recording.active:
            return None
        recording.stop(reason)
        return recording

    async def _record_later(self, recording: Recording, producer: Producer) -> None:
        """A producer published while the whole room is recorded: after the gates, it too."""
        try:
            await self.server.plugins.gate("authorize_recording", self, [producer])
        except Denied as denied:
            self.server.count_rejected(f"recording:{denied.code}")
            log.info("room %s: producer %s not recorded: %s", self.id, producer.id, denied.code)
            return
        if recording.active and not producer.closed:
            recording.add(producer)

    def _recording_stopped(self, recording: Recording, reason: str) -> None:
        self._announce_recording()
        self.emit("recordingstop", recording, reason)

    def _announce_recording(self) -> None:
        if self.recording is None:
            return
        info = self.recording.info()
        for peer in list(self.peers.values()):
            peer.notify("recordingState", info)
        self.emit("recordingstate", info)  # a spread room's other workers tell their peers

    def recording_state(self) -> dict[str, Any] | None:
        """The room's recording as its peers see it: this worker's, else (a spread room) the
        one another worker runs, or None."""
        remote = self.remote_recording
        if self.recording is not None and (self.recording.active or not remote):
            return self.recording.info()
        return remote

    def remote_recording_changed(
        self, info: dict[str, Any], via: list[Any] | None = None, seq: int | None = None
    ) -> bool:
        """Another worker of this spread room (at ``via``) records it, or stopped: its peers
        here are told as those over there are. ``seq`` numbers that worker's messages: an
        older one arriving late changes nothing (False)."""
        if via is not None and seq is not None:
            source = f"{via[0]}:{via[1]}"
            if seq <= self._remote_recording_seqs.get(source, -1):
                return False
            self._remote_recording_seqs[source] = seq
        self.remote_recording = info
        if via is not None:
            self.remote_recording_via = via
        for peer in list(self.peers.values()):
            peer.notify("recordingState", info)
        return True

    def remote_worker_gone(self, via: list[Any]) -> None:
        """The worker at ``via`` has no share of this room any more (RoomLinks.unlink): a
        recording it ran is over here, and its next messages (a new share, or the worker
        started again) are numbered afresh."""
        self._remote_recording_seqs.pop(f"{via[0]}:{via[1]}", None)
        recording = self.remote_recording
        if recording and recording.get("recording") and self.remote_recording_via == via:
            # it can no longer say it stopped: it died, or its share closed first
            over = {**recording, "recording": False, "reason": "worker_gone"}
            self.remote_recording_changed(over)

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

    def remote_peer_joined(self, info: dict[str, Any], via: list[Any]) -> None:
        """A peer of this room joined on another worker (a spread room): this room's peers
        hear of it as of any other."""
        peer_id = info.get("id")
        if not isinstance(peer_id, str) or not peer_id or peer_id in self.peers:
            return
        shown: dict[str, Any] = {
            k: info[k] for k in ("id", "displayName", "attributes") if k in info
        }
        self.remote_peers[peer_id] = {**shown, "via": via}
        for peer in list(self.peers.values()):
            peer.notify("peerJoined", {"peer": shown})

    def remote_peer_left(self, peer_id: str) -> None:
        if self.remote_peers.pop(peer_id, None) is not None:
            for peer in list(self.peers.values()):
                peer.notify("peerLeft", {"peerId": peer_id})

    def peer_infos(self, but: Peer | None = None) -> list[dict[str, Any]]:
        """Every peer of the room as the others see it, those on other workers too."""
        local = [p.info() for p in self.peers.values() if p is not but]
        remote = [
            {k: v for k, v in info.items() if k != "via"} for info in self.remote_peers.values()
        ]
        return local + remote

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "peers": [p.info() for p in self.peers.values()]}

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.stop_recording("room_closed")
        for peer in list(self.peers.values()):
            peer.close()
        self.router.close()
        self.emit("close")


def room_of(peer: Peer) -> Room:
    """The Room a peer is in (``Peer.room`` is typed by what a peer needs of its room)."""
    room = peer.room
    if not isinstance(room, Room):
        raise TypeError(f"peer {peer.id} is not in a Room")
    return room
