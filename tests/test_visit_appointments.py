"""The visit service's appointment book on a real SQLite file: the five visit types and their
rules, the life of a visit, invitation links (altered, expired, cancelled, foreign), the
professional's calendar, the monthly figures, and everything surviving a reopen."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from examples.visit_service.appointments import (
    AppointmentBook,
    AppointmentError,
    Participant,
    Role,
    Status,
    VisitType,
)

SECRET = "invitation-secret-for-tests-0123"
NURSE, DOCTOR = "n" * 32, "d" * 32
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def client(pid: str = "c1", name: str = "Aino Asiakas") -> Participant:
    return Participant(pid, Role.CLIENT, name)


def book(tmp_path: Path) -> AppointmentBook:
    return AppointmentBook(str(tmp_path / "visits.sqlite3"), SECRET)


def test_each_visit_type_keeps_its_rules(tmp_path: Path) -> None:
    b = book(tmp_path)
    ok = [
        (VisitType.VIDEO_VISIT, [client()]),
        (VisitType.GROUP_VISIT, [client("c1"), client("c2", "Bertta")]),
        (VisitType.NETWORK_MEETING, [
            client(), Participant("p1", Role.PROFESSIONAL, "Lauri Lääkäri", DOCTOR),
            Participant("r1", Role.RELATIVE, "Raili", on_behalf_of="e" * 32),
        ]),
        (VisitType.CONSULTATION, [Participant("p1", Role.PROFESSIONAL, "Lauri", DOCTOR)]),
        (VisitType.HOME_CARE_CALL, [client()]),
    ]  # fmt: skip
    rooms = set()
    for kind, people in ok:
        made = b.create(kind=kind, unit="Lahti", title="Visit", starts_at=T0, minutes=30,
                        organizer=NURSE, participants=people)  # fmt: skip
        assert made.status is Status.SCHEDULED and made.ends_at == T0 + timedelta(minutes=30)
        rooms.add(made.room)
    assert len(rooms) == 5  # every visit its own media room
    refused = [
        (VisitType.VIDEO_VISIT, [client("c1"), client("c2")], 30, "has 1 client(s), not 2"),
        (VisitType.GROUP_VISIT, [client()], 30, "has 2 to 12 client(s), not 1"),
        (VisitType.CONSULTATION, [client()], 30, "has 1 to 8 professional(s), not 0"),
        (VisitType.VIDEO_VISIT, [client()], 20, "steps of 15, not 20"),
        (VisitType.VIDEO_VISIT, [client()], 195, "steps of 15, not 195"),
        (VisitType.VIDEO_VISIT, [Participant("c1", Role.CLIENT, "A", on_behalf_of="x")], 30,
         "only a relative acts on behalf"),
        (VisitType.GROUP_VISIT, [client("c1"), client("c1", "B")], 30, "ids must be unique"),
    ]  # fmt: skip
    for kind, people, minutes, message in refused:
        with pytest.raises(AppointmentError, match=re.escape(message)):
            b.create(kind=kind, unit="Lahti", title="Visit", starts_at=T0, minutes=minutes,
                     organizer=NURSE, participants=people)  # fmt: skip
    with pytest.raises(AppointmentError, match="time zone"):
        b.create(kind=VisitType.VIDEO_VISIT, unit="L", title="V", starts_at=T0.replace(tzinfo=None),
                 minutes=30, organizer=NURSE, participants=[client()])  # fmt: skip
    with pytest.raises(AppointmentError, match="title must be"):
        b.create(kind=VisitType.VIDEO_VISIT, unit="L", title=" ", starts_at=T0, minutes=30,
                 organizer=NURSE, participants=[client()])  # fmt: skip


def test_a_visit_lives_and_its_invitations_hold(tmp_path: Path) -> None:
    b = book(tmp_path)
    visit = b.create(kind=VisitType.VIDEO_VISIT, unit="Child health clinic", title="Check-up",
                     starts_at=T0, minutes=60, organizer=NURSE,
                     participants=[client()])  # fmt: skip
    token = b.invitation(visit, "c1")
    found, person = b.redeem(token, T0 - timedelta(days=1))
    assert found.id == visit.id and person.name == "Aino Asiakas"
    # altered in any part, for another participant, after the grace: refused
    appointment_id, participant, expires, signature = token.split(".")
    for bad in (
        f"{appointment_id}.c2.{expires}.{signature}",
        f"{appointment_id}.{participant}.{int(expires) + 3600}.{signature}",
        f"{appointment_id}.{participant}.{expires}.{signature[:-2]}xx",
        "nonsense",
    ):
        with pytest.raises(AppointmentError, match="not valid"):
            b.redeem(bad, T0)
    with pytest.raises(AppointmentError, match="expired"):
        b.redeem(token, T0 + timedelta(hours=3, minutes=1))
    with pytest.raises(AppointmentError, match="no such participant"):
        b.invitation(visit, "c9")
    other = AppointmentBook(str(tmp_path / "other.sqlite3"), "another-secret-0123456789")
    with pytest.raises(AppointmentError, match="not valid"):
        other.redeem(token, T0)  # another service's secret
    # the life: cancel only while scheduled, end only once started
    with pytest.raises(AppointmentError, match="cannot become ended"):
        b.end(visit.id, T0)
    started = b.start(visit.id, T0 + timedelta(minutes=2))
    assert started.status is Status.IN_PROGRESS and b.by_room(visit.room) == started
    with pytest.raises(AppointmentError, match="cannot become cancelled"):
        b.cancel(visit.id, T0)
    ended = b.end(visit.id, T0 + timedelta(minutes=47))
    assert ended.status is Status.ENDED
    cancelled = b.create(kind=VisitType.VIDEO_VISIT, unit="L", title="V", starts_at=T0,
                         minutes=30, organizer=NURSE, participants=[client()])  # fmt: skip
    link = b.invitation(cancelled, "c1")
    b.cancel(cancelled.id, T0)
    with pytest.raises(AppointmentError, match="cancelled"):
        b.redeem(link, T0)


def test_calendar_and_monthly_figures_survive_a_reopen(tmp_path: Path) -> None:
    b = book(tmp_path)
    for day, (kind, unit, minutes) in enumerate([
        (VisitType.VIDEO_VISIT, "Lahti", 30), (VisitType.VIDEO_VISIT, "Lahti", 60),
        (VisitType.HOME_CARE_CALL, "Heinola", 15),
    ]):  # fmt: skip
        start = T0 + timedelta(days=day)
        visit = b.create(kind=kind, unit=unit, title="V", starts_at=start, minutes=minutes,
                         organizer=NURSE, participants=[client()])  # fmt: skip
        b.start(visit.id, start)
        b.end(visit.id, start + timedelta(minutes=minutes - 5))
    b.create(kind=VisitType.VIDEO_VISIT, unit="Lahti", title="Not yet", starts_at=T0,
             minutes=30, organizer=DOCTOR, participants=[client()])  # fmt: skip
    b.close()
    again = book(tmp_path)
    day_one = again.calendar(NURSE, T0, T0 + timedelta(days=1))
    assert [a.minutes for a in day_one] == [30]
    assert len(again.calendar(NURSE, T0, T0 + timedelta(days=7))) == 3
    assert len(again.calendar(DOCTOR, T0, T0 + timedelta(days=7))) == 1
    assert again.monthly(2026) == [
        {"month": "2026-11", "type": "home_care_call", "unit": "Heinola", "visits": 1,
         "averageMinutes": 10.0},
        {"month": "2026-11", "type": "video_visit", "unit": "Lahti", "visits": 2,
         "averageMinutes": 40.0},
    ]  # fmt: skip
    assert again.monthly(2025) == []
