"""The visit service's HTTP routes under ``/visit``: sign-in, the professional's console,
invitations, the visit page and its waiting room, the survey, statistics and the client's
access log. JSON endpoints take and give JSON (``mediasrv.http.json_body``); every state-changing
request carries the session's CSRF token (``X-CSRF-Token`` or a ``csrf`` form field)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, Protocol, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web

from examples.visit_service import pages
from examples.visit_service.appointments import (
    DURATIONS,
    LIMITS,
    Appointment,
    AppointmentBook,
    AppointmentError,
    Participant,
    Role,
    Status,
    VisitType,
)
from examples.visit_service.config import VisitConfig
from examples.visit_service.directory import PersonDirectory
from examples.visit_service.feedback import FeedbackBook, FeedbackError
from examples.visit_service.lobby import Lobbies, Lobby, LobbyError
from examples.visit_service.oidc_login import LoginError, OidcLogin
from examples.visit_service.sessions import Session, Sessions
from examples.visit_service.texts import client_texts, pick_language, t
from examples.visit_service.visit_plugin import HOST
from mediasrv.http.json_body import BadRequest, error, read_object
from mediasrv.plugin import Denied

if TYPE_CHECKING:
    from mediasrv.plugin import Identity

log = logging.getLogger("visit")
P = ParamSpec("P")
T = TypeVar("T")
e = pages.e
STATIC = Path(__file__).parent / "static"
ZONE = ZoneInfo("Europe/Helsinki")
HEARTBEAT_SECONDS = 5.0  # also how soon a closed waiting-room page is noticed
MAX_PARTICIPANTS = 20


class VisitAppHost(Protocol):
    """What the routes use of the visit service (a VisitService is one): its configuration
    and address, the books and the thread their work runs on, the clock, sign-ins and
    sessions, the waiting rooms, the audit trail, ending a visit, and the strongauth and
    proxy plugins (typed as VisitService gives them)."""

    @property
    def config(self) -> VisitConfig: ...

    @property
    def url(self) -> str: ...

    @property
    def book(self) -> AppointmentBook: ...

    @property
    def feedback(self) -> FeedbackBook: ...

    @property
    def people(self) -> PersonDirectory: ...

    @property
    def sessions(self) -> Sessions: ...

    @property
    def lobbies(self) -> Lobbies: ...

    @property
    def login(self) -> OidcLogin | None: ...

    @property
    def strongauth(self) -> Any: ...

    @property
    def proxy(self) -> Any: ...

    def now(self) -> datetime: ...

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...

    async def audit(self, decision: str, **fields: Any) -> int: ...

    async def identify(self, id_token: str, remote: str, nonce: str) -> Identity: ...

    async def end_visit(self, room_id: str, by: str) -> None: ...


SERVICE_KEY: web.AppKey[VisitAppHost] = web.AppKey("visit_service")


@dataclass(frozen=True)
class Seat:
    """Where a signed-in person sits in a visit."""

    participant: str  # participant id, or HOST
    role: str
    name: str
    acting_for: str | None = None  # the principal's subject
    acting_for_name: str = ""


# ---- helpers ----


def service_of(request: web.Request) -> VisitAppHost:
    return request.app[SERVICE_KEY]


def lang_of(request: web.Request) -> str:
    return pick_language(
        request.query.get("lang"),
        request.cookies.get("lang"),
        request.headers.get("Accept-Language", ""),
        service_of(request).config.language,
    )


def html_response(request: web.Request, text: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, content_type="text/html", status=status)
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    requested = request.query.get("lang")
    if requested in ("fi", "en"):
        response.set_cookie("lang", requested, samesite="Lax", path="/", max_age=365 * 86400)
    return response


def signed_in_page(
    request: web.Request,
    session: Session,
    lang: str,
    title: str,
    body: str,
    *,
    here: str,
    status: int = 200,
    **layout: Any,
) -> web.Response:
    """A page of the signed-in person: the layout with their name and CSRF token."""
    page = pages.layout(
        lang, title, body, name=session.name, csrf=session.csrf, here=here, **layout
    )
    return html_response(request, page, status)


def page_error(request: web.Request, message: str, status: int) -> web.Response:
    session = service_of(request).sessions.get(request)
    lang = lang_of(request)
    text = pages.error_page(
        lang, message, name=session.name if session else None, csrf=session.csrf if session else ""
    )
    return html_response(request, text, status)


def to_login(request: web.Request) -> NoReturn:
    raise web.HTTPFound(f"/visit/login?next={quote(request.path_qs, safe='')}")


def signed_in(
    request: web.Request, *, professional: bool = False
) -> tuple[VisitAppHost, Session, str]:
    """The service, the session and the language of a page for signed-in people (the sign-in
    first when there is no session; a 403 page when ``professional`` and they are not)."""
    service = service_of(request)
    session = service.sessions.get(request)
    if session is None:
        to_login(request)
    lang = lang_of(request)
    if professional and not session.professional:
        refused = page_error(request, t(lang, "forbidden"), 403)
        raise web.HTTPForbidden(text=refused.text, content_type="text/html",
                                headers={k: v for k, v in refused.headers.items()
                                         if k != "Content-Type"})  # fmt: skip
    return service, session, lang


def csrf_checked(
    request: web.Request, session: Session, body: dict[str, Any] | None = None
) -> None:
    given = request.headers.get("X-CSRF-Token") or (body or {}).get("csrf")
    if not service_of(request).sessions.csrf_ok(session, given):
        raise BadRequest("the request is not from this service's page (CSRF token)", status=403)


def closed_text(status: Status) -> str:
    return "the visit was cancelled" if status is Status.CANCELLED else "the visit has ended"


def local(when: datetime | None) -> str:
    return when.astimezone(ZONE).strftime("%Y-%m-%d %H:%M") if when else ""


def appointment_json(a: Appointment) -> dict[str, Any]:
    return {
        "id": a.id,
        "type": a.type.value,
        "unit": a.unit,
        "title": a.title,
        "startsAt": a.starts_at.isoformat(),
        "minutes": a.minutes,
        "status": a.status.value,
        "room": a.room,
        "participants": [
            {"id": p.id, "role": p.role.value, "name": p.name, "actsFor": bool(p.on_behalf_of)}
            for p in a.participants
        ],
    }


async def grants_of(service: VisitAppHost, subject: str) -> dict[str, str]:
    """principal subject -> name, for the person's grants in the proxy plugin that hold now:
    not revoked, within their validity, confirmed by every guardian they need. (Whether they
    let the person act in a visit is the proxy plugin's decision at the join.)"""
    proxy = service.proxy
    if proxy is None or proxy.store is None:
        return {}
    now = service.now()
    grants = await proxy.db(proxy.store.of_delegate, subject)
    return {
        g.principal: g.principal_name
        for g in grants
        if not g.revoked
        and (g.valid_from is None or g.valid_from <= now)
        and (g.valid_until is None or now < g.valid_until)
        and len(g.confirmed_by) >= g.guardians_required
    }


async def seat_of(
    service: VisitAppHost, appointment: Appointment, session: Session, participant_id: str
) -> Seat | None:
    if participant_id == HOST:
        if session.subject == appointment.organizer:
            return Seat(HOST, Role.PROFESSIONAL.value, session.name)
        return None
    found = next((p for p in appointment.participants if p.id == participant_id), None)
    if found is None or found.subject is None:
        return None
    if found.subject == session.subject:
        acting_name = ""
        if found.on_behalf_of:
            granted = (await grants_of(service, session.subject)).get(found.on_behalf_of)
            known = await service.db(service.people.name, found.on_behalf_of)
            acting_name = granted or known or ""
        return Seat(found.id, found.role.value, session.name, found.on_behalf_of, acting_name)
    if found.role is not Role.PROFESSIONAL:
        principals = await grants_of(service, session.subject)
        if found.subject in principals:
            return Seat(
                found.id, found.role.value, session.name, found.subject, principals[found.subject]
            )
    return None


async def my_seat(service: VisitAppHost, appointment: Appointment, session: Session) -> Seat | None:
    """The person's seat when the URL names none: host, or their own participant."""
    if session.subject == appointment.organizer:
        return Seat(HOST, Role.PROFESSIONAL.value, session.name)
    for p in appointment.participants:
        seat = await seat_of(service, appointment, session, p.id)
        if seat is not None:
            return seat
    return None


def is_staff(appointment: Appointment, subject: str) -> bool:
    return subject == appointment.organizer or any(
        p.subject == subject and p.role is Role.PROFESSIONAL for p in appointment.participants
    )


async def stream_lobby(
    request: web.Request, lobby: Lobby, render: Callable[[list[dict[str, Any]]], Any]
) -> web.StreamResponse:
    """An event stream (SSE) of a waiting room: ``render(snapshot)`` after every change, a
    heartbeat comment when nothing happens; it ends when the browser goes away or the lobby
    hangs up."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache, no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    queue = lobby.watch()
    try:
        while True:
            try:
                snapshot = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            if snapshot is None:  # the visit ended or the service stops
                break
            await response.write(f"data: {json.dumps(render(snapshot))}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        lobby.unwatch(queue)
    return response


# ---- sign-in ----


async def landing(request: web.Request) -> web.Response:
    service = service_of(request)
    session = service.sessions.get(request)
    text = pages.landing(
        lang_of(request),
        name=session.name if session else None,
        professional=bool(session and session.professional),
        csrf=session.csrf if session else "",
        dev=service.config.identity_provider == "dev",
    )
    return html_response(request, text)


def safe_next(value: str | None) -> str:
    if not value or not value.startswith("/visit/") or value.startswith("//") or "\\" in value:
        return "/visit/"
    return value


LOGIN_COOKIE = "visit_login"


async def login(request: web.Request) -> web.Response:
    service = service_of(request)
    assert service.login is not None
    try:
        url, browser = await service.login.begin(
            safe_next(request.query.get("next")), request.remote or ""
        )
    except LoginError as exc:
        return page_error(request, str(exc), 503)
    response = web.HTTPFound(url)
    response.set_cookie(LOGIN_COOKIE, browser, httponly=True, samesite="Lax", max_age=600,
                        path="/visit/callback", secure=service.config.secure_cookies)  # fmt: skip
    raise response


async def callback(request: web.Request) -> web.Response:
    service = service_of(request)
    assert service.login is not None
    try:
        token, pending = await service.login.finish(
            request.query.get("state", ""),
            request.query.get("code", ""),
            request.cookies.get(LOGIN_COOKIE, ""),
        )
        identity = await service.identify(token, request.remote or "", pending.nonce)
    except LoginError as exc:
        return page_error(request, str(exc), 400)
    except PermissionError as exc:
        return page_error(request, str(exc), 400)
    except Denied as denied:
        return page_error(request, denied.message, 401)
    response = web.HTTPFound(pending.return_to)
    response.del_cookie(LOGIN_COOKIE, path="/visit/callback")
    service.sessions.create(response, identity)
    log.info("visit: subject %s signed in (%s)", identity.subject, identity.method)
    raise response


async def logout(request: web.Request) -> web.Response:
    service = service_of(request)
    session = service.sessions.get(request)
    form = await request.post()
    response = web.HTTPFound("/visit/")
    if session is not None and service.sessions.csrf_ok(session, str(form.get("csrf", ""))):
        service.sessions.end(request, response)
    raise response


# ---- the professional's console ----


def week_of(value: str | None, today: date) -> date:
    try:
        day = date.fromisoformat(value) if value else today
    except ValueError:
        day = today
    return day - timedelta(days=day.weekday())


async def console(request: web.Request) -> web.Response:
    service, session, lang = signed_in(request, professional=True)
    monday = week_of(request.query.get("week"), service.now().astimezone(ZONE).date())
    start = datetime.combine(monday, datetime.min.time(), ZONE)
    found = await service.db(service.book.calendar, session.subject, start, start + timedelta(7))
    visits = []
    for a in found:
        links = []
        if a.organizer == session.subject:
            links = [
                {
                    "participantId": p.id,
                    "name": p.name,
                    "url": f"{service.url}/visit/i/{service.book.invitation(a, p.id)}",
                }
                for p in a.participants
            ]
        visits.append(
            {**appointment_json(a), "links": links, "host": a.organizer == session.subject}
        )
    boot = {
        "lang": lang,
        "texts": client_texts(lang)
        | {f"type_{v.value}": t(lang, f"type_{v.value}") for v in VisitType}
        | {f"status_{s.value}": t(lang, f"status_{s.value}") for s in Status}
        | {f"role_{r.value}": t(lang, f"role_{r.value}") for r in Role},
        "csrf": session.csrf,
        "units": list(service.config.units),
        "types": [v.value for v in VisitType],
        "limits": {
            k.value: {r.value: list(v) for r, v in rules.items()} for k, rules in LIMITS.items()
        },
        "durations": list(DURATIONS),
        "week": monday.isoformat(),
        "visits": visits,
    }
    body = f"""<h1>{e(t(lang, "console_title"))}</h1>
<div id="status" class="status" role="status" aria-live="polite"></div>
<div class="console">
<section aria-labelledby="cal-h" class="panel"><h2 id="cal-h">{e(t(lang, "calendar"))}</h2>
<div class="week-nav">
<a href="/visit/pro?week={(monday - timedelta(7)).isoformat()}">{e(t(lang, "previous_week"))}</a>
<span>{monday.strftime("%d.%m.%Y")} – {(monday + timedelta(6)).strftime("%d.%m.%Y")}</span>
<a href="/visit/pro?week={(monday + timedelta(7)).isoformat()}">{e(t(lang, "next_week"))}</a>
</div>
<div id="calendar"></div></section>
<section aria-labelledby="new-h" class="panel"><h2 id="new-h">{e(t(lang, "new_appointment"))}</h2>
<form id="new-appointment" novalidate></form></section>
</div>
<p><a href="/visit/stats">{e(t(lang, "statistics"))}</a></p>"""
    return signed_in_page(
        request,
        session,
        lang,
        t(lang, "console_title"),
        body,
        here="/visit/pro",
        scripts=["console.js"],
        boot=boot,
        wide=True,
    )


async def api_session(request: web.Request) -> Session:
    session = service_of(request).sessions.get(request)
    if session is None:
        raise BadRequest("sign in first", status=401)
    return session


def _participants(service: VisitAppHost, raw: object) -> list[Participant]:
    if not isinstance(raw, list) or len(raw) > MAX_PARTICIPANTS:
        raise BadRequest(f"participants must be a list of at most {MAX_PARTICIPANTS}")
    found: list[Participant] = []
    acts_for: list[tuple[int, object]] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRequest(f"participants[{index}] must be an object")
        try:
            role = Role(str(item.get("role")))
        except ValueError:
            raise BadRequest(
                f"participants[{index}].role must be professional, client or relative"
            ) from None
        name = item.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise BadRequest(f"participants[{index}].name must be a name of 1 to 100 characters")
        code = item.get("identityCode") or ""
        subject = None
        if code:
            from mediasrv_strongauth.identity_code import is_identity_code

            if not isinstance(code, str) or not is_identity_code(code.strip().upper()):
                raise BadRequest(f"participants[{index}].identityCode is not a valid identity code")
            subject = service.strongauth.subject_of(code.strip().upper())
        found.append(Participant(f"p{index + 1}", role, name.strip(), subject))
        if item.get("actsFor") is not None:
            acts_for.append((index, item.get("actsFor")))
    for index, target in acts_for:
        if not isinstance(target, int) or not 0 <= target < len(found) or target == index:
            raise BadRequest(
                f"participants[{index}].actsFor must be the index of another participant"
            )
        principal = found[target]
        if principal.subject is None:
            raise BadRequest(
                f"participants[{index}] acts for {principal.name}: "
                f"give {principal.name}'s identity code"
            )
        found[index] = Participant(
            found[index].id,
            found[index].role,
            found[index].name,
            found[index].subject,
            principal.subject,
        )
    return found


async def create_appointment(request: web.Request) -> web.Response:
    service = service_of(request)
    try:
        session = await api_session(request)
        if not session.professional:
            raise BadRequest("only professionals book appointments", status=403)
        body = await read_object(request)
        csrf_checked(request, session, body)
        try:
            kind = VisitType(str(body.get("type")))
        except ValueError:
            raise BadRequest(
                "type must be one of " + ", ".join(v.value for v in VisitType)
            ) from None
        unit = body.get("unit")
        if unit not in service.config.units:
            raise BadRequest("unit must be one of the service's units")
        try:
            starts = datetime.fromisoformat(str(body.get("startsAt")))
        except ValueError:
            raise BadRequest("startsAt must be a date and time (YYYY-MM-DDTHH:MM)") from None
        if starts.tzinfo is None:
            starts = starts.replace(tzinfo=ZONE)
        minutes = body.get("minutes")
        if not isinstance(minutes, int) or isinstance(minutes, bool):
            raise BadRequest("minutes must be a whole number")
        participants = _participants(service, body.get("participants"))
        appointment = await service.db(
            service.book.create,
            kind=kind,
            unit=str(unit),
            title=str(body.get("title", "")),
            starts_at=starts,
            minutes=minutes,
            organizer=session.subject,
            participants=participants,
        )
    except BadRequest as bad:
        return error(bad.status, bad.code, bad.message)
    except AppointmentError as exc:
        return error(400, "invalid_appointment", str(exc))
    links = [
        {
            "participantId": p.id,
            "name": p.name,
            "url": f"{service.url}/visit/i/{service.book.invitation(appointment, p.id)}",
        }
        for p in appointment.participants
    ]
    log.info("visit: appointment %s (%s) booked by %s", appointment.id, kind.value, session.subject)
    return web.json_response(
        {**appointment_json(appointment), "links": links, "host": True}, status=201
    )


async def cancel_appointment(request: web.Request) -> web.Response:
    service = service_of(request)
    try:
        session = await api_session(request)
        csrf_checked(request, session)
        appointment = await service.db(service.book.get, request.match_info["id"])
        if appointment is None or appointment.organizer != session.subject:
            raise BadRequest("no such appointment of yours", status=404)
        cancelled = await service.db(service.book.cancel, appointment.id, service.now())
    except BadRequest as bad:
        return error(bad.status, bad.code, bad.message)
    except AppointmentError as exc:
        return error(409, "invalid_state", str(exc))
    service.lobbies.drop(cancelled.id)
    return web.json_response(appointment_json(cancelled))


# ---- invitations and the visit page ----


async def invitation(request: web.Request) -> web.Response:
    service = service_of(request)
    lang = lang_of(request)
    try:
        appointment, participant = await service.db(
            service.book.redeem, request.match_info["token"], service.now()
        )
    except AppointmentError as exc:
        return page_error(request, t(lang, "invitation_invalid", error=str(exc)), 400)
    session = service.sessions.get(request)
    if session is None:
        return to_login(request)
    if participant.subject is None:  # invited by link: the first person who identifies
        if participant.role is Role.PROFESSIONAL and not session.professional:
            why = t(lang, "invitation_invalid", error="this invitation is for a professional")
            return page_error(request, why, 403)
        try:
            appointment = await service.db(
                service.book.bind, appointment.id, participant.id, session.subject
            )
        except AppointmentError as exc:
            return page_error(request, t(lang, "invitation_invalid", error=str(exc)), 403)
    seat = await seat_of(service, appointment, session, participant.id)
    if seat is None:
        return page_error(
            request,
            t(lang, "invitation_invalid", error="this invitation belongs to someone else"),
            403,
        )
    raise web.HTTPFound(f"/visit/room/{appointment.id}?p={quote(participant.id)}")


async def visit_page(request: web.Request) -> web.Response:
    service = service_of(request)
    lang = lang_of(request)
    session = service.sessions.get(request)
    if session is None:
        return to_login(request)
    appointment = await service.db(service.book.get, request.match_info["id"])
    if appointment is None:
        return page_error(request, t(lang, "not_found"), 404)
    wanted = request.query.get("p")
    seat = (
        await seat_of(service, appointment, session, wanted)
        if wanted
        else await my_seat(service, appointment, session)
    )
    if seat is None:
        return page_error(request, t(lang, "forbidden"), 403)
    if seat.role == Role.PROFESSIONAL.value:
        await service.audit(
            "viewed",
            room=appointment.room,
            subject=session.subject,
            remote=request.remote or "",
            detail={"appointment": appointment.id, "page": "visit"},
        )
    boot = {
        "lang": lang,
        "texts": client_texts(lang),
        "csrf": session.csrf,
        "appointment": appointment_json(appointment),
        "typeName": t(lang, f"type_{appointment.type.value}"),
        "seat": {
            "participant": seat.participant,
            "role": seat.role,
            "name": seat.name,
            "professional": seat.role == Role.PROFESSIONAL.value,
            "host": seat.participant == HOST,
            "actingFor": seat.acting_for,
            "actingForName": seat.acting_for_name,
        },
        "video": {"width": service.config.video_width, "height": service.config.video_height},
    }
    title = f"{appointment.title} – {t(lang, 'visit')}"
    body = f"""<h1 id="visit-title">{e(appointment.title)}</h1>
<p class="meta">{e(t(lang, f"type_{appointment.type.value}"))} · {e(appointment.unit)} ·
{e(local(appointment.starts_at))} · {e(t(lang, "minutes", n=appointment.minutes))}</p>
<div id="announcer" class="status" role="status" aria-live="polite"></div>
<div id="app"></div>"""
    return signed_in_page(
        request,
        session,
        lang,
        title,
        body,
        here=request.path,
        scripts=["visit.js"],
        boot=boot,
        wide=True,
    )


async def _posted_seat(
    request: web.Request, field: str
) -> tuple[dict[str, Any], VisitAppHost, Session, Appointment, Seat]:
    """A JSON POST about a visit: its body, and the seat named by ``body[field]`` of the
    signed-in person (CSRF checked)."""
    body = await read_object(request)
    participant = body.get(field)
    service, session, appointment, seat = await _visit_and_seat(
        request, participant if isinstance(participant, str) else None
    )
    csrf_checked(request, session, body)
    return body, service, session, appointment, seat


async def _visit_and_seat(
    request: web.Request, participant_id: str | None
) -> tuple[VisitAppHost, Session, Appointment, Seat]:
    service = service_of(request)
    session = await api_session(request)
    appointment = await service.db(service.book.get, request.match_info["id"])
    if appointment is None:
        raise BadRequest("no such visit", status=404)
    seat = await seat_of(service, appointment, session, participant_id or "")
    if seat is None:
        raise BadRequest("you are not a participant of this visit", status=403)
    return service, session, appointment, seat


async def ticket(request: web.Request) -> web.Response:
    try:
        _body, service, session, appointment, seat = await _posted_seat(request, "participant")
        if appointment.status in (Status.ENDED, Status.CANCELLED):
            raise BadRequest(closed_text(appointment.status), status=409)
        if seat.role != Role.PROFESSIONAL.value and not service.lobbies.get(
            appointment.id
        ).admitted(seat.participant, session.subject):
            raise BadRequest("wait until the professional lets you in", status=403)
    except BadRequest as bad:
        return error(bad.status, bad.code, bad.message)
    join_params: dict[str, Any] = {"visitParticipant": seat.participant}
    if seat.acting_for:
        join_params["onBehalfOf"] = {"principal": seat.acting_for}
    try:
        value = service.strongauth.issue_ticket(session.identity, appointment.room)
    except RuntimeError:  # every ticket place is taken (they expire in two minutes)
        return error(503, "busy", "too many people are joining right now; try again shortly")
    return web.json_response({"ticket": value, "room": appointment.room, "joinParams": join_params})


async def wait(request: web.Request) -> web.StreamResponse:
    """The client's waiting room: an event stream of its own entry."""
    try:
        service, session, appointment, seat = await _visit_and_seat(request, request.query.get("p"))
        if appointment.status in (Status.ENDED, Status.CANCELLED):
            raise BadRequest(closed_text(appointment.status), status=409)
        lobby = service.lobbies.get(appointment.id)
        lobby.arrive(seat.participant, seat.name, seat.role, seat.acting_for_name, session.subject)
    except BadRequest as bad:
        return error(bad.status, bad.code, bad.message)
    except LobbyError as exc:
        return error(503, "lobby_full", str(exc))

    def own_entry(snapshot: list[dict[str, Any]]) -> dict[str, Any]:
        mine = next((x for x in snapshot if x["participantId"] == seat.participant), None)
        if mine is None:  # the visit ended (the lobby was dropped)
            return {"state": "ended", "message": ""}
        return {"state": mine["state"], "message": mine["message"]}

    try:
        return await stream_lobby(request, lobby, own_entry)
    finally:
        lobby.left(seat.participant)


async def lobby_stream(request: web.Request) -> web.StreamResponse:
    """The professional's view of the waiting room: an event stream of every entry."""
    try:
        service, _session, appointment, seat = await _visit_and_seat(
            request, request.query.get("p")
        )
        if seat.role != Role.PROFESSIONAL.value:
            raise BadRequest("only the visit's professionals see the waiting room", status=403)
        if appointment.status in (Status.ENDED, Status.CANCELLED):
            raise BadRequest(closed_text(appointment.status), status=409)
    except BadRequest as bad:
        return error(bad.status, bad.code, bad.message)
    return await stream_lobby(
        request, service.lobbies.get(appointment.id), lambda snapshot: {"entries": snapshot}
    )


async def lobby_decide(request: web.Request) -> web.Response:
    try:
        body, service, session, appointment, seat = await _posted_seat(request, "as")
        if seat.role != Role.PROFESSIONAL.value:
            raise BadRequest("only the visit's professionals decide who comes in", status=403)
        entry = service.lobbies.get(appointment.id).decide(
            request.match_info["participant"], str(body.get("action")), body.get("message") or ""
        )
    except BadRequest as bad:
        return error(bad.status, bad.code, bad.message)
    except LobbyError as exc:
        return error(400, "invalid_action", str(exc))
    await service.audit(
        f"lobby_{entry.state}",
        room=appointment.room,
        subject=session.subject,
        remote=request.remote or "",
        detail={"appointment": appointment.id, "participant": entry.participantId},
    )
    return web.json_response({"entry": entry.__dict__})


async def end_visit(request: web.Request) -> web.Response:
    try:
        _body, service, session, appointment, seat = await _posted_seat(request, "as")
        if seat.role != Role.PROFESSIONAL.value:
            raise BadRequest("only a professional ends the visit", status=403)
    except BadRequest as bad:
        return error(bad.status, bad.code, bad.message)
    await service.end_visit(appointment.room, session.name)
    ended = await service.db(service.book.get, appointment.id)
    assert ended is not None
    return web.json_response(appointment_json(ended))


async def ping(request: web.Request) -> web.Response:
    return web.json_response({"ok": True}, headers={"Cache-Control": "no-store"})


# ---- my visits, the survey, statistics, the access log ----


async def my_visits(request: web.Request) -> web.Response:
    service, session, lang = signed_in(request)
    found = await service.db(service.book.of_person, session.subject)
    principals = await grants_of(service, session.subject)
    for principal in principals:
        found += await service.db(service.book.of_person, principal)
    seen: set[str] = set()
    rows = []
    for a in sorted(found, key=lambda x: x.starts_at, reverse=True):
        if a.id in seen:
            continue
        seen.add(a.id)
        seat = await my_seat(service, a, session)
        open_link = ""
        if seat is not None and a.status in (Status.SCHEDULED, Status.IN_PROGRESS):
            open_link = (
                f'<a href="/visit/room/{e(a.id)}?p={e(quote(seat.participant))}">'
                f"{e(t(lang, 'open_visit'))}: {e(a.title)}</a>"
            )
        rows.append(
            [
                e(local(a.starts_at)),
                e(a.title),
                e(t(lang, f"type_{a.type.value}")),
                e(t(lang, f"status_{a.status.value}")),
                open_link,
            ]
        )
    body = (
        f"<h1>{e(t(lang, 'my_visits'))}</h1>"
        + (
            pages.table(
                t(lang, "my_visits"),
                [
                    t(lang, "starts_at"),
                    t(lang, "title"),
                    t(lang, "visit_type"),
                    t(lang, "status"),
                    "",
                ],
                rows,
                raw=True,
            )
            if rows
            else f"<p>{e(t(lang, 'log_empty'))}</p>"
        )
        + f'<p><a href="/visit/log">{e(t(lang, "my_log"))}</a></p>'
    )
    return signed_in_page(
        request,
        session,
        lang,
        t(lang, "my_visits"),
        body,
        here="/visit/visits",
    )


async def survey(request: web.Request) -> web.Response:
    """The end-of-visit survey: one link per visit (posted in the chat); the answer is the
    signed-in participant's own (answering again replaces it)."""
    service = service_of(request)
    lang = lang_of(request)
    try:
        (appointment_id,) = service.book.check_parts("survey", request.match_info["token"], 1)
    except AppointmentError:
        return page_error(request, t(lang, "survey_invalid"), 404)
    appointment = await service.db(service.book.get, appointment_id)
    if appointment is None:
        return page_error(request, t(lang, "survey_invalid"), 404)
    session = service.sessions.get(request)
    if session is None:
        return to_login(request)
    seat = await my_seat(service, appointment, session)
    if seat is None or seat.role == Role.PROFESSIONAL.value:
        return page_error(request, t(lang, "forbidden"), 403)
    if appointment.status is not Status.ENDED:
        return page_error(request, t(lang, "survey_not_yet"), 409)
    participant_id = seat.participant
    message = ""
    status = 200
    if request.method == "POST":
        form = await request.post()
        try:
            csrf_checked(request, session, {"csrf": str(form.get("csrf", ""))})
            raw = str(form.get("score", ""))
            score = int(raw) if raw.isdigit() and len(raw) < 4 else -1
            await service.db(
                service.feedback.record,
                appointment_id=appointment.id,
                participant_id=participant_id,
                score=score,
                comment=str(form.get("comment", "")),
                visit_type=appointment.type.value,
                unit=appointment.unit,
                month=(appointment.started_at or appointment.starts_at).strftime("%Y-%m"),
                now=service.now(),
            )
            message = f'<p role="status" class="ok">{e(t(lang, "thanks"))}</p>'
        except (FeedbackError, BadRequest) as exc:
            message = f'<p role="alert" class="error">{e(str(exc))}</p>'
            status = 400
    previous = await service.db(service.feedback.answer, appointment.id, participant_id)
    chosen = previous["score"] if previous else None
    radios = "".join(
        f'<label class="nps"><input type="radio" name="score" value="{n}" required'
        f"{' checked' if chosen == n else ''}><span>{n}</span></label>"
        for n in range(11)
    )
    comment = e(previous["comment"]) if previous else ""
    body = f"""<h1>{e(t(lang, "survey_title"))}</h1>
<p class="meta">{e(appointment.title)} · {e(local(appointment.starts_at))}</p>
{message}
<form method="post" class="survey">
<input type="hidden" name="csrf" value="{e(session.csrf)}">
<fieldset><legend>{e(t(lang, "nps_question"))}</legend>
<div class="nps-row">{radios}</div></fieldset>
<label for="comment">{e(t(lang, "comment"))}</label>
<textarea id="comment" name="comment" rows="4" maxlength="2000">{comment}</textarea>
<button type="submit">{e(t(lang, "submit"))}</button>
</form>"""
    return signed_in_page(
        request,
        session,
        lang,
        t(lang, "survey_title"),
        body,
        here=request.path,
        status=status,
    )


async def statistics(request: web.Request) -> web.Response:
    from examples.visit_service.charts import bar_chart, line_chart

    service, session, lang = signed_in(request, professional=True)
    try:
        year = (
            int(request.query.get("year", "")) if request.query.get("year") else service.now().year
        )
    except ValueError:
        year = service.now().year
    year = min(max(year, 2000), 2100)
    monthly = await service.db(service.book.monthly, year)
    nps = await service.db(service.feedback.nps, year)
    comments = await service.db(service.feedback.comments, year, 10)
    months = sorted({r["month"] for r in monthly})
    types = [v.value for v in VisitType if any(r["type"] == v.value for r in monthly)]
    series = [
        (
            t(lang, f"type_{kind}"),
            [
                float(sum(r["visits"] for r in monthly if r["month"] == m and r["type"] == kind))
                for m in months
            ],
        )
        for kind in types
    ]
    units = sorted({r["unit"] for r in monthly})
    by_unit = [float(sum(r["visits"] for r in monthly if r["unit"] == u)) for u in units]
    average = []
    for m in months:
        rows = [r for r in monthly if r["month"] == m]
        count = sum(r["visits"] for r in rows)
        average.append(round(sum(r["averageMinutes"] * r["visits"] for r in rows) / count, 1))
    empty = t(lang, "no_data")
    charts = [
        bar_chart(t(lang, "visits_by_month"), months, series, empty_text=empty),
        bar_chart(
            t(lang, "visits_by_unit"), units, [(t(lang, "visits"), by_unit)], empty_text=empty
        ),
        bar_chart(
            t(lang, "average_minutes"),
            months,
            [(t(lang, "average"), average)],
            unit="min",
            empty_text=empty,
        ),
        line_chart(
            t(lang, "nps_by_month"),
            [r["month"] for r in nps],
            [("NPS", [float(r["nps"]) for r in nps])],
            empty_text=empty,
        ),
    ]
    comment_rows = [
        [c["month"], t(lang, f"type_{c['type']}"), c["unit"], str(c["score"]), c["comment"]]
        for c in comments
    ]
    body = (
        f"<h1>{e(t(lang, 'stats_title', year=year))}</h1>"
        f'<nav class="week-nav" aria-label="{e(t(lang, "statistics"))}">'
        f'<a href="/visit/stats?year={year - 1}">{year - 1}</a>'
        f'<a href="/visit/stats?year={year + 1}">{year + 1}</a></nav>'
        + "".join(f'<section class="panel">{c}</section>' for c in charts)
        + (
            pages.table(
                t(lang, "latest_comments"),
                [
                    t(lang, "month"),
                    t(lang, "visit_type"),
                    t(lang, "unit"),
                    "NPS",
                    t(lang, "comment"),
                ],
                comment_rows,
            )
            if comment_rows
            else ""
        )
    )
    return signed_in_page(
        request,
        session,
        lang,
        t(lang, "stats_title", year=year),
        body,
        here=f"/visit/stats?year={year}",
        wide=True,
    )


def _acr_text(lang: str, acr: str | None) -> str:
    if not acr:
        return ""
    level = acr.rsplit("/", 1)[-1]
    names = {"loa2": t(lang, "loa2"), "loa3": t(lang, "loa3")}
    return f"{names[level]} ({level})" if level in names else level


async def access_log(request: web.Request) -> web.Response:
    service, session, lang = signed_in(request)
    me = session.subject
    strongauth = service.strongauth
    audit = strongauth.audit
    records: dict[int, dict[str, Any]] = {}
    for found in (
        await strongauth.audit_call(audit.query, subject=me, limit=500),
        await strongauth.audit_call(audit.query, principal=me, limit=500),
    ):
        records.update({r["id"]: r for r in found})
    mine = await service.db(service.book.of_person, me)
    visits = {a.room: a for a in mine if a.organizer != me}
    shown_to_others = {
        "joined",
        "left",
        "viewed",
        "recording_consent",
        "recording_refused",
        "proxy_allowed",
    }  # others' refusals and sign-ins are theirs, not mine
    for room in visits:
        for r in await strongauth.audit_call(audit.query, room=room, limit=500):
            if r["decision"] in shown_to_others or me in (r["subject"], r["principal"]):
                records[r["id"]] = r
    labels = {
        "joined",
        "left",
        "accepted",
        "viewed",
        "verified",
        "proxy_allowed",
        "proxy_refused",
        "recording_consent",
        "recording_refused",
        "refused",
    }
    rows = []
    names: dict[str | None, str | None] = {}
    for r in sorted(records.values(), key=lambda x: x["id"], reverse=True):
        if r["decision"] not in labels:
            continue
        if r["subject"] not in names:
            names[r["subject"]] = await service.db(service.people.name, r["subject"])
        who = names[r["subject"]] or t(lang, "someone")
        appointment = visits.get(r["room"] or "")
        if r["subject"] == me and r["principal"]:
            basis = t(lang, "basis_on_behalf", basis=r["basis"] or "")
        elif r["subject"] == me:
            basis = t(lang, "basis_own")
        elif r["principal"] == me:
            basis = t(lang, "basis_on_behalf", basis=r["basis"] or "")
        elif appointment is not None and is_staff(appointment, r["subject"] or ""):
            basis = t(lang, "basis_professional")
        else:
            basis = t(lang, "basis_participant")
        when = datetime.fromisoformat(r["time"].replace("Z", "+00:00")) if r["time"] else None
        what = t(lang, f"log_{r['decision']}")
        if appointment is not None:
            what += f" – {appointment.title}"
        rows.append(
            [
                local(when.astimezone(UTC)) if when else "",
                who,
                what,
                basis,
                _acr_text(lang, r["acr"]),
            ]
        )
        if len(rows) >= 300:
            break
    body = f"""<h1>{e(t(lang, "log_title"))}</h1><p>{e(t(lang, "log_intro"))}</p>""" + (
        pages.table(
            t(lang, "log_title"),
            [t(lang, "when"), t(lang, "who"), t(lang, "what"), t(lang, "basis"), t(lang, "method")],
            rows,
        )
        if rows
        else f"<p>{e(t(lang, 'log_empty'))}</p>"
    )
    return signed_in_page(
        request,
        session,
        lang,
        t(lang, "log_title"),
        body,
        here="/visit/log",
        wide=True,
    )


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


def visit_app(service: VisitAppHost) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[SERVICE_KEY] = service
    app.router.add_get("/", landing)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/login", login)
    app.router.add_get("/callback", callback)
    app.router.add_post("/logout", logout)
    app.router.add_get("/pro", console)
    app.router.add_post("/api/appointments", create_appointment)
    app.router.add_post("/api/appointments/{id}/cancel", cancel_appointment)
    app.router.add_get("/i/{token}", invitation)
    app.router.add_get("/room/{id}", visit_page)
    app.router.add_post("/api/visits/{id}/ticket", ticket)
    app.router.add_get("/api/visits/{id}/wait", wait)
    app.router.add_get("/api/visits/{id}/lobby", lobby_stream)
    app.router.add_post("/api/visits/{id}/lobby/{participant}", lobby_decide)
    app.router.add_post("/api/visits/{id}/end", end_visit)
    app.router.add_get("/api/ping", ping)
    app.router.add_get("/visits", my_visits)
    app.router.add_route("*", "/survey/{token}", survey)
    app.router.add_get("/stats", statistics)
    app.router.add_get("/log", access_log)
    return app
