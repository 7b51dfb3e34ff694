"""The visit service's HTTP API and signaling without a browser: real sign-ins through the
development identity provider's login form (one cookie jar per person), booking, invitations
and seats, the waiting room's event streams, join tickets used over real signaling (the
Python SDK), recording consent, the end of a visit, the survey and the access log.

Real pieces only: the VisitService with the media server and its strongauth, proxy and chat
plugins, SQLite files in a temporary directory, the test people and their grants."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from mediasrv_strongauth import loa
from sfu_support import ToneTrack
from visit_http_support import boot_of as boot
from visit_http_support import (
    browser,
    csrf,
    csrf_of,
    identity_code,
    login_page,
    next_event,
    person_name,
    pick_person,
    post_json,
    sign_in,
    subject_of,
    visit_service,
)

from examples.visit_service.dev_idp import TEST_PEOPLE
from examples.visit_service.routes import ZONE
from examples.visit_service.service import VisitService
from mediasrv.client import Client, SignalingError

TIMEOUT = 60.0
STEP = 10.0
CSRF_MESSAGE = "the request is not from this service's page (CSRF token)"
FORBIDDEN_PAGE = "You do not have access to this page."
DASH = "\N{EN DASH}"  # between what happened and the visit's title in the access log

Run = Callable[[Any], Any]


@dataclass
class Person:
    """A signed-in person's "browser" and the session's CSRF token."""

    key: str
    http: aiohttp.ClientSession
    csrf: str

    @property
    def name(self) -> str:
        return person_name(self.key)


async def signed_in(
    stack: contextlib.AsyncExitStack, service: VisitService, key: str, next_path: str = "/visit/"
) -> Person:
    http = await stack.enter_async_context(browser())
    status, _url, _html = await sign_in(http, service, key, next_path)
    assert status == 200, (key, status)
    return Person(key, http, await csrf(http, service))


def api(service: VisitService, path: str) -> str:
    return f"{service.url}/visit/api/{path}"


def ws_url(service: VisitService) -> str:
    return f"{service.url.replace('http', 'ws', 1)}/ws"


def appointment_body(service: VisitService, **changes: Any) -> dict[str, Any]:
    starts = service.now().astimezone(ZONE).replace(second=0, microsecond=0)
    body: dict[str, Any] = {
        "type": "video_visit",
        "unit": service.config.units[0],
        "title": "Verenpaineen seuranta",
        "startsAt": starts.strftime("%Y-%m-%dT%H:%M"),
        "minutes": 30,
        "participants": [{"role": "client", "name": "Aino Asiakas"}],
    }
    body.update(changes)
    return body


async def book(service: VisitService, nurse: Person, **changes: Any) -> dict[str, Any]:
    status, made = await post_json(
        nurse.http, api(service, "appointments"), appointment_body(service, **changes), nurse.csrf
    )
    assert status == 201, made
    assert isinstance(made, dict)
    return made


def eino() -> dict[str, Any]:
    """The elder as the invited client, named by his identity code."""
    return {"role": "client", "name": "Eino Vanhus", "identityCode": identity_code("elder")}


def link_path(made: dict[str, Any], participant: str = "p1") -> str:
    """The path of a participant's invitation link (``/visit/i/<token>``)."""
    url = next(link["url"] for link in made["links"] if link["participantId"] == participant)
    assert isinstance(url, str)
    return url[url.index("/visit/i/") :]


def to_sign_in(response: aiohttp.ClientResponse) -> str:
    """Where a redirect to the sign-in returns to afterwards (its ``next``)."""
    assert response.status == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/visit/login", location
    (value,) = parse_qs(location.query)["next"]
    return value


def error_text(page: str) -> str:
    """The message of an error page (its ``role="alert"`` paragraph), unescaped."""
    match = re.search(r'<p role="alert">(.*?)</p>', page, re.S)
    assert match is not None, page
    return html.unescape(match.group(1))


def table_rows(page: str) -> list[list[str]]:
    """The body rows of a page's table, cells unescaped."""
    rows = [re.findall(r"<td>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", page)]
    return [[html.unescape(cell) for cell in row] for row in rows if row]


@contextlib.asynccontextmanager
async def stream(http: aiohttp.ClientSession, url: str) -> AsyncIterator[aiohttp.ClientResponse]:
    """An open server-sent event stream (status checked by the caller)."""
    response = await http.get(url)
    try:
        yield response
    finally:
        response.close()


async def event(response: aiohttp.ClientResponse) -> Any:
    return await asyncio.wait_for(next_event(response), STEP)


async def decide(
    service: VisitService, who: Person, appointment: str, participant: str, **body: Any
) -> tuple[int, Any]:
    url = api(service, f"visits/{appointment}/lobby/{participant}")
    return await post_json(who.http, url, {"as": "host", **body}, who.csrf)


async def ticket(
    service: VisitService, who: Person, appointment: str, participant: str
) -> tuple[int, Any]:
    url = api(service, f"visits/{appointment}/ticket")
    return await post_json(who.http, url, {"participant": participant}, who.csrf)


async def admitted_ticket(
    service: VisitService, nurse: Person, who: Person, appointment: str, participant: str = "p1"
) -> dict[str, Any]:
    """``who`` waits in the waiting room, the nurse lets them in: their join ticket."""
    wait_url = api(service, f"visits/{appointment}/wait?p={participant}")
    async with stream(who.http, wait_url) as waiting:
        assert waiting.status == 200
        assert (await event(waiting))["state"] == "waiting"
        status, _ = await decide(service, nurse, appointment, participant, action="admit")
        assert status == 200
        assert await event(waiting) == {"state": "admitted", "message": ""}
    status, grant = await ticket(service, who, appointment, participant)
    assert status == 200, grant
    assert isinstance(grant, dict)
    return grant


async def join(
    stack: contextlib.AsyncExitStack, service: VisitService, grant: dict[str, Any], name: str
) -> Client:
    client = await Client.connect(
        ws_url(service),
        token=grant["ticket"],
        room=grant["room"],
        display_name=name,
        join_params=grant["joinParams"],
    )
    stack.push_async_callback(client.close)
    return client


async def refused_join(
    service: VisitService, token: str, room: str, join_params: dict[str, Any]
) -> SignalingError:
    with pytest.raises(SignalingError) as caught:
        client = await Client.connect(
            ws_url(service), token=token, room=room, display_name="x", join_params=join_params
        )
        await client.close()
    return caught.value


class Events:
    """Notifications a client got, by method, as they come."""

    def __init__(self, client: Client, *methods: str) -> None:
        self.got: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
        for method in methods:
            client.on(method, self._keeper(method))

    def _keeper(self, method: str) -> Callable[[dict[str, Any]], None]:
        return lambda params: self.got[method].append(params)

    async def first(
        self, method: str, where: Callable[[dict[str, Any]], bool] = lambda _: True
    ) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STEP
        while loop.time() < deadline:
            found = [p for p in self.got[method] if where(p)]
            if found:
                return found[0]
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {method} notification in {STEP} s: {self.got}")


async def audit_of(service: VisitService, **query: Any) -> list[dict[str, Any]]:
    strongauth = service.strongauth
    await strongauth.flush()
    found: list[dict[str, Any]] = await strongauth.audit_call(
        strongauth.audit.query, limit=1000, **query
    )
    return found


def detail(record: dict[str, Any]) -> dict[str, Any]:
    value = json.loads(record["detail"]) if record["detail"] else {}
    assert isinstance(value, dict)
    return value


# ---- 1. sign-in ----


def test_sign_in_sessions_and_the_audit_trail(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        async with visit_service(tmp_path) as service, contextlib.AsyncExitStack() as stack:
            base = service.url
            nurse = await stack.enter_async_context(browser())
            status, url, page = await sign_in(nurse, service, "nurse", "/visit/pro")
            assert (status, url) == (200, f"{base}/visit/pro")
            console = boot(page)
            assert console["csrf"] == csrf_of(page)
            assert console["lang"] == "en" and console["visits"] == []
            assert console["units"] == list(service.config.units)
            assert "<h1>Appointments</h1>" in page

            client = await stack.enter_async_context(browser())
            status, url, page = await sign_in(client, service, "client", "/visit/pro")
            assert (status, error_text(page)) == (403, FORBIDDEN_PAGE)
            assert 'id="boot"' not in page
            async with client.get(f"{base}/visit/stats") as response:
                assert response.status == 403
                assert error_text(await response.text()) == FORBIDDEN_PAGE
            async with nurse.get(f"{base}/visit/stats") as response:
                assert response.status == 200

            # the callback: an unknown state, a state used twice, no code, a foreign nonce
            expired = "the sign-in has expired or was already used; please sign in again"
            stranger = await stack.enter_async_context(browser())
            callback = f"{base}/visit/callback"
            async with stranger.get(callback, params={"state": "bogus", "code": "x"}) as response:
                assert response.status == 400
                assert error_text(await response.text()) == expired
            fields = await login_page(stranger, service, "/visit/visits")
            location = await pick_person(stranger, service, fields, "doctor")
            async with stranger.get(location, allow_redirects=False) as response:
                assert response.status == 302
                assert response.headers["Location"] == "/visit/visits"
                cookies = response.headers.getall("Set-Cookie")
                cookie = next(c for c in cookies if c.startswith("visit_session="))
                assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
                assert "Secure" not in cookie  # plain http on loopback
            async with stranger.get(location, allow_redirects=False) as response:
                assert response.status == 400
                assert error_text(await response.text()) == expired
            fields = await login_page(stranger, service, "/visit/")
            async with stranger.get(callback, params={"state": fields["state"]}) as response:
                assert response.status == 400
                assert error_text(await response.text()) == (
                    "the identification service returned no code"
                )
            # a sign-in finished in another browser than the one that started it (login CSRF)
            fields = await login_page(stranger, service, "/visit/")
            location = await pick_person(stranger, service, fields, "teen")
            victim = await stack.enter_async_context(browser())
            async with victim.get(location, allow_redirects=False) as response:
                assert response.status == 400
                assert error_text(await response.text()) == (
                    "the sign-in was started in another browser; please sign in again"
                )
            assert not [c for c in victim.cookie_jar if c.key == "visit_session"]
            fields = await login_page(stranger, service, "/visit/")
            location = await pick_person(stranger, service, {**fields, "nonce": "other"}, "teen")
            async with stranger.get(location, allow_redirects=False) as response:
                assert response.status == 400
                assert error_text(await response.text()) == (
                    "the sign-in does not belong to this browser (nonce)"
                )

            # every sign-in is in the audit trail: verified, for the purpose of signing in
            for key in ("nurse", "client", "doctor"):
                records = await audit_of(service, subject=subject_of(service, key))
                verified = [r for r in records if r["decision"] == "verified"]
                assert len(verified) == 1, (key, records)
                assert detail(verified[0]) == {"purpose": "visit: sign-in"}
                assert verified[0]["acr"] == loa.FTN_LOA2

            # signing out needs the session's token; then the console asks to sign in
            async with nurse.post(f"{base}/visit/logout", data={"csrf": "wrong"}) as response:
                assert response.status == 200 and str(response.url) == f"{base}/visit/"
            token = await csrf(nurse, service)
            async with nurse.post(f"{base}/visit/logout", data={"csrf": token}) as response:
                assert response.status == 200
                assert 'name="csrf"' not in await response.text()
            async with nurse.get(f"{base}/visit/pro", allow_redirects=False) as response:
                assert response.status == 302
                assert to_sign_in(response) == "/visit/pro"

    run(asyncio.wait_for(scenario(), TIMEOUT))


# ---- 2. booking ----


def test_booking_appointments(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        async with visit_service(tmp_path) as service, contextlib.AsyncExitStack() as stack:
            url = api(service, "appointments")
            nurse = await signed_in(stack, service, "nurse")
            client = await signed_in(stack, service, "client")
            anonymous = await stack.enter_async_context(browser())
            valid = appointment_body(service)

            async def refused(who: aiohttp.ClientSession, body: Any, token: str | None) -> Any:
                status, answer = await post_json(who, url, body, token)
                return status, answer

            assert await refused(nurse.http, valid, None) == (
                403,
                {"error": "invalid_request", "message": CSRF_MESSAGE},
            )
            assert (await refused(nurse.http, valid, "not-the-token"))[0] == 403
            assert await refused(nurse.http, valid, client.csrf) == (
                403,
                {"error": "invalid_request", "message": CSRF_MESSAGE},
            )
            assert await refused(anonymous, valid, "x") == (
                401,
                {"error": "invalid_request", "message": "sign in first"},
            )
            assert await refused(client.http, valid, client.csrf) == (
                403,
                {"error": "invalid_request", "message": "only professionals book appointments"},
            )
            async with nurse.http.post(
                url, data="nope", headers={"X-CSRF-Token": nurse.csrf}
            ) as response:
                assert response.status == 400
                assert await response.json() == {
                    "error": "invalid_json",
                    "message": "the body is not JSON",
                }

            aino = {"role": "client", "name": "Aino Asiakas"}
            bad: list[tuple[dict[str, Any], str, str]] = [
                (
                    {"type": "house_call"},
                    "invalid_request",
                    "type must be one of video_visit, group_visit, network_meeting, "
                    "consultation, home_care_call",
                ),
                ({"unit": "Mars"}, "invalid_request", "unit must be one of the service's units"),
                (
                    {"startsAt": "tomorrow"},
                    "invalid_request",
                    "startsAt must be a date and time (YYYY-MM-DDTHH:MM)",
                ),
                ({"minutes": "30"}, "invalid_request", "minutes must be a whole number"),
                (
                    {"minutes": 20},
                    "invalid_appointment",
                    "a visit lasts 15 to 180 minutes in steps of 15, not 20",
                ),
                (
                    {"participants": [aino, {"role": "client", "name": "Bertta"}]},
                    "invalid_appointment",
                    "a video_visit has 1 client(s), not 2",
                ),
                (
                    {"participants": [{**aino, "identityCode": "010101-1234"}]},
                    "invalid_request",
                    "participants[0].identityCode is not a valid identity code",
                ),
                (
                    {"participants": [aino, {"role": "relative", "name": "Raili", "actsFor": 0}]},
                    "invalid_request",
                    "participants[1] acts for Aino Asiakas: give Aino Asiakas's identity code",
                ),
                (
                    {"participants": [aino, {"role": "relative", "name": "Raili", "actsFor": 1}]},
                    "invalid_request",
                    "participants[1].actsFor must be the index of another participant",
                ),
                (
                    {"participants": [{"role": "boss", "name": "X"}]},
                    "invalid_request",
                    "participants[0].role must be professional, client or relative",
                ),
                (
                    {"participants": [{"role": "client", "name": " "}]},
                    "invalid_request",
                    "participants[0].name must be a name of 1 to 100 characters",
                ),
                (
                    {"title": ""},
                    "invalid_appointment",
                    "title must be a non-empty text of at most 200 characters",
                ),
            ]
            for changes, code, message in bad:
                body = appointment_body(service, **changes)
                answer = await refused(nurse.http, body, nurse.csrf)
                assert answer == (400, {"error": code, "message": message}), changes

            made = await book(
                service,
                nurse,
                participants=[
                    {**aino, "identityCode": identity_code("client").lower()},
                    {"role": "relative", "name": "Paula Vanhempi"},
                ],
            )
            assert made["status"] == "scheduled" and made["host"] is True
            assert made["room"].startswith("visit-") and made["minutes"] == 30
            assert made["participants"] == [
                {"id": "p1", "role": "client", "name": "Aino Asiakas", "actsFor": False},
                {"id": "p2", "role": "relative", "name": "Paula Vanhempi", "actsFor": False},
            ]
            assert [(link["participantId"], link["name"]) for link in made["links"]] == [
                ("p1", "Aino Asiakas"),
                ("p2", "Paula Vanhempi"),
            ]
            stored = await service.db(service.book.get, made["id"])
            assert stored is not None
            assert stored.participants[0].subject == subject_of(service, "client")
            assert stored.participants[1].subject is None

            # the console lists it, with the links
            async with nurse.http.get(f"{service.url}/visit/pro") as response:
                listed = boot(await response.text())["visits"]
            assert [v["id"] for v in listed] == [made["id"]]
            assert listed[0]["links"] == made["links"]

            # the links work: sign-in first, then the visit
            for link in made["links"]:
                assert link["url"].startswith(f"{service.url}/visit/i/")
                async with anonymous.get(link["url"], allow_redirects=False) as response:
                    assert to_sign_in(response) == link["url"][len(service.url) :]
            visitor = await stack.enter_async_context(browser())
            status, landed, _ = await sign_in(visitor, service, "client", link_path(made, "p1"))
            assert (status, landed) == (200, f"{service.url}/visit/room/{made['id']}?p=p1")

    run(asyncio.wait_for(scenario(), TIMEOUT))


# ---- 3. invitations and seats ----


def test_invitations_bind_and_seat_people(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        async with visit_service(tmp_path) as service, contextlib.AsyncExitStack() as stack:
            base = service.url
            nurse = await signed_in(stack, service, "nurse")
            open_visit = await book(service, nurse)  # the client is invited by link only
            link = link_path(open_visit)
            room_path = f"/visit/room/{open_visit['id']}?p=p1"

            client = await signed_in(stack, service, "client")
            async with client.http.get(f"{base}{link}", allow_redirects=False) as response:
                assert response.status == 302
                assert response.headers["Location"] == room_path
            bound = await service.db(service.book.get, open_visit["id"])
            assert bound is not None
            assert bound.participants[0].subject == subject_of(service, "client")
            async with client.http.get(f"{base}{link}") as response:  # again: the same seat
                assert (response.status, str(response.url)) == (200, f"{base}{room_path}")
                seat = boot(await response.text())["seat"]
            assert seat == {
                "participant": "p1",
                "role": "client",
                "name": "Aino Asiakas",
                "professional": False,
                "host": False,
                "actingFor": None,
                "actingForName": "",
            }

            parent = await stack.enter_async_context(browser())
            status, _, page = await sign_in(parent, service, "parent", link)
            assert status == 403
            assert error_text(page) == (
                "The invitation is not valid: this invitation belongs to someone else"
            )
            async with parent.get(f"{base}{room_path}") as response:
                assert response.status == 403
                assert error_text(await response.text()) == FORBIDDEN_PAGE
            async with parent.get(f"{base}/visit/room/{open_visit['id']}") as response:
                assert response.status == 403  # no seat of hers at all

            # altered links: the signature, the participant, the appointment
            token = link.rsplit("/", 1)[1]
            appointment_id, participant, expires, signature = token.split(".")
            altered = [
                f"{appointment_id}.{participant}.{expires}.{signature[:-1]}"
                + ("A" if signature[-1] != "A" else "B"),
                f"{appointment_id}.p2.{expires}.{signature}",
                f"{appointment_id}.{participant}.{int(expires) + 3600}.{signature}",
                "garbage",
            ]
            for bad in altered:
                for who in (parent, client.http):
                    async with who.get(f"{base}/visit/i/{bad}", allow_redirects=False) as r:
                        assert r.status == 400
                        assert error_text(await r.text()) == (
                            "The invitation is not valid: the invitation link is not valid"
                        )

            # the elder's invitation: his relative (a mandate) is seated acting for him
            for_elder = await book(
                service,
                nurse,
                type="home_care_call",
                title="Kotihoidon soitto",
                minutes=15,
                participants=[eino()],
            )
            elder_link = link_path(for_elder)
            relative = await stack.enter_async_context(browser())
            status, landed, page = await sign_in(relative, service, "relative", elder_link)
            assert (status, landed) == (200, f"{base}/visit/room/{for_elder['id']}?p=p1")
            seat = boot(page)["seat"]
            assert seat["participant"] == "p1" and seat["name"] == "Raili Sukulainen"
            assert seat["actingFor"] == subject_of(service, "elder")
            assert seat["actingForName"] == "Eino Vanhus"
            assert boot(page)["appointment"]["type"] == "home_care_call"
            stored = await service.db(service.book.get, for_elder["id"])
            assert stored is not None  # a named invitation is never rebound
            assert stored.participants[0].subject == subject_of(service, "elder")

            elder = await stack.enter_async_context(browser())
            status, _, page = await sign_in(elder, service, "elder", elder_link)
            assert status == 200
            seat = boot(page)["seat"]
            assert (seat["name"], seat["actingFor"], seat["actingForName"]) == (
                "Eino Vanhus",
                None,
                "",
            )
            status, _, page = await sign_in(parent, service, "parent", elder_link)
            assert status == 403  # guardian of two children, nothing for Eino

            # the organizer's own seat, and a professional who is not in the visit
            async with nurse.http.get(f"{base}/visit/room/{for_elder['id']}") as response:
                seat = boot(await response.text())["seat"]
            assert seat["participant"] == "host" and seat["host"] and seat["professional"]
            doctor = await signed_in(stack, service, "doctor")
            async with doctor.http.get(f"{base}/visit/room/{for_elder['id']}?p=host") as r:
                assert r.status == 403

    run(asyncio.wait_for(scenario(), TIMEOUT))


# ---- 4. the waiting room and join tickets ----


def test_waiting_room_decides_who_gets_a_ticket(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        async with visit_service(tmp_path) as service, contextlib.AsyncExitStack() as stack:
            nurse = await signed_in(stack, service, "nurse")
            made = await book(service, nurse)
            visit = made["id"]
            client = await signed_in(stack, service, "client", link_path(made))

            assert await ticket(service, client, visit, "p1") == (
                403,
                {"error": "invalid_request", "message": "wait until the professional lets you in"},
            )
            status, answer = await post_json(
                client.http, api(service, f"visits/{visit}/ticket"), {"participant": "p1"}, None
            )
            assert (status, answer["message"]) == (403, CSRF_MESSAGE)
            assert await ticket(service, client, visit, "host") == (
                403,
                {"error": "invalid_request", "message": "you are not a participant of this visit"},
            )
            assert (await ticket(service, client, "nosuch", "p1"))[1] == {
                "error": "invalid_request",
                "message": "no such visit",
            }

            wait_url = api(service, f"visits/{visit}/wait?p=p1")
            lobby_url = api(service, f"visits/{visit}/lobby?p=host")
            async with stream(client.http, wait_url) as waiting:
                assert waiting.status == 200
                assert waiting.headers["Content-Type"] == "text/event-stream"
                assert await event(waiting) == {"state": "waiting", "message": ""}
                async with stream(nurse.http, lobby_url) as lobby:
                    assert lobby.status == 200
                    (entry,) = (await event(lobby))["entries"]
                    assert {k: entry[k] for k in ("participantId", "name", "role", "state")} == {
                        "participantId": "p1",
                        "name": "Aino Asiakas",
                        "role": "client",
                        "state": "waiting",
                    }
                    assert entry["actingFor"] == ""

                    async with client.http.get(api(service, f"visits/{visit}/lobby?p=p1")) as r:
                        assert r.status == 403
                        assert (await r.json())["message"] == (
                            "only the visit's professionals see the waiting room"
                        )
                    status, answer = await post_json(
                        client.http,
                        api(service, f"visits/{visit}/lobby/p1"),
                        {"as": "p1", "action": "admit"},
                        client.csrf,
                    )
                    assert (status, answer) == (
                        403,
                        {
                            "error": "invalid_request",
                            "message": "only the visit's professionals decide who comes in",
                        },
                    )
                    assert await decide(
                        service, nurse, visit, "p1", action="hold", message=" "
                    ) == (
                        400,
                        {
                            "error": "invalid_action",
                            "message": "holding someone needs a message for them",
                        },
                    )
                    assert await decide(service, nurse, visit, "p1", action="kick") == (
                        400,
                        {"error": "invalid_action", "message": "action must be one of admit, "
                                                               "deny, hold"},
                    )  # fmt: skip
                    assert await decide(service, nurse, visit, "p9", action="admit") == (
                        400,
                        {
                            "error": "invalid_action",
                            "message": "that participant is not in the waiting room",
                        },
                    )
                    status, answer = await post_json(
                        nurse.http,
                        api(service, f"visits/{visit}/lobby/p1"),
                        {"as": "host", "action": "admit"},
                        None,
                    )
                    assert (status, answer["message"]) == (403, CSRF_MESSAGE)

                    hold = "Edellinen vastaanotto jatkuu, tulen pian."
                    status, answer = await decide(
                        service, nurse, visit, "p1", action="hold", message=hold
                    )
                    assert status == 200 and answer["entry"]["state"] == "held"
                    assert await event(waiting) == {"state": "held", "message": hold}
                    assert (await event(lobby))["entries"][0]["state"] == "held"
                    assert (await ticket(service, client, visit, "p1"))[0] == 403

                    status, answer = await decide(service, nurse, visit, "p1", action="admit")
                    assert status == 200 and answer["entry"]["state"] == "admitted"
                    assert await event(waiting) == {"state": "admitted", "message": ""}
                    assert (await event(lobby))["entries"][0]["state"] == "admitted"

            status, grant = await ticket(service, client, visit, "p1")
            assert status == 200, grant
            assert grant["room"] == made["room"]
            assert grant["joinParams"] == {"visitParticipant": "p1"}
            assert grant["ticket"].startswith("msat.")
            status, grant = await ticket(service, nurse, visit, "host")
            assert (status, grant["joinParams"]) == (200, {"visitParticipant": "host"})
            records = await audit_of(service, room=made["room"])
            decisions = [(r["decision"], r["subject"]) for r in records]
            nurse_subject = subject_of(service, "nurse")
            assert ("lobby_held", nurse_subject) in decisions
            assert ("lobby_admitted", nurse_subject) in decisions

            # a relative acting for the elder: the ticket carries the principal
            for_elder = await book(
                service,
                nurse,
                type="home_care_call",
                minutes=15,
                participants=[eino()],
            )
            relative = await signed_in(stack, service, "relative", link_path(for_elder))
            lobby_url = api(service, f"visits/{for_elder['id']}/lobby?p=host")
            async with stream(nurse.http, lobby_url) as lobby:
                assert (await event(lobby))["entries"] == []
                async with stream(
                    relative.http, api(service, f"visits/{for_elder['id']}/wait?p=p1")
                ) as waiting:
                    assert (await event(waiting))["state"] == "waiting"
                    (entry,) = (await event(lobby))["entries"]
                    assert (entry["name"], entry["actingFor"]) == (
                        "Raili Sukulainen",
                        "Eino Vanhus",
                    )
                    await decide(service, nurse, for_elder["id"], "p1", action="admit")
                    assert (await event(waiting))["state"] == "admitted"
            status, grant = await ticket(service, relative, for_elder["id"], "p1")
            assert status == 200, grant
            assert grant["joinParams"] == {
                "visitParticipant": "p1",
                "onBehalfOf": {"principal": subject_of(service, "elder")},
            }

            # a denied client is told so, with the message
            denied_visit = await book(service, nurse)
            teen = await signed_in(stack, service, "teen", link_path(denied_visit))
            async with stream(
                teen.http, api(service, f"visits/{denied_visit['id']}/wait?p=p1")
            ) as waiting:
                assert (await event(waiting))["state"] == "waiting"
                await decide(
                    service, nurse, denied_visit["id"], "p1", action="deny", message="Väärä aika."
                )
                assert await event(waiting) == {"state": "denied", "message": "Väärä aika."}
            assert (await ticket(service, teen, denied_visit["id"], "p1"))[0] == 403

    run(asyncio.wait_for(scenario(), TIMEOUT))


# ---- 5.-8. a visit over signaling: joining, consent to recording, the end, the survey, the log


def test_joining_with_tickets_and_ending_the_visit(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        async with visit_service(tmp_path) as service, contextlib.AsyncExitStack() as stack:
            nurse = await signed_in(stack, service, "nurse")
            made = await book(
                service,
                nurse,
                type="group_visit",
                title="Ryhmävastaanotto",
                participants=[
                    {"role": "client", "name": "Aino Asiakas"},
                    eino(),
                ],
            )
            visit, room = made["id"], made["room"]
            client = await signed_in(stack, service, "client", link_path(made, "p1"))
            relative = await signed_in(stack, service, "relative", link_path(made, "p2"))

            status, host_grant = await ticket(service, nurse, visit, "host")
            assert status == 200
            host = await join(stack, service, host_grant, nurse.name)
            assert host.room == room and host.peers == []
            assert host.info["displayName"] == "Hanna Hoitaja"
            assert host.info["attributes"]["visit"] == {"role": "professional", "host": True}
            host_events = Events(host, "peerJoined", "visit.ended")
            appointment = await service.db(service.book.get, visit)
            assert appointment is not None and appointment.status.value == "in_progress"

            # someone else's seat, no seat named, another room, a used ticket
            grant = await admitted_ticket(service, nurse, client, visit, "p1")
            refused = await refused_join(
                service, grant["ticket"], room, {"visitParticipant": "host"}
            )
            assert (refused.code, str(refused)) == (
                "not_invited",
                "not_invited: you are not a participant of this visit",
            )
            status, grant = await ticket(service, client, visit, "p1")
            refused = await refused_join(service, grant["ticket"], room, {"visitParticipant": "p2"})
            assert refused.code == "not_invited"
            status, grant = await ticket(service, client, visit, "p1")
            refused = await refused_join(service, grant["ticket"], room, {})
            assert (refused.code, str(refused)) == (
                "invalid_params",
                "invalid_params: visitParticipant must name your seat in the visit",
            )
            refused = await refused_join(service, grant["ticket"], room, {"visitParticipant": "p1"})
            assert refused.code == "ticket_invalid"  # a ticket is used up by any attempt
            assert service.idp is not None
            person = next(p for p in TEST_PEOPLE if p.key == "client")
            identity = await service.strongauth.verify_person(
                service.idp.id_token(person), "127.0.0.1", "test"
            )
            for other, message in (
                ("other-room", "this server serves video visits only"),
                ("visit-nosuchvisit", "there is no such visit"),
            ):
                refused = await refused_join(
                    service,
                    service.strongauth.issue_ticket(identity, other),
                    other,
                    {"visitParticipant": "p1"},
                )
                assert (refused.code, str(refused)) == (
                    "unknown_visit",
                    f"unknown_visit: {message}",
                )
            status, grant = await ticket(service, client, visit, "p1")
            refused = await refused_join(
                service, grant["ticket"], "other-room", {"visitParticipant": "p1"}
            )
            assert refused.code == "ticket_room"

            # the admitted client joins
            status, grant = await ticket(service, client, visit, "p1")
            aino = await join(stack, service, grant, client.name)
            assert [p["displayName"] for p in aino.peers] == ["Hanna Hoitaja"]
            assert aino.info["attributes"]["visit"] == {"role": "client", "host": False}
            joined = await host_events.first("peerJoined")
            assert joined["peer"]["displayName"] == "Aino Asiakas"
            aino_events = Events(aino, "peerJoined", "visit.ended")

            # the relative joins acting for the elder
            grant = await admitted_ticket(service, nurse, relative, visit, "p2")
            raili = await join(stack, service, grant, relative.name)
            shown = "Raili Sukulainen for Eino Vanhus"
            assert raili.info["displayName"] == shown
            assert raili.info["attributes"]["onBehalfOf"]["principal"] == "Eino Vanhus"
            for events in (host_events, aino_events):
                joined = await events.first(
                    "peerJoined", lambda p: p["peer"]["displayName"] == shown
                )
                assert joined["peer"]["id"] == raili.peer_id
            assert sorted(p["displayName"] for p in raili.peers) == [
                "Aino Asiakas",
                "Hanna Hoitaja",
            ]

            # the survey opens at the end, and only to the clients
            survey_path = "/visit/survey/" + await service.db(
                service.book.sign_parts, "survey", visit
            )
            async with client.http.get(service.url + survey_path) as response:
                assert response.status == 409
                assert error_text(await response.text()) == (
                    "The survey opens when the visit has ended."
                )

            # only a professional ends it; a ticket issued before the end does not join after
            status, late = await ticket(service, client, visit, "p1")
            assert status == 200
            end_url = api(service, f"visits/{visit}/end")
            status, answer = await post_json(client.http, end_url, {"as": "p1"}, client.csrf)
            assert (status, answer["message"]) == (403, "only a professional ends the visit")
            status, answer = await post_json(nurse.http, end_url, {"as": "host"}, None)
            assert (status, answer["message"]) == (403, CSRF_MESSAGE)
            status, answer = await post_json(nurse.http, end_url, {"as": "host"}, nurse.csrf)
            assert status == 200 and answer["status"] == "ended"
            ended = await aino_events.first("visit.ended")
            assert ended["by"] == "Hanna Hoitaja"
            survey = await service.db(service.book.sign_parts, "survey", visit)
            assert ended["survey"] == f"/visit/survey/{survey}"
            assert (await host_events.first("visit.ended")) == ended
            assert await ticket(service, client, visit, "p1") == (
                409,
                {"error": "invalid_request", "message": "the visit has ended"},
            )
            async with client.http.get(api(service, f"visits/{visit}/wait?p=p1")) as r:
                assert r.status == 409
            refused = await refused_join(service, late["ticket"], room, {"visitParticipant": "p1"})
            assert (refused.code, str(refused)) == (
                "visit_closed",
                "visit_closed: the visit has ended",
            )

            async with nurse.http.get(service.url + ended["survey"]) as response:
                assert response.status == 403  # the professional does not rate their own visit
            await survey_answered(service, stack, client, ended["survey"], visit)
            await access_logs(service, stack, client, made)

    run(asyncio.wait_for(scenario(), TIMEOUT))


async def survey_answered(
    service: VisitService,
    stack: contextlib.AsyncExitStack,
    client: Person,
    survey: str,
    visit: str,
) -> None:
    """7. The survey: a tampered link, sign-in first, a bad score, no CSRF token, an answer."""
    base = service.url
    tampered = survey[:-2] + ("xx" if not survey.endswith("xx") else "yy")
    async with client.http.get(f"{base}{tampered}") as response:
        assert response.status == 404
        assert error_text(await response.text()) == "The survey link is not valid."
    async with client.http.get(f"{base}/visit/survey/{visit}") as response:
        assert response.status == 404
    anonymous = await stack.enter_async_context(browser())
    async with anonymous.get(f"{base}{survey}", allow_redirects=False) as response:
        assert response.status == 302
        assert to_sign_in(response) == survey
    parent = await signed_in(stack, service, "parent")
    async with parent.http.get(f"{base}{survey}") as response:
        assert response.status == 403

    async with client.http.get(f"{base}{survey}") as response:
        assert response.status == 200
        page = await response.text()
    assert "<h1>Feedback survey</h1>" in page and 'name="score" value="10"' in page
    token = csrf_of(page)
    answers = [
        ({"csrf": token, "score": "11"}, "score must be a whole number from 0 to 10, not 11"),
        ({"csrf": token, "score": "x"}, "score must be a whole number from 0 to 10, not -1"),
        ({"score": "9"}, CSRF_MESSAGE),
        ({"csrf": "wrong", "score": "9"}, CSRF_MESSAGE),
    ]
    for form, message in answers:
        async with client.http.post(f"{base}{survey}", data=form) as response:
            assert response.status == 400, form
            found = re.search(r'<p role="alert" class="error">(.*?)</p>', await response.text())
            assert found is not None and html.unescape(found.group(1)) == message
    assert await service.db(service.feedback.answer, visit, "p1") is None

    form = {"csrf": token, "score": "9", "comment": "Sujui hyvin."}
    async with client.http.post(f"{base}{survey}", data=form) as response:
        assert response.status == 200
        page = await response.text()
    assert "Thank you for your answer!" in page and "Sujui hyvin." in page
    appointment = await service.db(service.book.get, visit)
    assert appointment is not None and appointment.started_at is not None
    month = appointment.started_at.strftime("%Y-%m")
    nps = await service.db(service.feedback.nps, appointment.started_at.year)
    assert nps == [
        {"month": month, "answers": 1, "promoters": 1, "passives": 0, "detractors": 0, "nps": 100}
    ]


async def access_logs(
    service: VisitService, stack: contextlib.AsyncExitStack, client: Person, made: dict[str, Any]
) -> None:
    """8. The client's access log shows the professional who joined; the elder's, his relative
    who acted for him."""
    base = service.url
    await service.strongauth.flush()  # the joins' records
    async with client.http.get(f"{base}/visit/log") as response:
        assert response.status == 200
        rows = table_rows(await response.text())
    joined = [r for r in rows if r[1] == "Hanna Hoitaja" and r[2].startswith("joined the visit")]
    assert joined, rows
    assert joined[0][2] == f"joined the visit {DASH} {made['title']}"
    assert joined[0][3] == "care relationship: the visit's professional"
    assert joined[0][4] == "substantial (loa2)"
    own = [r for r in rows if r[1] == "Aino Asiakas" and r[2] == "signed in to the service"]
    assert own and own[0][3] == "your own visit"

    elder = await stack.enter_async_context(browser())
    status, _, page = await sign_in(elder, service, "elder", "/visit/log")
    assert status == 200
    rows = table_rows(page)
    acted = [r for r in rows if r[1] == "Raili Sukulainen" and r[2].startswith("acted on")]
    assert acted, rows
    assert acted[0][2] == f"acted on your behalf {DASH} {made['title']}"
    assert acted[0][3] == "acting for you: MANDATE"
    assert any(r[1] == "Raili Sukulainen" and r[2].startswith("joined the visit") for r in rows), (
        rows
    )
    async with elder.get(f"{base}/visit/log", headers={"Accept-Language": "fi"}) as response:
        rows = table_rows(await response.text())
    assert any(r[1] == "Raili Sukulainen" and r[2].startswith("asioi puolestasi") for r in rows)


# ---- 6. recording consent ----


def test_recording_waits_for_the_clients_consent(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        async with visit_service(tmp_path) as service, contextlib.AsyncExitStack() as stack:
            nurse = await signed_in(stack, service, "nurse")
            made = await book(service, nurse)
            visit, room_id = made["id"], made["room"]
            client = await signed_in(stack, service, "client", link_path(made))
            _, grant = await ticket(service, nurse, visit, "host")
            host = await join(stack, service, grant, nurse.name)
            aino = await join(
                stack, service, await admitted_ticket(service, nurse, client, visit), client.name
            )
            host_events = Events(host, "visit.consent", "recordingState")
            aino_events = Events(aino, "visit.consentRequest", "recordingState")
            assert service.server is not None
            room = service.server.rooms.get(room_id)
            assert room is not None

            with pytest.raises(SignalingError) as caught:
                await aino.request("visit.requestRecording", {})
            assert str(caught.value) == "forbidden: only a professional can record the visit"
            with pytest.raises(SignalingError) as caught:
                await host.request("visit.consent", {"granted": True})
            assert str(caught.value) == "forbidden: professionals are not asked for consent"
            with pytest.raises(SignalingError) as caught:
                await aino.request("visit.consent", {"granted": "yes"})
            assert str(caught.value) == "invalid_params: granted must be true or false"
            with pytest.raises(SignalingError) as caught:
                await host.request("visit.nothing", {})
            assert str(caught.value) == "unknown_method: visit.nothing is not a method"
            (tone,) = await aino.publish([ToneTrack()])
            with pytest.raises(SignalingError) as caught:
                await host.start_recording()  # the media server's own request: no way around
            assert str(caught.value) in (
                "consent_missing: waiting for consent to recording from: Aino Asiakas",
                "not_permitted: recordings are not started over signaling here",
            )

            # asked, the client refuses: recorded in the audit trail, nothing is recorded
            answer = await host.request("visit.requestRecording", {})
            assert answer == {"recording": False, "waitingFor": ["Aino Asiakas"]}
            asked = await aino_events.first("visit.consentRequest")
            assert asked == {"requestedBy": "Hanna Hoitaja"}
            assert await aino.request("visit.consent", {"granted": False}) == {"recording": False}
            refusal = await host_events.first("visit.consent")
            assert refusal == {"peerId": aino.peer_id, "name": "Aino Asiakas", "granted": False}
            assert not room.recording_active and host.recording is None

            # asked again, the client consents: the room records
            answer = await host.request("visit.requestRecording", {})
            assert answer == {"recording": False, "waitingFor": ["Aino Asiakas"]}
            assert len(aino_events.got["visit.consentRequest"]) == 2
            assert not room.recording_active
            answer = await aino.request("visit.consent", {"granted": True})
            assert answer == {"recording": True, "waitingFor": []}
            assert room.recording_active
            consent = await host_events.first("visit.consent", lambda p: p["granted"])
            assert consent == {"peerId": aino.peer_id, "name": "Aino Asiakas", "granted": True}
            for events in (host_events, aino_events):
                state = await events.first("recordingState", lambda p: bool(p.get("recording")))
                assert state["recording"] is True
            assert host.recording is not None and aino.recording is not None
            assert room.recording is not None and tone["id"] in room.recording.journals

            with pytest.raises(SignalingError) as caught:
                await aino.request("visit.stopRecording", {})
            assert str(caught.value) == "forbidden: only a professional can stop the recording"
            assert await host.request("visit.stopRecording", {}) == {"stopped": True}
            assert not room.recording_active

            records = await audit_of(service, room=room_id)
            answers = [
                (r["decision"], r["subject"], r["peer"], detail(r))
                for r in records
                if r["decision"] in ("recording_consent", "recording_refused")
            ]
            aino_subject = subject_of(service, "client")
            assert answers == [
                ("recording_refused", aino_subject, aino.peer_id,
                 {"granted": False, "appointment": visit}),
                ("recording_consent", aino_subject, aino.peer_id,
                 {"granted": True, "appointment": visit}),
            ]  # fmt: skip

    run(asyncio.wait_for(scenario(), TIMEOUT))


def test_a_visit_is_refused_once_it_was_cancelled(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        async with visit_service(tmp_path) as service, contextlib.AsyncExitStack() as stack:
            nurse = await signed_in(stack, service, "nurse")
            tomorrow = service.now().astimezone(ZONE) + timedelta(days=1)
            made = await book(service, nurse, startsAt=tomorrow.strftime("%Y-%m-%dT%H:%M"))
            client = await signed_in(stack, service, "client", link_path(made))
            cancel = api(service, f"appointments/{made['id']}/cancel")
            status, answer = await post_json(client.http, cancel, {}, client.csrf)
            assert (status, answer["message"]) == (404, "no such appointment of yours")
            status, answer = await post_json(nurse.http, cancel, {}, nurse.csrf)
            assert (status, answer["status"]) == (200, "cancelled")
            status, answer = await post_json(nurse.http, cancel, {}, nurse.csrf)
            assert (status, answer["message"]) == (
                409,
                "a cancelled appointment cannot become cancelled",
            )
            async with client.http.get(f"{service.url}{link_path(made)}") as response:
                assert response.status == 400
                assert error_text(await response.text()) == (
                    "The invitation is not valid: the visit has been cancelled"
                )
            assert await ticket(service, client, made["id"], "p1") == (
                409,
                {"error": "invalid_request", "message": "the visit was cancelled"},
            )

    run(asyncio.wait_for(scenario(), TIMEOUT))


# ---- who may record, and professional seats


def test_a_client_cannot_record_over_the_core_signaling(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        async with visit_service(tmp_path) as service, contextlib.AsyncExitStack() as stack:
            nurse = await signed_in(stack, service, "nurse")
            made = await book(service, nurse)
            client = await signed_in(stack, service, "client", link_path(made))
            _, grant = await ticket(service, nurse, made["id"], "host")
            host = await join(stack, service, grant, nurse.name)
            await host.publish([ToneTrack()])
            aino = await join(
                stack, service, await admitted_ticket(service, nurse, client, made["id"]), "Aino"
            )
            with pytest.raises(SignalingError):
                await aino.start_recording()  # the professional's media, at a client's request
            await host.request("visit.requestRecording", {})
            await aino.request("visit.consent", {"granted": True})
            with pytest.raises(SignalingError):
                await aino.stop_recording()

    run(asyncio.wait_for(scenario(), TIMEOUT))


def test_a_professional_seat_is_not_taken_by_a_client(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        async with visit_service(tmp_path) as service, contextlib.AsyncExitStack() as stack:
            nurse = await signed_in(stack, service, "nurse")
            made = await book(
                service,
                nurse,
                participants=[
                    {"role": "client", "name": "Aino Asiakas"},
                    {"role": "professional", "name": "Lauri Lääkäri"},  # invited by link only
                ],
            )
            http = await stack.enter_async_context(browser())
            status, _url, page = await sign_in(http, service, "teen", link_path(made, "p2"))
            assert status == 403
            assert "this invitation is for a professional" in page
            stored = await service.db(service.book.get, made["id"])
            assert stored is not None and stored.participants[1].subject is None  # still free

    run(asyncio.wait_for(scenario(), TIMEOUT))
