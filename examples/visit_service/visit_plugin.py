"""VisitPlugin: the visit service's rules inside the media server.

- ``authorize_join``: a visit room (``visit-…``) admits only the people of its appointment,
  identified strongly: the organizing professional, the professionals invited, and clients and
  relatives the professional has admitted from the waiting room (or someone acting for an
  invited client, when the proxy plugin has allowed it). Other rooms are refused.
- ``authorize_recording``: nobody but professionals is recorded without their consent.
- signaling methods ``visit.*``: a professional asks to record (every client is asked for
  consent, ``visit.consentRequest``) or stops; a client answers (``visit.consent``, written to
  the audit trail); microphone/camera states (``visit.peerState``); a professional ends the
  visit (``visit.ended`` with the feedback link).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from examples.visit_service.appointments import (
    Appointment,
    AppointmentBook,
    Participant,
    Role,
    Status,
)
from examples.visit_service.lobby import Lobbies
from mediasrv.plugin import Denied, JoinRequest, Plugin
from mediasrv.room import RecordingError, room_of

if TYPE_CHECKING:
    from mediasrv.peer import Peer
    from mediasrv.producer import Producer
    from mediasrv.room import Room

log = logging.getLogger("visit")
P = ParamSpec("P")
T = TypeVar("T")

ROOM_PREFIX = "visit-"
HOST = "host"  # the participant id of the organizing professional


class VisitPluginHost(Protocol):
    """What the visit plugin uses of the visit service (a VisitService is one): the
    appointment book and the thread its work runs on, the clock, the waiting rooms, the audit
    trail, and ending a visit."""

    @property
    def book(self) -> AppointmentBook: ...

    @property
    def lobbies(self) -> Lobbies: ...

    def now(self) -> datetime: ...

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...

    async def audit(self, decision: str, **fields: Any) -> int: ...

    async def end_visit(self, room_id: str, by: str) -> None: ...


def consent_key(seat: dict[str, Any]) -> str:
    return f"{seat.get('participant', '')}:{seat.get('subject', '')}"


def seat_of(peer: Any) -> dict[str, Any]:
    """The visit facts of a joined peer (participant id, role, name, host)."""
    found = getattr(peer, "app_data", {}).get("visit")
    return found if isinstance(found, dict) else {}


class VisitPlugin(Plugin):
    name = "visit"
    namespace = "visit"

    def __init__(self, server: Any, config: Any) -> None:
        super().__init__(server, config)
        self.service: VisitPluginHost | None = None
        # room -> "participant:subject" -> answer (a consent is a person's, not a seat's)
        self.consents: dict[str, dict[str, bool]] = {}
        self.asked: set[str] = set()  # rooms whose recording a professional has asked for
        self.states: dict[str, dict[str, dict[str, bool]]] = {}  # room -> peer -> state

    async def setup(self) -> None:
        self.on("peerjoined", self._peer_joined)
        self.on("peerleft", self._peer_left)
        self.on("roomclose", self._room_closed)

    @property
    def _service(self) -> VisitPluginHost:
        if self.service is None:
            raise Denied("not_ready", "the visit service has not started")
        return self.service

    # ---- joining ----

    async def authorize_join(self, request: JoinRequest, room: Room) -> None:
        service = self._service
        if not room.id.startswith(ROOM_PREFIX):
            raise Denied("unknown_visit", "this server serves video visits only")
        appointment = await service.db(service.book.by_room, room.id)
        if appointment is None:
            raise Denied("unknown_visit", "there is no such visit")
        if appointment.status in (Status.ENDED, Status.CANCELLED):
            ended = "was cancelled" if appointment.status is Status.CANCELLED else "has ended"
            raise Denied("visit_closed", f"the visit {ended}")
        identity = request.identity
        if identity is None or identity.plugin != "strongauth":
            raise Denied("identification_required", "a visit needs strong identification")
        wanted = request.params.get("visitParticipant")
        if not isinstance(wanted, str) or not 0 < len(wanted) <= 64:
            raise Denied("invalid_params", "visitParticipant must name your seat in the visit")
        acting = request.app_data.get("on_behalf")
        principal = acting.get("principal") if isinstance(acting, dict) else None
        seat = self.seat(appointment, wanted, identity.subject, principal)
        if seat is None:
            raise Denied("not_invited", "you are not a participant of this visit")
        role, _ = seat
        lobby = service.lobbies.get(appointment.id)
        if role != Role.PROFESSIONAL.value and not lobby.admitted(wanted, identity.subject):
            raise Denied("not_admitted", "wait in the waiting room until you are let in")
        request.attributes["visit"] = {"role": role, "host": wanted == HOST}
        request.app_data["visit"] = {
            "participant": wanted,
            "role": role,
            "host": wanted == HOST,
            "name": request.display_name,
            "subject": identity.subject,
            "appointment": appointment.id,
        }
        if appointment.status is Status.SCHEDULED and role == Role.PROFESSIONAL.value:
            await service.db(service.book.start, appointment.id, service.now())

    @staticmethod
    def seat(
        appointment: Appointment, participant_id: str, subject: str, principal: str | None
    ) -> tuple[str, Participant | None] | None:
        """(role, participant) of someone taking a seat, or None when it is not theirs."""
        if participant_id == HOST:
            return (Role.PROFESSIONAL.value, None) if subject == appointment.organizer else None
        found = next((p for p in appointment.participants if p.id == participant_id), None)
        if found is None:
            return None
        if found.subject == subject and principal in (None, found.on_behalf_of):
            return found.role.value, found
        if found.subject is not None and principal == found.subject:
            return found.role.value, found  # acting for the invited client (proxy allowed it)
        return None

    def _peer_joined(self, room: Room, peer: Peer) -> None:
        seat = seat_of(peer)
        consented = self.consents.get(room.id, {}).get(consent_key(seat))
        if room.recording_active and seat.get("role") != Role.PROFESSIONAL.value and not consented:
            peer.notify("visit.consentRequest", {"requestedBy": "", "recording": True})

    def _peer_left(self, room: Room, peer: Peer) -> None:
        self.states.get(room.id, {}).pop(peer.id, None)
        for other in list(room.peers.values()):
            if other is not peer:
                other.notify("visit.peerState", {"peerId": peer.id, "left": True})

    def _room_closed(self, room: Room) -> None:
        self.consents.pop(room.id, None)
        self.asked.discard(room.id)
        self.states.pop(room.id, None)

    # ---- recording consent ----

    def _unconsented(self, room: Room, producers: list[Producer] | None = None) -> list[Peer]:
        answers = self.consents.get(room.id, {})
        owners = list(room.peers.values())
        if producers is not None:
            wanted = set(producers)
            owners = [p for p in owners if wanted & set(p.producers.values())]
        return [
            p
            for p in owners
            if seat_of(p).get("role") != Role.PROFESSIONAL.value
            and not answers.get(consent_key(seat_of(p)))
        ]

    async def authorize_recording(self, room: Room, producers: list[Producer]) -> None:
        if not room.id.startswith(ROOM_PREFIX):
            return
        missing = self._unconsented(room, producers)
        if missing:
            names = ", ".join(p.display_name for p in missing)
            raise Denied("consent_missing", f"waiting for consent to recording from: {names}")

    async def _audit_consent(self, room: Room, peer: Peer, granted: bool) -> None:
        service = self._service
        seat = seat_of(peer)
        acting = peer.app_data.get("on_behalf")
        await service.audit(
            "recording_consent" if granted else "recording_refused",
            room=room.id,
            peer=peer.id,
            subject=seat.get("subject"),
            principal=acting.get("principal") if isinstance(acting, dict) else None,
            detail={"granted": granted, "appointment": seat.get("appointment")},
        )

    async def _start_if_agreed(self, room: Room, by: Peer | None) -> dict[str, Any]:
        if room.recording_active:
            return {"recording": True, "waitingFor": []}
        missing = self._unconsented(room)
        if missing:
            return {"recording": False, "waitingFor": [p.display_name for p in missing]}
        try:
            await room.start_recording(by=by.id if by is not None else None)
        except RecordingError as exc:
            raise Denied(exc.code, exc.message) from None
        self.asked.discard(room.id)
        return {"recording": True, "waitingFor": []}

    # ---- signaling ----

    async def handle_request(self, peer: Peer | None, method: str, params: dict[str, Any]) -> Any:
        if peer is None:
            raise Denied("not_joined", "join the visit first")
        room = room_of(peer)
        seat = seat_of(peer)
        professional = seat.get("role") == Role.PROFESSIONAL.value
        if method == "requestRecording":
            if not professional:
                raise Denied("forbidden", "only a professional can record the visit")
            if room.recording_active:
                return {"recording": True, "waitingFor": []}
            self.asked.add(room.id)
            self.consents[room.id] = {}  # a consent is to one recording: everyone is asked
            for other in self._unconsented(room):
                other.notify("visit.consentRequest", {"requestedBy": peer.display_name})
            return await self._start_if_agreed(room, peer)
        if method == "stopRecording":
            if not professional:
                raise Denied("forbidden", "only a professional can stop the recording")
            self.asked.discard(room.id)
            stopped = room.stop_recording("stopped by a professional")
            return {"stopped": stopped is not None}
        if method == "consent":
            granted = params.get("granted")
            if not isinstance(granted, bool):
                raise Denied("invalid_params", "granted must be true or false")
            if professional:
                raise Denied("forbidden", "professionals are not asked for consent")
            await self._audit_consent(room, peer, granted)
            self.consents.setdefault(room.id, {})[consent_key(seat)] = granted
            for other in list(room.peers.values()):
                if seat_of(other).get("role") == Role.PROFESSIONAL.value:
                    other.notify(
                        "visit.consent",
                        {"peerId": peer.id, "name": peer.display_name, "granted": granted},
                    )
            if not granted:
                return {"recording": room.recording_active}
            if room.recording_active:
                await self._record_consented(room, peer)
                return {"recording": True}
            if room.id in self.asked:
                return await self._start_if_agreed(room, None)
            return {"recording": False}
        if method == "state":
            state = {k: bool(params.get(k)) for k in ("audio", "video", "screen")}
            self.states.setdefault(room.id, {})[peer.id] = state
            for other in list(room.peers.values()):
                if other is not peer:
                    other.notify("visit.peerState", {"peerId": peer.id, **state})
            return {}
        if method == "states":
            return {"states": self.states.get(room.id, {})}
        if method == "end":
            if not professional:
                raise Denied("forbidden", "only a professional can end the visit")
            await self._service.end_visit(room.id, peer.display_name)
            return {"ended": True}
        raise Denied("unknown_method", f"visit.{method} is not a method")

    async def _record_consented(self, room: Room, peer: Peer) -> None:
        """A late consent while the recording runs: this peer's media joins it."""
        recording = room.recording
        if recording is None:
            return
        for producer in list(peer.producers.values()):
            if producer.closed or producer.id in recording.journals:
                continue
            await self.server.plugins.gate("authorize_recording", room, [producer])
            if recording.active:
                recording.add(producer)
