"""The visit service's appointment book: visits of five types, their participants and
invitations, their life (scheduled → in progress → ended, or cancelled), and the monthly
figures the services report.

People are pseudonymous subjects (the strongauth plugin's), never identity codes. Invitation
links carry a token signed with the service's secret (HMAC-SHA256): the appointment, the
participant and an expiry, so a link cannot be altered or reused for another visit. SQLite in
WAL mode with ``synchronous=FULL``: what the professional saw saved is on disk.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from examples.visit_service.sqlite_book import SqliteBook


class VisitType(StrEnum):
    VIDEO_VISIT = "video_visit"  # a client and a professional, 1:1
    GROUP_VISIT = "group_visit"  # a professional and several clients
    NETWORK_MEETING = "network_meeting"  # several professionals, a client and relatives
    CONSULTATION = "consultation"  # professionals consulting each other
    HOME_CARE_CALL = "home_care_call"  # a scheduled call to a home-care client


class Role(StrEnum):
    PROFESSIONAL = "professional"
    CLIENT = "client"
    RELATIVE = "relative"  # a relative or someone in the client's network


class Status(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    ENDED = "ended"
    CANCELLED = "cancelled"


# (least, most) participants of each role besides the organizing professional
LIMITS: dict[VisitType, dict[Role, tuple[int, int]]] = {
    VisitType.VIDEO_VISIT: {Role.PROFESSIONAL: (0, 1), Role.CLIENT: (1, 1), Role.RELATIVE: (0, 2)},
    VisitType.GROUP_VISIT: {Role.PROFESSIONAL: (0, 3), Role.CLIENT: (2, 12), Role.RELATIVE: (0, 0)},
    VisitType.NETWORK_MEETING: {
        Role.PROFESSIONAL: (1, 8),
        Role.CLIENT: (1, 2),
        Role.RELATIVE: (0, 8),
    },
    VisitType.CONSULTATION: {Role.PROFESSIONAL: (1, 8), Role.CLIENT: (0, 0), Role.RELATIVE: (0, 0)},
    VisitType.HOME_CARE_CALL: {
        Role.PROFESSIONAL: (0, 1),
        Role.CLIENT: (1, 1),
        Role.RELATIVE: (0, 2),
    },
}
DURATIONS = range(15, 181, 15)  # minutes: 15, 30, ..., 180 (30, 60 and 90 are the usual)
MAX_TEXT = 200
INVITATION_GRACE = timedelta(hours=2)  # an invitation works until this long after the end


class AppointmentError(ValueError):
    """A refused appointment or invitation; the message says what is wrong."""


@dataclass(frozen=True)
class Participant:
    id: str
    role: Role
    name: str  # as shown in the visit
    subject: str | None = None  # known person (pseudonymous subject), or None: invited by link
    on_behalf_of: str | None = None  # a relative acting for this principal (subject)


@dataclass(frozen=True)
class Appointment:
    id: str
    type: VisitType
    unit: str  # the service unit ("Child health clinic, Lahti")
    title: str
    starts_at: datetime  # aware
    minutes: int
    organizer: str  # the professional's subject
    room: str  # the media room of the visit (random)
    participants: tuple[Participant, ...] = ()
    status: Status = Status.SCHEDULED
    started_at: datetime | None = None
    ended_at: datetime | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.minutes)


SCHEMA = """
CREATE TABLE IF NOT EXISTS appointments (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    unit TEXT NOT NULL,
    title TEXT NOT NULL,
    starts_at TEXT NOT NULL,         -- ISO 8601 UTC (sorts as text)
    minutes INTEGER NOT NULL,
    organizer TEXT NOT NULL,
    room TEXT NOT NULL UNIQUE,
    participants TEXT NOT NULL,      -- JSON list
    status TEXT NOT NULL,
    started_at TEXT, ended_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS appointments_organizer ON appointments (organizer, starts_at);
CREATE INDEX IF NOT EXISTS appointments_starts ON appointments (starts_at);
"""


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat() if when is not None else None


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise AppointmentError(f"{name} must be a non-empty text of at most {MAX_TEXT} characters")
    return value.strip()


def validate(kind: VisitType, minutes: int, participants: list[Participant]) -> None:
    """The visit type's rules on duration and participants."""
    if minutes not in DURATIONS:
        raise AppointmentError(f"a visit lasts 15 to 180 minutes in steps of 15, not {minutes}")
    for role, (least, most) in LIMITS[kind].items():
        count = sum(1 for p in participants if p.role is role)
        if not least <= count <= most:
            wanted = f"{least}" if least == most else f"{least} to {most}"
            raise AppointmentError(f"a {kind.value} has {wanted} {role.value}(s), not {count}")
    for p in participants:
        if p.on_behalf_of is not None and p.role is not Role.RELATIVE:
            raise AppointmentError(f"only a relative acts on behalf of someone ({p.name})")


class AppointmentBook(SqliteBook):
    SCHEMA = SCHEMA

    def __init__(self, path: str, secret: str) -> None:
        if len(secret) < 16:
            raise AppointmentError("the invitation secret must be at least 16 characters")
        self._key = hashlib.sha256(("mediasrv visit invitations\n" + secret).encode()).digest()
        super().__init__(path)

    # ---- appointments ----

    def create(
        self,
        *,
        kind: VisitType,
        unit: str,
        title: str,
        starts_at: datetime,
        minutes: int,
        organizer: str,
        participants: list[Participant],
    ) -> Appointment:
        if starts_at.tzinfo is None:
            raise AppointmentError("starts_at needs a time zone")
        validate(kind, minutes, participants)
        ids = [p.id for p in participants]
        if len(set(ids)) != len(ids):
            raise AppointmentError("participant ids must be unique")
        appointment = Appointment(
            id=secrets.token_hex(8),
            type=kind,
            unit=_text("unit", unit),
            title=_text("title", title),
            starts_at=starts_at,
            minutes=minutes,
            organizer=organizer,
            room=f"visit-{secrets.token_hex(10)}",
            participants=tuple(participants),
        )
        with self._lock:
            self._db.execute(
                "INSERT INTO appointments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?)",
                (
                    appointment.id,
                    kind.value,
                    appointment.unit,
                    appointment.title,
                    _iso(starts_at),
                    minutes,
                    organizer,
                    appointment.room,
                    json.dumps([_participant_json(p) for p in participants]),
                    Status.SCHEDULED.value,
                    _iso(appointment.created_at),
                ),
            )
        return appointment

    def _select(self, where: str, args: tuple[Any, ...]) -> list[Appointment]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM appointments WHERE {where} ORDER BY starts_at, id", args
            ).fetchall()
        return [_appointment(row) for row in rows]

    def get(self, appointment_id: str) -> Appointment | None:
        found = self._select("id = ?", (appointment_id,))
        return found[0] if found else None

    def by_room(self, room: str) -> Appointment | None:
        found = self._select("room = ?", (room,))
        return found[0] if found else None

    def calendar(self, organizer: str, start: datetime, end: datetime) -> list[Appointment]:
        """A professional's appointments starting in [start, end): organized or invited to."""
        return self._select(
            "(organizer = ? OR participants LIKE ?) AND starts_at >= ? AND starts_at < ?",
            (organizer, f'%"{organizer}"%', _iso(start), _iso(end)),
        )

    def _move(self, appointment_id: str, to: Status, allowed: tuple[Status, ...],
              column: str | None, when: datetime) -> Appointment:  # fmt: skip
        current = self.get(appointment_id)
        if current is None:
            raise AppointmentError("no such appointment")
        if current.status not in allowed:
            raise AppointmentError(f"a {current.status.value} appointment cannot become {to.value}")
        with self._lock:
            if column is None:
                self._db.execute(
                    "UPDATE appointments SET status = ? WHERE id = ?", (to.value, appointment_id)
                )
            else:
                self._db.execute(
                    f"UPDATE appointments SET status = ?, {column} = ? WHERE id = ?",
                    (to.value, _iso(when), appointment_id),
                )
        moved = self.get(appointment_id)
        assert moved is not None
        return moved

    def start(self, appointment_id: str, when: datetime) -> Appointment:
        return self._move(appointment_id, Status.IN_PROGRESS, (Status.SCHEDULED,), "started_at",
                          when)  # fmt: skip

    def end(self, appointment_id: str, when: datetime) -> Appointment:
        return self._move(appointment_id, Status.ENDED, (Status.IN_PROGRESS,), "ended_at", when)

    def cancel(self, appointment_id: str, when: datetime) -> Appointment:
        return self._move(appointment_id, Status.CANCELLED, (Status.SCHEDULED,), None, when)

    # ---- invitations ----

    def invitation(self, appointment: Appointment, participant_id: str) -> str:
        """The token of one participant's invitation link (valid until 2 h after the end)."""
        if participant_id not in {p.id for p in appointment.participants}:
            raise AppointmentError("no such participant in this appointment")
        expires = int((appointment.ends_at + INVITATION_GRACE).timestamp())
        body = f"{appointment.id}.{participant_id}.{expires}"
        return f"{body}.{self._sign(body)}"

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def sign_parts(self, kind: str, *parts: str) -> str:
        """A token of other links of a visit (e.g. ``survey``): the parts, signed."""
        body = ".".join((kind, *parts))
        return f"{'.'.join(parts)}.{self._sign(body)}"

    def check_parts(self, kind: str, token: str, count: int) -> list[str]:
        """The ``count`` parts of a ``sign_parts`` token; AppointmentError if it is not one."""
        parts = token.split(".") if isinstance(token, str) and len(token) <= 200 else []
        if len(parts) != count + 1 or not all(parts):
            raise AppointmentError("the link is not valid")
        if not hmac.compare_digest(parts[-1], self._sign(".".join((kind, *parts[:-1])))):
            raise AppointmentError("the link is not valid")
        return parts[:-1]

    def bind(self, appointment_id: str, participant_id: str, subject: str) -> Appointment:
        """Give an invitation's participant (invited by link) the person who redeemed it."""
        current = self.get(appointment_id)
        if current is None:
            raise AppointmentError("no such appointment")
        people = list(current.participants)
        index = next((i for i, p in enumerate(people) if p.id == participant_id), None)
        if index is None:
            raise AppointmentError("no such participant in this appointment")
        if people[index].subject not in (None, subject):
            raise AppointmentError("this invitation belongs to someone else")
        people[index] = replace(people[index], subject=subject)
        with self._lock:
            self._db.execute(
                "UPDATE appointments SET participants = ? WHERE id = ?",
                (json.dumps([_participant_json(p) for p in people]), appointment_id),
            )
        bound = self.get(appointment_id)
        assert bound is not None
        return bound

    def of_person(self, subject: str) -> list[Appointment]:
        """Appointments where this person is the organizer or a participant (or is acted
        for), newest first."""
        pattern = f'%"{subject}"%'
        found = self._select("organizer = ? OR participants LIKE ?", (subject, pattern))
        return sorted(found, key=lambda a: a.starts_at, reverse=True)

    def redeem(self, token: str, now: datetime) -> tuple[Appointment, Participant]:
        """The appointment and participant of an invitation; AppointmentError saying why not."""
        parts = token.split(".") if isinstance(token, str) and len(token) <= 200 else []
        if len(parts) != 4 or not parts[2].isdigit():
            raise AppointmentError("the invitation link is not valid")
        body = ".".join(parts[:3])
        if not hmac.compare_digest(parts[3], self._sign(body)):
            raise AppointmentError("the invitation link is not valid")
        if now.timestamp() > int(parts[2]):
            raise AppointmentError("the invitation has expired")
        appointment = self.get(parts[0])
        if appointment is None or appointment.status is Status.CANCELLED:
            raise AppointmentError("the visit has been cancelled")
        participant = next((p for p in appointment.participants if p.id == parts[1]), None)
        if participant is None:
            raise AppointmentError("the invitation link is not valid")
        return appointment, participant

    # ---- figures ----

    def monthly(self, year: int) -> list[dict[str, Any]]:
        """Ended visits of a year by month, type and unit: count and average minutes."""
        with self._lock:
            rows = self._db.execute(
                "SELECT substr(started_at, 1, 7) AS month, type, unit, COUNT(*), "
                "AVG((julianday(ended_at) - julianday(started_at)) * 1440) "
                "FROM appointments WHERE status = 'ended' AND started_at >= ? AND started_at < ? "
                "GROUP BY month, type, unit ORDER BY month, type, unit",
                (f"{year:04d}", f"{year + 1:04d}"),
            ).fetchall()
        return [
            {"month": m, "type": t, "unit": u, "visits": n, "averageMinutes": round(a, 1)}
            for m, t, u, n, a in rows
        ]


def _participant_json(p: Participant) -> dict[str, Any]:
    return {"id": p.id, "role": p.role.value, "name": p.name, "subject": p.subject,
            "onBehalfOf": p.on_behalf_of}  # fmt: skip


def _appointment(row: Any) -> Appointment:
    people = tuple(
        Participant(p["id"], Role(p["role"]), p["name"], p["subject"], p["onBehalfOf"])
        for p in json.loads(row[8])
    )
    starts = _when(row[4])
    created = _when(row[12])
    assert starts is not None and created is not None
    return Appointment(
        id=row[0],
        type=VisitType(row[1]),
        unit=row[2],
        title=row[3],
        starts_at=starts,
        minutes=row[5],
        organizer=row[6],
        room=row[7],
        participants=people,
        status=Status(row[9]),
        started_at=_when(row[10]),
        ended_at=_when(row[11]),
        created_at=created,
    )
