"""Demo data for a first start (``demo_data = true``): the test people's grants (a parent for
her children, a relative with a mandate for an elderly client), today's appointments of the
nurse, and ended visits with survey answers of the past months so the statistics show
something. Seeded once per data directory."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar
from zoneinfo import ZoneInfo

from mediasrv_proxy.basis import Basis
from mediasrv_proxy.grant import Grant

from examples.visit_service.appointments import AppointmentBook, Participant, Role, VisitType
from examples.visit_service.config import VisitConfig
from examples.visit_service.dev_idp import TEST_PEOPLE, DevPerson
from examples.visit_service.directory import PersonDirectory
from examples.visit_service.feedback import FeedbackBook

P = ParamSpec("P")
T = TypeVar("T")

MARKER = "demo-seeded"
ZONE = ZoneInfo("Europe/Helsinki")


class DemoHost(Protocol):
    """What seeding uses of the visit service (a VisitService is one): its configuration, the
    thread its books' work runs on, the clock, the books, and the strongauth and proxy
    plugins (typed as VisitService gives them)."""

    @property
    def config(self) -> VisitConfig: ...

    @property
    def book(self) -> AppointmentBook: ...

    @property
    def feedback(self) -> FeedbackBook: ...

    @property
    def people(self) -> PersonDirectory: ...

    @property
    def strongauth(self) -> Any: ...

    @property
    def proxy(self) -> Any: ...

    def now(self) -> datetime: ...

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...


def person(key: str) -> DevPerson:
    return next(p for p in TEST_PEOPLE if p.key == key)


async def seed(service: DemoHost) -> None:
    marker = Path(service.config.path(MARKER))
    if await service.db(marker.exists):
        return
    await seed_people(service)
    await seed_appointments(service)
    await service.db(marker.write_text, service.now().isoformat())


async def seed_people(service: DemoHost) -> None:
    """The test people in the directory, and their grants in the proxy plugin's store."""
    subject = service.strongauth.subject_of
    proxy = service.proxy
    now = service.now()
    for p in TEST_PEOPLE:
        await service.db(
            service.people.remember,
            subject(p.identity_code),
            p.name,
            professional="professional" in p.roles,
        )
    grants = [
        ("parent", "child", Basis.GUARDIAN_OF_MINOR),
        ("parent", "teen", Basis.GUARDIAN_OF_MINOR),
        ("relative", "elder", Basis.MANDATE),
    ]
    for delegate_key, principal_key, basis in grants:
        delegate, principal = person(delegate_key), person(principal_key)
        grant = Grant(
            id="",
            principal=subject(principal.identity_code),
            principal_name=principal.name,
            principal_birthdate=principal.birthdate,
            delegate=subject(delegate.identity_code),
            delegate_name=delegate.name,
            basis=basis,
            valid_from=now - timedelta(days=30),
            valid_until=now + timedelta(days=365),
        )
        await proxy.db(proxy.store.add, grant)


async def seed_appointments(service: DemoHost) -> None:
    """Today's appointments of the nurse, and ended visits with answers of six months."""
    subject = service.strongauth.subject_of
    now = service.now()
    nurse = subject(person("nurse").identity_code)
    doctor = subject(person("doctor").identity_code)
    unit = service.config.units
    soon = now.astimezone(ZONE).replace(second=0, microsecond=0) + timedelta(minutes=15)
    book = service.book
    plans = [
        (VisitType.VIDEO_VISIT, unit[3], "Verenpaineen seuranta", 0, 30,
         [Participant("p1", Role.CLIENT, "Aino Asiakas", subject(person("client").identity_code))]),
        (VisitType.VIDEO_VISIT, unit[0], "Neuvolakäynti: Ville", 60, 30,
         [Participant("p1", Role.CLIENT, "Ville Lapsi", subject(person("child").identity_code))]),
        (VisitType.HOME_CARE_CALL, unit[1], "Kotihoidon iltapäiväsoitto", 120, 15,
         [Participant("p1", Role.CLIENT, "Eino Vanhus", subject(person("elder").identity_code))]),
        (VisitType.NETWORK_MEETING, unit[2], "Verkostopalaveri", 180, 60,
         [Participant("p1", Role.PROFESSIONAL, "Lauri Lääkäri", doctor),
          Participant("p2", Role.CLIENT, "Aino Asiakas", subject(person("client").identity_code)),
          Participant("p3", Role.RELATIVE, "Läheinen")]),
    ]  # fmt: skip
    for kind, unit_name, title, offset, minutes, people in plans:
        await service.db(
            book.create,
            kind=kind,
            unit=unit_name,
            title=title,
            starts_at=soon + timedelta(minutes=offset),
            minutes=minutes,
            organizer=nurse,
            participants=people,
        )
    # ended visits of the past six months, with survey answers
    rng = random.Random(7)
    kinds = list(VisitType)
    for month_back in range(6, 0, -1):
        base = (now - timedelta(days=30 * month_back)).astimezone(UTC)
        for i in range(rng.randint(4, 9)):
            kind = kinds[rng.randrange(len(kinds))]
            people = _people_for(kind)
            minutes = rng.choice((15, 30, 30, 45, 60))
            starts = base + timedelta(days=i, hours=rng.randint(0, 6))
            made = await service.db(
                book.create,
                kind=kind,
                unit=unit[rng.randrange(len(unit))],
                title="Käynti",
                starts_at=starts,
                minutes=minutes,
                organizer=nurse,
                participants=people,
            )
            await service.db(book.start, made.id, starts)
            took = timedelta(minutes=max(5, minutes + rng.randint(-10, 5)))
            await service.db(book.end, made.id, starts + took)
            for seat in people:
                if seat.role is Role.PROFESSIONAL:
                    continue
                await service.db(
                    service.feedback.record,
                    appointment_id=made.id,
                    participant_id=seat.id,
                    score=rng.choice((10, 10, 9, 9, 8, 7, 10, 6, 9, 4)),
                    comment=rng.choice(("", "", "Helppo käyttää.", "Kuva pätki hetken.")),
                    visit_type=kind.value,
                    unit=made.unit,
                    month=starts.strftime("%Y-%m"),
                    now=starts + took,
                )


def _people_for(kind: VisitType) -> list[Participant]:
    client = Participant("p1", Role.CLIENT, "Asiakas")
    if kind is VisitType.GROUP_VISIT:
        return [client, Participant("p2", Role.CLIENT, "Asiakas 2")]
    if kind is VisitType.NETWORK_MEETING:
        return [
            Participant("p1", Role.PROFESSIONAL, "Ammattilainen"),
            Participant("p2", Role.CLIENT, "Asiakas"),
        ]
    if kind is VisitType.CONSULTATION:
        return [Participant("p1", Role.PROFESSIONAL, "Konsultti")]
    return [client]
