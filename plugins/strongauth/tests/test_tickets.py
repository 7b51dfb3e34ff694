"""Join tickets: a person identified once with an ID token (``verify_person``) joins, and rejoins,
with single-use tickets from ``issue_ticket``. Real joins over the signaling WebSocket of a real
MediaServer, ID tokens from the local test issuer, the real audit trail."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import mediasrv_strongauth.plugin as strongauth_plugin
import pytest
from mediasrv_strongauth import loa
from mediasrv_strongauth.plugin import (
    MAX_TICKETS,
    MAX_TICKETS_PER_SUBJECT,
    TICKET_PREFIX,
    StrongAuthPlugin,
)
from test_strongauth import HETU, Setup, expected_subject, run, strongauth

from mediasrv.plugin import Identity

PERSON = ("010115A901T", "Olli", "Oppilas")  # identity code, given name, family name
REMOTE = "127.0.0.1"
Record = dict[str, Any]


async def identify(s: Setup, person: tuple[str, str, str] = PERSON) -> Identity:
    """What the web application does once: identify the person with an ID token."""
    return await s.plugin.verify_person(s.issuer.token_for(*person), REMOTE, "visit")


async def wait_for(s: Setup, decision: str, count: int) -> list[Record]:
    deadline = time.monotonic() + 5
    while len(rows := await s.records(decision)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} {decision!r} records"
        await asyncio.sleep(0.02)
    return rows


def assert_nowhere(tickets: list[str], text: str) -> None:
    """Neither a ticket nor its random part occurs in the text."""
    assert tickets
    for ticket in tickets:
        assert ticket not in text
        assert ticket.removeprefix(TICKET_PREFIX) not in text


def database_bytes(tmp_path: Path) -> bytes:
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("audit.sqlite3"))
    assert raw
    return raw


def test_a_ticket_joins_once_as_the_identified_person_and_the_trail_links_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tickets: list[str] = []
    code, given, family = PERSON

    async def main() -> None:
        async with strongauth(tmp_path) as s:
            identity = await identify(s)
            verified_id = identity.claims["audit_record"]
            ticket = s.plugin.issue_ticket(identity, "visit-1")
            tickets.append(ticket)
            assert ticket.startswith("msat.") and len(ticket) == len("msat.") + 43

            response = await s.join(ticket, room="visit-1")
            assert response["ok"] is True, response
            peer_id = response["result"]["peerId"]
            peer = s.server.rooms["visit-1"].peers[peer_id]
            assert peer.display_name == "Olli Oppilas" == f"{given} {family}"
            joined = peer.identity
            assert isinstance(joined, Identity)
            assert joined.subject == expected_subject(code) == identity.subject
            assert joined.plugin == "strongauth"
            assert joined.roles == frozenset({"client"}) and joined.method == loa.FTN_LOA2
            accepted_id = joined.claims["audit_record"]
            assert isinstance(accepted_id, int) and accepted_id > verified_id
            assert {k: v for k, v in joined.claims.items() if k != "audit_record"} == {
                k: v for k, v in identity.claims.items() if k != "audit_record"
            }
            assert joined.private["identity_code"] == code  # for other plugins' decisions
            assert identity.claims["audit_record"] == verified_id  # the session's is unchanged
            assert code not in response["raw"] and ticket not in response["raw"]
            await s.plugin.flush()

            # single use: the same ticket again is refused, on another connection
            response = await s.join(ticket, room="visit-1")
            assert response["ok"] is False
            assert response["error"] == {
                "code": "ticket_invalid",
                "message": "the join ticket is unknown or has already been used",
            }
            assert ticket not in response["raw"]

            # the network drops; the application rejoins the person with a new ticket
            await s.close_sockets()
            await wait_for(s, "left", 1)
            again = s.plugin.issue_ticket(identity, "visit-1", seconds=30)
            tickets.append(again)
            assert again != ticket
            response = await s.join(again, room="visit-1")
            assert response["ok"] is True, response
            rejoined = s.server.rooms["visit-1"].peers[response["result"]["peerId"]]
            assert rejoined.identity is not None
            rejoin_id = rejoined.identity.claims["audit_record"]
            await s.close_sockets()
            await wait_for(s, "left", 2)

            rows = await s.records()
            assert [(r["decision"], r["reason"]) for r in rows] == [
                ("verified", ""),
                ("accepted", ""),
                ("joined", ""),
                ("refused", "ticket_invalid"),
                ("left", ""),
                ("accepted", ""),
                ("joined", ""),
                ("left", ""),
            ]
            verified, accepted, joined_row, refused, left, accepted2, joined2, left2 = rows
            assert verified["id"] == verified_id
            assert json.loads(verified["detail"]) == {"purpose": "visit"}
            assert verified["subject"] == expected_subject(code)
            # the join by ticket: linked to the strong identification
            assert accepted["id"] == accepted_id and accepted["ref"] == verified_id
            assert json.loads(accepted["detail"]) == {"via": "ticket"}
            assert accepted["room"] == "visit-1" and accepted["remote"] == REMOTE
            assert accepted["subject"] == expected_subject(code)
            assert accepted["iss"] == verified["iss"] == s.issuer.issuer
            assert accepted["sub"] == verified["sub"] and accepted["acr"] == loa.FTN_LOA2
            assert accepted["amr"] == verified["amr"]
            assert accepted["auth_time"] == verified["auth_time"]
            assert accepted["proof"] is None and accepted["nonce"] is None
            # the peer's joins and leaves point to the join's record
            assert (joined_row["peer"], joined_row["ref"]) == (peer_id, accepted_id)
            assert (left["peer"], left["ref"]) == (peer_id, accepted_id)
            # the refused reuse: no proof, no person (the ticket was unknown by then)
            assert refused["proof"] is None and refused["subject"] is None
            assert refused["ref"] is None and json.loads(refused["detail"]) == {"via": "ticket"}
            # the rejoin stands on the same identification
            assert accepted2["id"] == rejoin_id and accepted2["ref"] == verified_id
            assert joined2["ref"] == left2["ref"] == rejoin_id
            assert joined2["peer"] == left2["peer"] == rejoined.id

            assert s.plugin.counts["accepted"] == 2
            assert s.plugin.counts["ticket_invalid"] == 1
            assert s.plugin.counts["ticket_issued"] == 2
            audit = s.plugin.audit
            assert audit is not None
            assert await s.plugin.audit_call(audit.verify_chain) is None
            status, body = await s.admin("POST", "audit", json={"subject": code, "proof": True})
            assert status == 200  # the person's records: all but the unknown ticket's refusal
            assert [r["id"] for r in body["records"]] == [r["id"] for r in rows if r["subject"]]
            assert len(body["records"]) == 7
            assert_nowhere(tickets, json.dumps(body))
            assert_nowhere(tickets, json.dumps(rows))

    run(main())
    assert "admitted subject" in caplog.text and "issued a join ticket" in caplog.text
    assert_nowhere(tickets, caplog.text)
    assert code not in caplog.text
    raw = database_bytes(tmp_path).decode("latin-1")
    assert_nowhere(tickets, raw)


def test_a_ticket_for_another_room_an_expired_ticket_and_a_made_up_one_are_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tickets: list[str] = []

    async def main() -> None:
        async with strongauth(tmp_path) as s:
            identity = await identify(s)
            verified_id = identity.claims["audit_record"]

            # issued for room A, presented for room B: refused, and used up
            ticket = s.plugin.issue_ticket(identity, "visit-a")
            tickets.append(ticket)
            response = await s.join(ticket, room="visit-b")
            assert response["error"] == {
                "code": "ticket_room",
                "message": "the join ticket was issued for another room",
            }
            assert "visit-b" not in s.server.rooms
            assert await s.refused(ticket, room="visit-a") == "ticket_invalid"

            # expired: the plugin's clock is past the ticket's lifetime
            late = s.plugin.issue_ticket(identity, "visit-a", seconds=60)
            tickets.append(late)
            started = time.time()
            s.plugin.clock = lambda: started + 61
            response = await s.join(late, room="visit-a")
            assert response["error"]["code"] == "ticket_expired", response
            assert "expired" in response["error"]["message"]
            assert await s.refused(late, room="visit-a") == "ticket_invalid"
            s.plugin.clock = time.time

            # never issued
            made_up = TICKET_PREFIX + "A" * 43
            tickets.append(made_up)
            assert await s.refused(made_up, room="visit-a") == "ticket_invalid"
            assert await s.refused(TICKET_PREFIX, room="visit-a") == "ticket_invalid"
            assert "visit-a" not in s.server.rooms

            rows = await s.records("refused")
            assert [r["reason"] for r in rows] == [
                "ticket_room",
                "ticket_invalid",
                "ticket_expired",
                "ticket_invalid",
                "ticket_invalid",
                "ticket_invalid",
            ]
            room, _, expired, *_ = rows
            for row in (room, expired):  # a known ticket: the person and their identification
                assert row["subject"] == identity.subject and row["ref"] == verified_id
                assert row["iss"] == s.issuer.issuer and row["acr"] == loa.FTN_LOA2
            assert room["room"] == "visit-b" and expired["room"] == "visit-a"
            for row in rows:
                assert row["proof"] is None and json.loads(row["detail"]) == {"via": "ticket"}
                assert row["remote"] == REMOTE
            for row in rows[1:2] + rows[3:]:
                assert row["subject"] is None and row["ref"] is None
            assert_nowhere(tickets, json.dumps(rows))
            assert not await s.records("accepted")

            counts = s.plugin.counts
            assert (counts["ticket_room"], counts["ticket_expired"]) == (1, 1)
            assert counts["ticket_invalid"] == 4 and "accepted" not in counts
            denials = s.server.plugins.stats()["strongauth"]["denials"]
            assert denials["ticket_invalid"] == 4 and denials["ticket_room"] == 1
            assert not s.plugin._tickets

    run(main())
    assert "refused ticket_room" in caplog.text and "refused ticket_expired" in caplog.text
    assert_nowhere(tickets, caplog.text)
    assert_nowhere(tickets, database_bytes(tmp_path).decode("latin-1"))


def test_only_identities_strongauth_established_get_tickets(tmp_path: Path) -> None:
    async def main() -> None:
        async with strongauth(tmp_path) as s:
            identity = await identify(s)
            record = identity.claims["audit_record"]
            foreign = [
                Identity(subject="someone", plugin="oidc", claims={"audit_record": record}),
                Identity(subject="someone"),  # no audit record
                Identity(subject="someone", claims={"audit_record": str(record)}),
                Identity(subject="someone", claims={"audit_record": True}),
            ]
            for other in foreign:
                with pytest.raises(ValueError, match="strongauth"):
                    s.plugin.issue_ticket(other, "visit-1")
            with pytest.raises(ValueError, match="room"):
                s.plugin.issue_ticket(identity, "")
            for seconds in (0, 0.5, 3601, float("nan"), float("inf"), True):
                with pytest.raises(ValueError, match="seconds"):
                    s.plugin.issue_ticket(identity, "visit-1", seconds=seconds)
            assert not s.plugin._tickets
            # a peer's identity from a join (plugin set to strongauth) is accepted too
            for seconds in (1, 3600, 2.5):
                assert s.plugin.issue_ticket(identity, "visit-1", seconds=seconds)
            first = s.plugin.issue_ticket(identity, "visit-1")
            response = await s.join(first)
            assert response["ok"] is True, response
            peer = s.server.rooms["visit-1"].peers[response["result"]["peerId"]]
            assert peer.identity is not None and peer.identity.plugin == "strongauth"
            chained = s.plugin.issue_ticket(peer.identity, "visit-2")
            assert (await s.join(chained, room="visit-2"))["ok"] is True
            accepted = await s.records("accepted")
            assert [r["ref"] for r in accepted] == [record, accepted[0]["id"]]

    run(main())


def test_outstanding_tickets_are_bounded_and_expired_ones_are_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert MAX_TICKETS == 10000
    monkeypatch.setattr(strongauth_plugin, "MAX_TICKETS", 3)

    async def main() -> None:
        async with strongauth(tmp_path) as s:
            plugin: StrongAuthPlugin = s.plugin
            identity = await identify(s)
            now = time.time()
            plugin.clock = lambda: now
            short = plugin.issue_ticket(identity, "visit-1", seconds=10)
            plugin.issue_ticket(identity, "visit-1", seconds=100)
            last = plugin.issue_ticket(identity, "visit-1", seconds=100)
            with pytest.raises(RuntimeError, match="too many outstanding join tickets"):
                plugin.issue_ticket(identity, "visit-1")
            # a used ticket frees its place
            assert (await s.join(last))["ok"] is True
            plugin.issue_ticket(identity, "visit-1", seconds=100)
            with pytest.raises(RuntimeError, match="too many"):
                plugin.issue_ticket(identity, "visit-1")
            # so does an expired one, swept when the next ticket is issued
            plugin.clock = lambda: now + 11
            assert short in plugin._tickets
            plugin.issue_ticket(identity, "visit-1")
            assert short not in plugin._tickets and len(plugin._tickets) == 3
            assert await s.refused(short) == "ticket_invalid"

    run(main())


def test_a_ticket_join_the_trail_cannot_record_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        async with strongauth(tmp_path) as s:
            identity = await identify(s)
            ticket = s.plugin.issue_ticket(identity, "visit-1")
            audit = s.plugin.audit
            assert audit is not None
            await s.plugin.audit_call(audit.close)  # the trail fails
            response = await s.join(ticket)
            assert response["error"]["code"] == "audit_unavailable", response
            assert "visit-1" not in s.server.rooms
            assert s.plugin.counts["audit_unavailable"] == 1
            assert "accepted" not in s.plugin.counts

    run(main())


def test_an_id_token_still_joins_beside_tickets(tmp_path: Path) -> None:
    async def main() -> None:
        async with strongauth(tmp_path) as s:
            response = await s.join(s.issuer.token())
            assert response["ok"] is True, response
            peer = s.server.rooms["visit-1"].peers[response["result"]["peerId"]]
            assert peer.identity is not None and peer.identity.subject == expected_subject(HETU)
            accepted = await s.records("accepted")
            assert accepted[0]["detail"] is None and accepted[0]["proof"]

    run(main())


def test_one_person_holds_at_most_five_tickets(tmp_path: Path) -> None:
    """A person's sixth ticket replaces their oldest: nobody can use up everyone's tickets."""

    async def main() -> None:
        async with strongauth(tmp_path) as s:
            plugin: StrongAuthPlugin = s.plugin
            identity = await identify(s)
            tickets = [plugin.issue_ticket(identity, "visit-1") for _ in range(20)]
            held = [t for t in tickets if t in plugin._tickets]
            assert held == tickets[-MAX_TICKETS_PER_SUBJECT:]
            assert await s.refused(tickets[0]) == "ticket_invalid"
            assert (await s.join(tickets[-1]))["ok"] is True

    run(main())
