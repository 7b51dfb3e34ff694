"""Acting on behalf of someone, end to end: a real MediaServer with strongauth, chat and proxy,
ID tokens signed by the local issuer, joins over real WebSockets, the grant admin API over
HTTP, the mandate service test double over HTTP, the audit trail in SQLite, and aiortc clients
where media or chat is involved."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from mediasrv_proxy.basis import Basis
from mediasrv_proxy.grant import Grant
from proxy_support import (
    CHILD,
    ELDER,
    GUARDIAN,
    MINOR,
    NURSE,
    PARENT,
    RELATIVE,
    SECOND_PARENT,
    TEEN,
    Message,
    Person,
    Setup,
    proxy_server,
    run,
)

from mediasrv.client import ChatError, Client, SignalingError

ISSUE = "health-care-visit"


async def wait_until(condition: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def acting_for(response: Message) -> Message:
    assert response["ok"] is True, response
    info: Message = response["result"]["self"]
    return info


def codes_absent(text: str, *people: Person) -> None:
    for person in people:
        assert person.code not in text, f"{person.name}'s identity code leaked: {text[:300]}"


# ---- the acceptance cases ----


def test_a_parent_joins_for_a_10_year_old_and_is_shown_as_acting_for_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        async with proxy_server(tmp_path) as s:
            await s.grant(CHILD, PARENT, "GUARDIAN_OF_MINOR")
            nurse, nurse_socket = await s.join(NURSE)
            assert nurse["ok"], nurse
            response, _ = await s.join(PARENT, on_behalf={"principal": CHILD.code})
            me = acting_for(response)
            assert me["displayName"] == "Paula Vanhempi for Ville Lapsi"
            assert me["attributes"]["onBehalfOf"] == {
                "delegate": "Paula Vanhempi",
                "principal": "Ville Lapsi",
                "basis": "GUARDIAN_OF_MINOR",
            }
            joined = await nurse_socket.notification("peerJoined")
            assert joined["params"]["peer"]["displayName"] == "Paula Vanhempi for Ville Lapsi"
            assert joined["params"]["peer"]["attributes"]["onBehalfOf"]["principal"] == (
                "Ville Lapsi"
            )
            codes_absent(response["raw"] + joined["raw"], PARENT, CHILD)
            # the decision and the join are in the audit trail, with principal and basis
            records = await s.records("")
            decision = next(r for r in records if r["decision"] == "proxy_allowed")
            assert decision["subject"] == s.subject(PARENT)
            assert decision["principal"] == s.subject(CHILD)
            assert decision["basis"] == "GUARDIAN_OF_MINOR"
            assert '"result":"ALLOWED"' in decision["detail"]
            assert decision["ref"] is not None  # the identification it rests on
            parent_join = [
                r for r in records if r["decision"] == "joined" and r["principal"] is not None
            ]
            assert len(parent_join) == 1 and parent_join[0]["principal"] == s.subject(CHILD)
            assert parent_join[0]["basis"] == "GUARDIAN_OF_MINOR"
            assert await asyncio.to_thread(s.strongauth.audit.verify_chain) is None  # type: ignore[union-attr]
        codes_absent(caplog.text, PARENT, CHILD)

    run(main())


def test_a_15_year_old_who_decides_for_themselves_keeps_the_guardian_out(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with proxy_server(tmp_path) as s:
            await s.grant(TEEN, PARENT, "GUARDIAN_OF_MINOR")
            behalf = {"principal": TEEN.code}
            # nobody has assessed it yet: the guardian waits
            error = await s.refused(PARENT, behalf)
            assert error["code"] == "proxy_disallowed"
            assert "must first assess" in error["message"], error
            # the nurse, in the visit, records that the minor decides for themselves
            nurse, nurse_socket = await s.join(NURSE)
            assert nurse["ok"]
            answer = await nurse_socket.request(
                "proxy.assess", {"principal": TEEN.code, "decidesSelf": True}
            )
            assert answer["ok"] is True, answer
            assert answer["result"]["principal"] == s.subject(TEEN)
            error = await s.refused(PARENT, behalf)
            assert error["code"] == "proxy_disallowed"
            assert "decides on their own matters" in error["message"], error
            codes_absent(str(error), TEEN, PARENT)
            # the assessment can go the other way in another visit: the guardian may act
            other, other_socket = await s.join(NURSE, room="visit-2")
            assert other["ok"]
            assessed = await other_socket.request(
                "proxy.assess", {"principal": TEEN.code, "decidesSelf": False}
            )
            assert assessed["ok"], assessed
            joined, parent_socket = await s.join(PARENT, room="visit-2", on_behalf=behalf)
            assert acting_for(joined)["displayName"] == "Paula Vanhempi for Teija Nuori"
            # ... until the professional assesses again, by the acting peer: removed at once
            peer_id = joined["result"]["peerId"]
            again = await other_socket.request(
                "proxy.assess", {"peerId": peer_id, "decidesSelf": True}
            )
            assert again["ok"] and again["result"]["removed"] == 1, again
            ended = await parent_socket.notification("proxyEnded")
            assert "minor_decides_for_themselves" in ended["params"]["reasons"]
            assert peer_id not in s.server.rooms["visit-2"].peers
            # a client may not record assessments
            parent_alone, parent_ws = await s.join(PARENT, room="visit-3")
            assert parent_alone["ok"]
            refused = await parent_ws.request(
                "proxy.assess", {"principal": TEEN.code, "decidesSelf": False}
            )
            assert refused["error"]["code"] == "not_permitted"
            reasons = [(r["decision"], r["reason"], r["room"]) for r in await s.records()]
            assert reasons == [
                ("proxy_grant_added", "", ""),
                ("proxy_refused", "assessment_missing", "visit-1"),
                ("proxy_assessed", "", "visit-1"),
                ("proxy_refused", "minor_decides_for_themselves", "visit-1"),
                ("proxy_assessed", "", "visit-2"),
                ("proxy_allowed", "", "visit-2"),
                ("proxy_assessed", "", "visit-2"),
                ("proxy_refused", "minor_decides_for_themselves", "visit-2"),
            ], reasons

    run(main())


def test_a_relative_with_a_valid_mandate_joins_and_an_expired_one_is_refused(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with proxy_server(tmp_path, default_issue=ISSUE) as s:
            now = datetime.now(UTC)
            await s.grant(
                ELDER,
                RELATIVE,
                "MANDATE",
                issues=[ISSUE],
                validFrom=(now - timedelta(days=30)).isoformat(),
                validUntil=(now + timedelta(days=300)).isoformat(),
            )
            joined, _ = await s.join(RELATIVE, on_behalf={"principal": ELDER.code})
            assert acting_for(joined)["attributes"]["onBehalfOf"]["basis"] == "MANDATE"
            # the mandate does not cover another matter
            error = await s.refused(
                RELATIVE, {"principal": ELDER.code, "issue": "tax-matters"}, room="visit-9"
            )
            assert "does not cover this matter" in error["message"], error
            # a mandate that ended yesterday
            await s.grant(
                ELDER,
                PARENT,
                "MANDATE",
                issues=[ISSUE],
                validUntil=(now - timedelta(days=1)).isoformat(),
            )
            error = await s.refused(PARENT, {"principal": ELDER.code}, room="visit-3")
            assert error["code"] == "proxy_disallowed"
            assert "has expired" in error["message"], error
            records = await s.records()
            expired = records[-1]
            assert (expired["decision"], expired["reason"]) == ("proxy_refused", "grant_expired")
            assert expired["basis"] == "MANDATE" and expired["principal"] == s.subject(ELDER)

    run(main())


def test_a_minor_cannot_be_a_delegate(tmp_path: Path) -> None:
    async def main() -> None:
        async with proxy_server(tmp_path) as s:
            # the admin API refuses to record it ...
            status, answer = await s.admin(
                "POST",
                "grants",
                json={
                    "principal": ELDER.code,
                    "principalName": ELDER.name,
                    "delegate": MINOR.code,
                    "delegateName": MINOR.name,
                    "basis": "MANDATE",
                },
            )
            assert status == 400 and "under 18" in answer["message"], answer
            # ... and a grant that came in some other way (an import) still does not let them in
            assert s.proxy.store is not None
            await s.proxy.db(
                s.proxy.store.add,
                Grant(
                    id="imported-1",
                    principal=s.subject(ELDER),
                    principal_name=ELDER.name,
                    principal_birthdate=ELDER.birthdate,
                    delegate=s.subject(MINOR),
                    delegate_name=MINOR.name,
                    basis=Basis.MANDATE,
                ),
            )
            error = await s.refused(MINOR, {"principal": ELDER.code})
            assert error["code"] == "proxy_disallowed"
            assert "under 18 cannot act on behalf" in error["message"], error
            assert (await s.records())[-1]["reason"] == "delegate_is_minor"

    run(main())


# ---- the mandate service ----


async def select_in_mandate_service(s: Setup, person: Person, select: Person | None) -> str:
    """The browser's part: start, follow the service's redirect, come back: the handle."""
    start = await s.http.post(
        f"{s.url}/plugins/proxy/hpa/start",
        json={"token": s.token(person), "returnTo": "/visit?x=1"},
    )
    body = await start.json()
    assert start.status == 200, body
    url = body["authorizeUrl"]
    if select is not None:
        url += f"&select={select.code}"
    async with s.http.get(url, allow_redirects=False) as authorize:
        assert authorize.status == 302, await authorize.text()
        callback = authorize.headers["Location"]
    async with s.http.get(callback, allow_redirects=False) as back:
        assert back.status == 302, await back.text()
        location = back.headers["Location"]
    assert location.startswith("/visit?x=1#mandateSession="), location
    return location.split("#mandateSession=")[1]


def test_mandates_from_the_mandate_service(tmp_path: Path) -> None:
    async def main() -> None:
        async with proxy_server(tmp_path, hpa=True, default_issue=ISSUE) as s:
            service = s.hpa
            assert service is not None
            for person in (ELDER, RELATIVE, CHILD, PARENT):
                service.add_person(person.code, person.name)
            service.add_mandate(RELATIVE.code, ELDER.code, [ISSUE])
            handle = await select_in_mandate_service(s, RELATIVE, None)
            # whom may I act for: the selection, by reference (no identity code)
            async with s.http.post(
                f"{s.url}/plugins/proxy/principals",
                json={"token": s.token(RELATIVE), "mandateSession": handle},
            ) as reply:
                listed = await reply.json()
            assert reply.status == 200, listed
            assert listed["principals"] == [
                {"principal": s.subject(ELDER), "principalName": ELDER.name, "source": "hpa"}
            ]
            behalf = {"principal": s.subject(ELDER), "mandateSession": handle}
            joined, socket = await s.join(RELATIVE, on_behalf=behalf)
            assert acting_for(joined)["displayName"] == "Raili Sukulainen for Eino Vanhus"
            assert service.calls["authorization"] == 1
            # a reconnect is decided again: the service is asked again
            await socket.close()
            again, _ = await s.join(RELATIVE, on_behalf=behalf)
            assert again["ok"], again
            assert service.calls["authorization"] == 2
            # the service says no for another matter
            error = await s.refused(RELATIVE, {**behalf, "issue": "tax-matters"}, room="visit-2")
            assert "mandate service did not allow it" in error["message"], error
            # the handle is the delegate's own: useless to anyone else
            error = await s.refused(PARENT, behalf, room="visit-3")
            assert "expired or is not this person's" in error["message"], error
            # the service is down: refused at once with the reason
            service.mode = "down"
            error = await s.refused(RELATIVE, behalf, room="visit-4")
            assert error["code"] == "proxy_disallowed"
            assert "could not be reached" in error["message"], error
            record = (await s.records())[-1]
            assert record["reason"].startswith("mandate_service_unavailable")
            codes_absent(str(await s.records()), RELATIVE, ELDER)

    run(main())


def test_a_hanging_mandate_service_refuses_within_the_timeout(tmp_path: Path) -> None:
    async def main() -> None:
        async with proxy_server(tmp_path, hpa=True, default_issue=ISSUE, hpa_timeout=1) as s:
            service = s.hpa
            assert service is not None
            service.add_person(ELDER.code, ELDER.name)
            service.add_mandate(RELATIVE.code, ELDER.code, [ISSUE])
            handle = await select_in_mandate_service(s, RELATIVE, ELDER)
            service.mode = "hang"
            started = time.monotonic()
            error = await s.refused(RELATIVE, {"principal": ELDER.code, "mandateSession": handle})
            took = time.monotonic() - started
            assert error["code"] == "proxy_disallowed"
            assert "did not answer within 1.0 s" in error["message"], error
            assert took < 3.0, took
            # the server is fine: the next join (no proxy) is answered at once
            joined, _ = await s.join(NURSE)
            assert joined["ok"]

    run(main())


# ---- reconnects, revocation, permissions ----


def test_revoking_a_grant_removes_the_peer_and_its_reconnect_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        async with proxy_server(tmp_path) as s:
            grant = await s.grant(CHILD, PARENT, "GUARDIAN_OF_MINOR")
            behalf = {"principal": CHILD.code}
            joined, socket = await s.join(PARENT, on_behalf=behalf)
            assert joined["ok"]
            status, answer = await s.admin("DELETE", f"grants/{grant['id']}")
            assert status == 200 and answer["removed"] == 1, answer
            assert answer["grant"]["revoked"] is True
            ended = await socket.notification("proxyEnded")
            assert ended["params"]["reasons"] == ["grant_revoked"]
            error = await s.refused(PARENT, behalf)
            assert "has been revoked" in error["message"], error

    run(main())


def test_permissions_follow_the_basis(tmp_path: Path) -> None:
    """A public guardian takes part and chats but does not open attachments; a deployment that
    lets mandates carry no video gets a refusal when such a delegate publishes video."""

    async def main() -> None:
        async with proxy_server(
            tmp_path,
            chat=True,
            permissions={"MANDATE": ["join", "speak", "chat", "attachments"]},
        ) as s:
            await s.grant(ELDER, GUARDIAN, "PUBLIC_GUARDIAN")
            await s.grant(ELDER, RELATIVE, "MANDATE")
            ws = f"ws://127.0.0.1:{s.port}/ws"
            nurse = await Client.connect(ws, token=s.token(NURSE), room="visit-1")
            guardian = await Client.connect(
                ws,
                token=s.token(GUARDIAN),
                room="visit-1",
                join_params={"onBehalfOf": {"principal": ELDER.code}},
            )
            relative = await Client.connect(
                ws,
                token=s.token(RELATIVE),
                room="visit-1",
                join_params={"onBehalfOf": {"principal": ELDER.code}},
            )
            try:
                assert guardian.info["displayName"] == "Yrjö Edunvalvoja for Eino Vanhus"
                png = b"\x89PNG\r\n\x1a\n" + os.urandom(2000)
                await nurse.chat.open()
                await guardian.chat.open()
                await relative.chat.open()
                await nurse.chat.upload(png, "notes.png")
                assert await guardian.chat.send("hello from the guardian") > 0
                with pytest.raises(ChatError) as refused:
                    await guardian.chat.download(hashlib.sha256(png).hexdigest())
                assert refused.value.code == "download_denied", refused.value
                assert "may not use attachments" in str(refused.value)
                # ... while the relative (a mandate) opens it
                assert await relative.chat.download(hashlib.sha256(png).hexdigest()) == png
                # the relative (a mandate without video here) may speak but not send video;
                # the refused publish leaves the connection usable
                with pytest.raises(SignalingError) as no_video:
                    await relative.publish([VideoStreamTrack()])
                assert no_video.value.code == "not_permitted", no_video.value
                assert "may not send video" in str(no_video.value)
                produced = await relative.publish([AudioStreamTrack()])
                assert [p["kind"] for p in produced] == ["audio"]
                audio_id = produced[0]["id"]
                await wait_until(
                    lambda: (
                        s.server.rooms["visit-1"].router.producers[audio_id].stats()["packets"] > 20
                    )
                )
            finally:
                for client in (relative, guardian, nurse):
                    with contextlib.suppress(Exception):
                        await client.close()
            status, grants = await s.admin("GET", f"grants?principal={ELDER.code}")
            assert status == 200
            public = next(g for g in grants["grants"] if g["basis"] == "PUBLIC_GUARDIAN")
            assert public["delegate"] is None  # a public guardian's person is never shown
            codes_absent(str(grants), GUARDIAN, ELDER, RELATIVE)

    run(main())


# ---- the admin API and bad input ----


def test_the_admin_api_refuses_missing_or_wrong_tokens_and_bad_grants(tmp_path: Path) -> None:
    async def main() -> None:
        async with proxy_server(tmp_path) as s:
            for token in (None, "wrong-token-0123456789"):
                status, answer = await s.admin("GET", f"grants?principal={CHILD.code}", token)
                assert status == 401 and answer["error"] == "unauthorized", answer
            good = {
                "principal": CHILD.code,
                "principalName": CHILD.name,
                "delegate": PARENT.code,
                "delegateName": PARENT.name,
                "basis": "GUARDIAN_OF_MINOR",
            }
            bad: list[tuple[Message, str]] = [
                ({**good, "basis": "UNCLE"}, "basis must be one of"),
                ({**good, "principal": "131052-308A"}, "principal must be a pseudonymous"),
                ({**good, "delegate": CHILD.code}, "are the same person"),
                ({**good, "validUntil": "tomorrow"}, "is not an ISO 8601 time"),
                ({**good, "issues": "all"}, "issues must be a list"),
                ({**good, "principalName": ""}, "principalName must be a non-empty"),
                ({**good, "basis": "MANDATE"}, "guardiansRequired must be ≥ 1"),
                (
                    {**good, "validFrom": "2030-01-02T00:00:00Z", "validUntil": "2030-01-01"},
                    "validUntil must be after validFrom",
                ),
            ]
            for body, message in bad:
                status, answer = await s.admin("POST", "grants", json=body)
                assert status == 400 and message in answer["message"], (body, answer)
            async with s.http.post(
                f"{s.url}/plugins/proxy/grants",
                data=b"{not json",
                headers={"Authorization": "Bearer proxy-admin-token-0123456789"},
            ) as reply:
                assert reply.status == 400
                assert (await reply.json())["message"] == "the body is not JSON"
            status, answer = await s.admin("DELETE", "grants/nope")
            assert status == 404
            # a mandate for a child, confirmed by one of two guardians, is not enough
            grant = await s.grant(CHILD, RELATIVE, "MANDATE", guardiansRequired=2, issues=[ISSUE])
            status, _ = await s.admin(
                "POST", f"grants/{grant['id']}/confirmations", json={"guardian": PARENT.code}
            )
            assert status == 200
            behalf = {"principal": CHILD.code, "issue": ISSUE}
            error = await s.refused(RELATIVE, behalf)
            assert "not every guardian" in error["message"], error
            status, confirmed = await s.admin(
                "POST",
                f"grants/{grant['id']}/confirmations",
                json={"guardian": SECOND_PARENT.code},
            )
            assert status == 200 and confirmed["confirmations"] == 2
            joined, _ = await s.join(RELATIVE, on_behalf=behalf)
            assert joined["ok"], joined

    run(main())


@pytest.mark.parametrize(
    ("on_behalf", "code", "message"),
    [
        ("child", "invalid_params", "onBehalfOf must be an object"),
        ({"principal": 5}, "invalid_params", "onBehalfOf.principal must be"),
        ({"principal": "x" * 65}, "invalid_params", "onBehalfOf.principal must be"),
        ({"principal": "Ville"}, "invalid_params", "onBehalfOf.principal must be"),
        ({"principal": "0" * 32, "who": 1}, "invalid_params", "onBehalfOf.who is not known"),
        ({"principal": "0" * 32, "issue": 7}, "invalid_params", "onBehalfOf.issue must be"),
        ({"principal": "0" * 32}, "proxy_disallowed", "there is no valid right"),
        ({"principal": "0" * 32, "mandateSession": "x"}, "proxy_disallowed", "expired"),
    ],
)
def test_malformed_or_unfounded_on_behalf_joins_are_refused_precisely(
    tmp_path: Path, on_behalf: Any, code: str, message: str
) -> None:
    async def main() -> None:
        async with proxy_server(tmp_path) as s:
            error = await s.refused(PARENT, on_behalf)
            assert error["code"] == code and message in error["message"], error
            assert s.server.rejected[f"join:{code}"] == 1
            joined, _ = await s.join(NURSE)  # and the server goes on
            assert joined["ok"]

    run(main())


def test_acting_for_someone_needs_strong_identification(tmp_path: Path) -> None:
    async def main() -> None:
        async with proxy_server(tmp_path) as s:
            socket = await s.connect()
            # no strongauth identity: a token the identification refuses never gets this far,
            # so take the identity away from the request the way a plugin misorder would
            s.server.plugins.plugins.remove(s.strongauth)
            try:
                response = await socket.request(
                    "join",
                    {"token": "t", "room": "r", "onBehalfOf": {"principal": CHILD.code}},
                )
            finally:
                s.server.plugins.plugins.insert(0, s.strongauth)
            assert response["error"]["code"] == "identification_required", response

    run(main())


def test_an_unavailable_audit_trail_refuses_the_join(tmp_path: Path) -> None:
    async def main() -> None:
        async with proxy_server(tmp_path) as s:
            await s.grant(CHILD, PARENT, "GUARDIAN_OF_MINOR")
            original = s.strongauth.record

            async def broken(entry: Any) -> int:
                raise OSError("disk full")

            s.strongauth.record = broken  # type: ignore[method-assign]
            try:
                error = await s.refused(PARENT, {"principal": CHILD.code})
            finally:
                s.strongauth.record = original  # type: ignore[method-assign]
            assert error["code"] == "audit_unavailable", error

    run(main())


def test_the_plugin_needs_strongauth(tmp_path: Path) -> None:
    from mediasrv_proxy.plugin import ProxyPlugin

    from mediasrv.config import ServerConfig
    from mediasrv.http.frontend import HttpFrontend
    from mediasrv.media_server import MediaServer
    from mediasrv.plugin import PluginConfigError

    async def main() -> None:
        server = MediaServer(ServerConfig(port=0))
        HttpFrontend(server)
        server.plugins.add(ProxyPlugin, {"admin_token": "x" * 20, "database": ":memory:"})
        with pytest.raises(PluginConfigError, match="needs the strongauth plugin"):
            await server.start()
        await server.close()

    run(main())


def test_the_entry_point_loads_the_plugin() -> None:
    from mediasrv_proxy.plugin import ProxyPlugin

    from mediasrv.plugin_manager import discover

    assert discover()["proxy"].load() is ProxyPlugin


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"permissions": {"UNCLE": ["join"]}}, "plugins.proxy.permissions"),
        ({"permissions": {"MANDATE": ["fly"]}}, "plugins.proxy.permissions"),
        ({"timezone": "Mars/Olympus"}, "plugins.proxy.timezone"),
        ({"display_format": "{nobody}"}, "plugins.proxy.display_format"),
        ({"hpa_url": "https://valtuudet.example"}, "plugins.proxy.hpa_client_id: required"),
        ({"hpa_url": "http://example.com"}, "plugins.proxy.hpa_url"),
        ({"admin_token": "short"}, "plugins.proxy.admin_token"),
    ],
)
def test_bad_configuration_names_the_key(changes: Message, message: str) -> None:
    from mediasrv_proxy.plugin import ProxyPlugin

    from mediasrv.config import ServerConfig
    from mediasrv.http.frontend import HttpFrontend
    from mediasrv.media_server import MediaServer
    from mediasrv.plugin import PluginConfigError

    server = MediaServer(ServerConfig(port=0))
    HttpFrontend(server)
    with pytest.raises(PluginConfigError) as raised:
        server.plugins.add(ProxyPlugin, {"admin_token": "x" * 20, **changes})
    assert message in str(raised.value)
    assert "short" not in str(raised.value) or "admin_token" in message


def test_the_principals_route_lists_local_grants_by_reference(tmp_path: Path) -> None:
    async def main() -> None:
        async with proxy_server(tmp_path) as s:
            await s.grant(CHILD, PARENT, "GUARDIAN_OF_MINOR")
            await s.grant(TEEN, PARENT, "GUARDIAN_OF_MINOR")
            token = s.token(PARENT)
            async with s.http.post(
                f"{s.url}/plugins/proxy/principals", json={"token": token}
            ) as reply:
                listed = await reply.json()
            assert reply.status == 200, listed
            by_name = {p["principalName"]: p for p in listed["principals"]}
            assert by_name["Ville Lapsi"]["principal"] == s.subject(CHILD)
            assert by_name["Ville Lapsi"]["allowedNow"] is True
            codes_absent(str(listed), PARENT, CHILD, TEEN)
            # the same token still joins (listing did not use its nonce up)
            socket = await s.connect()
            joined = await socket.request(
                "join",
                {"token": token, "room": "v", "onBehalfOf": {"principal": s.subject(CHILD)}},
            )
            assert joined["ok"], joined
            async with s.http.post(
                f"{s.url}/plugins/proxy/principals", json={"token": "not-a-token"}
            ) as reply:
                assert reply.status == 401
            verified = [r for r in await s.records("") if r["decision"] == "verified"]
            assert len(verified) == 1 and verified[0]["subject"] == s.subject(PARENT)

    run(main())


def test_http_errors_do_not_reach_the_mandate_service_unbounded(tmp_path: Path) -> None:
    """The start route validates returnTo (no open redirect) and the token first."""

    async def main() -> None:
        async with proxy_server(tmp_path, hpa=True, default_issue=ISSUE) as s:
            assert s.hpa is not None
            for return_to, status in (
                ("https://evil.example/", 400),
                ("//evil.example/x", 400),
                ("/visit#frag", 400),
                ("/visit", 401),  # a good address, a bad token
            ):
                async with s.http.post(
                    f"{s.url}/plugins/proxy/hpa/start",
                    json={"token": "bad", "returnTo": return_to},
                ) as reply:
                    assert reply.status == status, (return_to, await reply.text())
            assert s.hpa.calls["register"] == 0
            async with s.http.get(
                f"{s.url}/plugins/proxy/hpa/callback?state=forged&code=x", allow_redirects=False
            ) as reply:
                assert reply.status == 400
            async with (
                aiohttp.ClientSession() as other,
                other.post(f"{s.url}/plugins/proxy/hpa/start", data=b"x" * 20000) as reply,
            ):
                assert reply.status == 413

    run(main())
