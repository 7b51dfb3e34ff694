"""strongauth against a local OpenID Connect issuer: real RSA and EC keys made here, a real JWKS
endpoint served by aiohttp on 127.0.0.1, ID tokens signed (and encrypted) with joserfc, and a
real MediaServer whose signaling `join` carries the token over a real WebSocket."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvloop
from joserfc import jwe
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, RSAKey
from mediasrv_strongauth import loa
from mediasrv_strongauth.audit import AuditEntry, AuditLog, ProofCipher
from mediasrv_strongauth.jwks import key_fits, parse_jwks
from mediasrv_strongauth.plugin import StrongAuthPlugin
from mediasrv_strongauth.testing import LocalIssuer

from mediasrv.config import PluginSpec, ServerConfig
from mediasrv.http.frontend import HttpFrontend
from mediasrv.media_server import MediaServer
from mediasrv.plugin import Identity, PluginConfigError
from mediasrv.plugin_manager import discover

HETU = "131052-308T"  # the national identity code of the test person (DVV's example code)
HETU_CLAIM = "urn:oid:1.2.246.21"
AUDIENCE = "mediasrv-visits"
ADMIN_TOKEN = "admin-token-for-tests-0123456789"
SALT = "subject-salt-for-tests-0123456789"
TIMEOUT = 60.0
Message = dict[str, Any]


def run(coro: Coroutine[Any, Any, None]) -> None:
    uvloop.run(asyncio.wait_for(coro, TIMEOUT))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def expected_subject(code: str = HETU) -> str:
    return hmac.new(SALT.encode(), code.encode(), hashlib.sha256).hexdigest()[:32]


# ---- the local OpenID Connect issuer ----


class Issuer(LocalIssuer):
    """The broker of these tests: the development issuer with this file's audience."""

    def __init__(self) -> None:
        super().__init__(audience=AUDIENCE)

    def claims(self, **changes: Any) -> dict[str, Any]:
        return super().claims(
            **{"sub": "broker-pairwise-7f3a", "sid": "broker-session-1", **changes}
        )


def encrypt(signed: str, to: RSAKey, alg: str = "RSA-OAEP", enc: str = "A256GCM") -> str:
    public = RSAKey.import_key(to.as_dict(private=False))
    return jwe.encrypt_compact(
        {"alg": alg, "enc": enc, "cty": "JWT"}, signed.encode(), public, algorithms=[alg, enc]
    )


def unsigned_token(claims: dict[str, Any]) -> str:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


def hs256_with_public_key(claims: dict[str, Any], key: RSAKey) -> str:
    """The classic algorithm confusion: HMAC keyed by the issuer's public key (PEM bytes)."""
    secret = key.as_pem(private=False)
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tampered(token: str, **changes: Any) -> str:
    """The same signature over a changed payload."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


# ---- a server with the plugin ----


@dataclass
class Setup:
    server: MediaServer
    plugin: StrongAuthPlugin
    issuer: Issuer
    config: dict[str, Any]
    http: aiohttp.ClientSession
    sockets: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.server.http_address is not None
        return self.server.http_address[1]

    async def join(self, token: str, room: str = "visit-1", **params: Any) -> Message:
        """A real signaling join on a fresh WebSocket, kept open when it succeeds (the peer
        stays in the room): the response, with its raw text under "raw"."""
        ws = await self.http.ws_connect(f"ws://127.0.0.1:{self.port}/ws")
        request = {"token": token, "room": room, **params}
        await ws.send_str(json.dumps({"id": 1, "method": "join", "params": request}))
        while True:
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            response: Message = json.loads(msg.data)
            if response.get("id") == 1:
                break
        response["raw"] = msg.data
        if response["ok"]:
            self.sockets.append(ws)
        else:
            await ws.close()
        return response

    async def close_sockets(self) -> None:
        for ws in self.sockets:
            await ws.close()
        self.sockets.clear()

    async def refused(self, token: str, **params: Any) -> str:
        response = await self.join(token, **params)
        assert response["ok"] is False, response
        error = response["error"]
        assert error["message"], error
        code: str = error["code"]
        return code

    async def records(self, decision: str | None = None) -> list[Message]:
        audit = self.plugin.audit
        assert audit is not None
        await self.plugin.flush()
        rows = await self.plugin.audit_call(audit.query, after=0, limit=1000)
        return [r for r in rows if decision is None or r["decision"] == decision]

    async def last_record(self) -> Message:
        return (await self.records())[-1]

    async def admin(
        self, method: str, path: str, token: str | None = ADMIN_TOKEN, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        url = f"http://127.0.0.1:{self.port}/plugins/strongauth/{path}"
        async with self.http.request(method, url, headers=headers, **kwargs) as reply:
            return reply.status, await reply.json()


@pytest.fixture(scope="module")
def decryption_key() -> RSAKey:
    return RSAKey.generate_key(2048)


def plugin_config(issuer: Issuer, tmp_path: Path, key: RSAKey | None, **changes: Any) -> Message:
    config: Message = {
        "issuer": issuer.issuer,
        "audience": AUDIENCE,
        "jwks_uri": issuer.jwks_uri,
        "admin_token": ADMIN_TOKEN,
        "subject_salt": SALT,
        "audit_db": str(tmp_path / "audit.sqlite3"),
    }
    if key is not None:
        pem = tmp_path / "service-key.pem"
        pem.write_bytes(key.as_pem(private=True))
        config["decryption_key_file"] = str(pem)
    config.update(changes)
    return config


@asynccontextmanager
async def strongauth(
    tmp_path: Path,
    key: RSAKey | None = None,
    issuer: Issuer | None = None,
    **changes: Any,
) -> AsyncIterator[Setup]:
    own_issuer = issuer is None
    if issuer is None:
        issuer = Issuer()
        await issuer.start()
    config = plugin_config(issuer, tmp_path, key, **changes)
    server = MediaServer(ServerConfig(port=0))
    HttpFrontend(server)
    plugin = server.plugins.add(StrongAuthPlugin, config)
    assert isinstance(plugin, StrongAuthPlugin)
    await server.start()
    setup = Setup(server, plugin, issuer, config, aiohttp.ClientSession())
    try:
        yield setup
    finally:
        await setup.close_sockets()
        await setup.http.close()
        await server.close()
        if own_issuer:
            await issuer.close()


# ---- accepted ----


def test_a_valid_loa2_token_joins_with_a_pseudonymous_identity(
    tmp_path: Path, decryption_key: RSAKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens: list[str] = []

    async def main() -> None:
        async with strongauth(tmp_path, decryption_key) as s:
            token = s.issuer.token()
            tokens.append(token)
            response = await s.join(token, room="visit-1")
            assert response["ok"] is True, response
            peer_id = response["result"]["peerId"]
            peer = s.server.rooms["visit-1"].peers[peer_id]
            identity = peer.identity
            assert isinstance(identity, Identity)
            assert identity.subject == expected_subject()
            assert len(identity.subject) == 32 and HETU not in identity.subject
            assert identity.plugin == "strongauth"
            assert identity.display_name == "Tero Testi" == peer.display_name
            assert identity.roles == frozenset({"client"})
            assert identity.method == loa.FTN_LOA2
            assert set(identity.claims) == {"iss", "sub", "acr", "amr", "auth_time", "nonce",
                                           "audit_record"}  # fmt: skip
            assert identity.claims["amr"] == ["nordea"]
            # the national identity code is nowhere in what the client or the peer sees
            assert HETU not in response["raw"] and HETU not in repr(identity)
            # an ES256 token and a professional whose roles claim lists extra roles
            professional = s.issuer.token(
                s.issuer.claims(roles=["professional", "superuser"]), key=s.issuer.ec, alg="ES256"
            )
            tokens.append(professional)
            second = await s.join(professional, room="visit-1")
            assert second["ok"] is True, second
            other = s.server.rooms["visit-1"].peers[second["result"]["peerId"]]
            assert other.identity is not None
            assert other.identity.roles == frozenset({"professional"})
            # the audit trail: accepted, then joined with the peer id
            audit = s.plugin.audit
            assert audit is not None
            await s.plugin.flush()
            rows = await s.plugin.audit_call(audit.query)
            decisions = [(r["decision"], r["reason"], r["peer"]) for r in rows]
            assert decisions == [
                ("accepted", "", None),
                ("joined", "", peer_id),
                ("accepted", "", None),
                ("joined", "", other.id),
            ]
            first = rows[0]
            assert first["subject"] == expected_subject()
            assert first["iss"] == s.issuer.issuer and first["sub"] == "broker-pairwise-7f3a"
            assert first["acr"] == loa.FTN_LOA2 and json.loads(first["amr"]) == ["nordea"]
            assert first["remote"] == "127.0.0.1" and first["room"] == "visit-1"
            assert first["auth_time"] is not None and first["sid"] == "broker-session-1"
            assert rows[1]["ref"] == first["id"] == identity.claims["audit_record"]
            assert audit.journal_mode == "wal" and audit.synchronous == 2  # FULL
            # leaving is recorded too
            await s.close_sockets()
            deadline = time.monotonic() + 5
            while len(await s.records("left")) < 2:
                assert time.monotonic() < deadline, "no 'left' records"
                await asyncio.sleep(0.02)
            left = await s.records("left")
            assert {r["peer"] for r in left} == {peer_id, other.id}
            assert {r["ref"] for r in left} == {rows[0]["id"], rows[2]["id"]}

    run(main())
    # after the server closed: the database files hold neither the code nor a token
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("audit.sqlite3"))
    assert raw and HETU.encode() not in raw
    assert all(t.encode() not in raw for t in tokens)
    assert "identified subject" in caplog.text
    assert HETU not in caplog.text
    assert all(t not in caplog.text and t.split(".")[1] not in caplog.text for t in tokens)


def test_an_encrypted_token_is_decrypted_and_accepted(
    tmp_path: Path, decryption_key: RSAKey
) -> None:
    async def main() -> None:
        async with strongauth(tmp_path, decryption_key) as s:
            for alg, enc in (
                ("RSA-OAEP", "A256GCM"),
                ("RSA-OAEP-256", "A128CBC-HS256"),
                ("RSA-OAEP", "A256CBC-HS512"),
                ("RSA-OAEP-256", "A128GCM"),
            ):
                signed = s.issuer.token()
                token = encrypt(signed, decryption_key, alg, enc)
                assert token.count(".") == 4
                response = await s.join(token)
                assert response["ok"] is True, (alg, enc, response)
                # the proof kept is the inner signed token
                record = (await s.records("accepted"))[-1]
                assert s.plugin.audit is not None
                assert s.plugin.audit.open_proof(record["proof"]) == signed
            # encrypted to another key; an unaccepted key management algorithm
            stranger = RSAKey.generate_key(2048)
            assert await s.refused(encrypt(s.issuer.token(), stranger)) == "token_decrypt"
            assert (await s.last_record())["reason"] == "token_decrypt"
            header = b64url(json.dumps({"alg": "RSA1_5", "enc": "A128GCM"}).encode())
            assert await s.refused(f"{header}.a.b.c.d") == "token_decrypt"

    run(main())


def test_an_encrypted_token_without_a_configured_key_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        async with strongauth(tmp_path, None) as s:
            token = encrypt(s.issuer.token(), RSAKey.generate_key(2048))
            response = await s.join(token)
            assert response["error"]["code"] == "token_decrypt"
            assert "no decryption key" in response["error"]["message"]

    run(main())


# ---- refused: each case its own code, each attempt audited ----


def test_each_refusal_has_its_own_code_and_is_audited(
    tmp_path: Path, decryption_key: RSAKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens: list[str] = []

    async def main() -> None:
        async with strongauth(tmp_path, decryption_key) as s:
            issuer = s.issuer
            impostor = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
            now = int(time.time())
            cases: list[tuple[str, str, str, bool]] = [
                # (what, token, code, claims verified: the record names the person)
                ("not a JWT", "t", "token_malformed", False),
                ("two parts", "a.b", "token_malformed", False),
                ("header not JSON", "e30x.e30.e30", "token_malformed", False),
                (
                    "signed by another key under the published kid",
                    issuer.token(key=impostor),
                    "token_signature",
                    False,
                ),
                (
                    "payload changed after signing",
                    tampered(issuer.token(), acr=loa.FTN_LOA3),
                    "token_signature",
                    False,
                ),
                (
                    "a kid the issuer never published",
                    issuer.token(key=impostor, kid="rsa-unknown"),
                    "token_signature",
                    False,
                ),
                ("alg none", unsigned_token(issuer.claims()), "token_alg", False),
                (
                    "HS256 keyed by the public key (algorithm confusion)",
                    hs256_with_public_key(issuer.claims(), issuer.rsa),
                    "token_alg",
                    False,
                ),
                (
                    "expired",
                    issuer.token(issuer.claims(exp=now - 3600, iat=now - 4000)),
                    "token_expired",
                    True,
                ),
                (
                    "not valid yet",
                    issuer.token(issuer.claims(nbf=now + 3600)),
                    "token_not_yet_valid",
                    True,
                ),
                (
                    "issued in the future",
                    issuer.token(issuer.claims(iat=now + 3600)),
                    "token_not_yet_valid",
                    True,
                ),
                (
                    "another issuer",
                    issuer.token(issuer.claims(iss="https://evil.example")),
                    "token_issuer",
                    True,
                ),
                (
                    "another audience",
                    issuer.token(issuer.claims(aud="another-service")),
                    "token_audience",
                    True,
                ),
                (
                    "another audience list",
                    issuer.token(issuer.claims(aud=["a", "b"])),
                    "token_audience",
                    True,
                ),
                (
                    "no nonce",
                    issuer.token(issuer.claims(nonce=None)),
                    "token_nonce_missing",
                    True,
                ),
                (
                    "eIDAS low",
                    issuer.token(issuer.claims(acr=loa.EIDAS_LOW)),
                    "loa_too_low",
                    True,
                ),
                (
                    "unknown acr",
                    issuer.token(issuer.claims(acr="urn:example:loa:9")),
                    "loa_too_low",
                    True,
                ),
                ("no acr", issuer.token(issuer.claims(acr=None)), "loa_too_low", True),
                (
                    "no identity code",
                    issuer.token(issuer.claims(**{HETU_CLAIM: None})),
                    "identity_missing",
                    True,
                ),
            ]
            for what, token, code, verified in cases:
                tokens.append(token)
                response = await s.join(token)
                assert response["ok"] is False, (what, response)
                assert response["error"]["code"] == code, (what, response)
                assert HETU not in response["raw"], what
                assert len(token) < 8 or token not in response["raw"], what
                record = await s.last_record()
                assert (record["decision"], record["reason"]) == ("refused", code), what
                assert record["remote"] == "127.0.0.1" and record["room"] == "visit-1", what
                assert record["proof"], what  # kept, encrypted
                if verified and code != "identity_missing":
                    assert record["subject"] == expected_subject(), what
                    assert record["iss"] == issuer.issuer or code == "token_issuer", what
                    assert record["acr"] is not None or what == "no acr", what
                else:
                    assert record["subject"] is None, what
                if not verified:
                    assert record["iss"] is None and record["acr"] is None, what
            # every case refused, nothing joined; each refusal counted by the server per code
            assert "visit-1" not in s.server.rooms
            denials = s.server.plugins.stats()["strongauth"]["denials"]
            assert denials["token_signature"] == 3 and denials["token_alg"] == 2
            assert s.plugin.counts["loa_too_low"] == 3
            audit = s.plugin.audit
            assert audit is not None
            assert await s.plugin.audit_call(audit.verify_chain) is None

    run(main())
    assert HETU not in caplog.text
    assert all(t.split(".")[1] not in caplog.text for t in tokens if t.count(".") == 2)


def test_min_acr_loa3_refuses_loa2_and_accepts_the_high_levels(
    tmp_path: Path, decryption_key: RSAKey
) -> None:
    async def main() -> None:
        async with strongauth(tmp_path, decryption_key, min_acr=loa.FTN_LOA3) as s:
            for acr in (loa.FTN_LOA2, loa.EIDAS_SUBSTANTIAL):
                response = await s.join(s.issuer.token(s.issuer.claims(acr=acr)))
                assert response["error"]["code"] == "loa_too_low", response
                assert loa.FTN_LOA3 in response["error"]["message"]
            for acr in (loa.FTN_LOA3, loa.EIDAS_HIGH):
                response = await s.join(s.issuer.token(s.issuer.claims(acr=acr)))
                assert response["ok"] is True, (acr, response)

    run(main())


def test_the_loa_order() -> None:
    assert loa.meets(loa.FTN_LOA2, loa.EIDAS_SUBSTANTIAL)
    assert loa.meets(loa.EIDAS_SUBSTANTIAL, loa.FTN_LOA2)
    assert loa.meets(loa.EIDAS_HIGH, loa.FTN_LOA3) and loa.meets(loa.FTN_LOA3, loa.FTN_LOA2)
    assert not loa.meets(loa.FTN_LOA2, loa.FTN_LOA3)
    assert not loa.meets(loa.EIDAS_LOW, loa.FTN_LOA2)
    assert not loa.meets("urn:unknown", loa.EIDAS_LOW) and not loa.meets(None, loa.EIDAS_LOW)


def test_a_foreign_eidas_person_is_identified_by_the_person_identifier(
    tmp_path: Path, decryption_key: RSAKey
) -> None:
    eidas_id = "SE/FI/199001011234"

    async def main() -> None:
        async with strongauth(tmp_path, decryption_key) as s:
            claims = s.issuer.claims(**{HETU_CLAIM: None}, acr=loa.EIDAS_SUBSTANTIAL)
            claims["http://eidas.europa.eu/attributes/naturalperson/PersonIdentifier"] = eidas_id
            response = await s.join(s.issuer.token(claims))
            assert response["ok"] is True, response
            peer = s.server.rooms["visit-1"].peers[response["result"]["peerId"]]
            assert peer.identity is not None
            assert peer.identity.subject == expected_subject(eidas_id)

    run(main())


# ---- replay ----


def test_a_replayed_nonce_is_refused_also_after_a_restart(
    tmp_path: Path, decryption_key: RSAKey
) -> None:
    async def main() -> None:
        issuer = Issuer()
        await issuer.start()
        try:
            token = issuer.token()
            async with strongauth(tmp_path, decryption_key, issuer) as s:
                assert (await s.join(token))["ok"] is True
                assert await s.refused(token) == "token_nonce_replayed"
                record = await s.last_record()
                assert (record["decision"], record["reason"]) == (
                    "refused",
                    "token_nonce_replayed",
                )
                assert record["subject"] == expected_subject()
                # another token of the same person with a fresh nonce is fine
                assert (await s.join(issuer.token()))["ok"] is True
                # the same nonce in a new token (signed again) is a replay too
                nonce = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==").decode())[
                    "nonce"
                ]
                again = issuer.token(issuer.claims(nonce=nonce))
                assert await s.refused(again) == "token_nonce_replayed"
            # a restarted server with the same audit database remembers the nonce
            async with strongauth(tmp_path, decryption_key, issuer) as s:
                assert await s.refused(token) == "token_nonce_replayed"
                audit = s.plugin.audit
                assert audit is not None
                assert await s.plugin.audit_call(audit.verify_chain) is None
        finally:
            await issuer.close()

    run(main())


# ---- keys ----


def test_key_rotation_refetches_the_jwks_once_and_rate_limits_unknown_kids(
    tmp_path: Path, decryption_key: RSAKey
) -> None:
    async def main() -> None:
        async with strongauth(tmp_path, decryption_key) as s:
            issuer = s.issuer
            assert (await s.join(issuer.token()))["ok"] is True
            assert issuer.jwks_requests == 1
            assert (await s.join(issuer.token()))["ok"] is True
            assert issuer.jwks_requests == 1  # cached
            old = issuer.rsa
            new = issuer.rotate()
            response = await s.join(issuer.token(key=new))
            assert response["ok"] is True, response
            assert issuer.jwks_requests == 2  # one refetch for the new kid
            # the withdrawn key's tokens are refused now
            assert await s.refused(issuer.token(key=old)) == "token_signature"
            # made-up kids do not make the plugin hammer the broker
            for n in range(3):
                stray = issuer.token(key=new, kid=f"made-up-{n}")
                assert await s.refused(stray) == "token_signature"
            assert issuer.jwks_requests == 2  # rate-limited: one refetch per 10 s
            s.plugin.jwks.min_refetch_interval = 0.0  # as if 10 s had passed
            assert await s.refused(issuer.token(key=new, kid="made-up-3")) == "token_signature"
            assert issuer.jwks_requests == 3 == s.plugin.jwks.fetches

    run(main())


def test_an_unreachable_jwks_refuses_with_jwks_unavailable(
    tmp_path: Path, decryption_key: RSAKey
) -> None:
    async def main() -> None:
        issuer = Issuer()
        await issuer.start()
        issuer.jwks_status = 503
        try:
            async with strongauth(tmp_path, decryption_key, issuer) as s:
                response = await s.join(issuer.token())
                assert response["error"]["code"] == "jwks_unavailable", response
                assert "503" in response["error"]["message"]
                assert (await s.last_record())["reason"] == "jwks_unavailable"
                # the broker is back: the next attempt after the retry interval fetches again
                issuer.jwks_status = 200
                s.plugin.jwks.min_refetch_interval = 0.0
                assert (await s.join(issuer.token()))["ok"] is True
        finally:
            await issuer.close()

    run(main())


# ---- the audit API ----


def test_the_audit_api_requires_the_admin_token_and_queries_by_subject_and_time(
    tmp_path: Path, decryption_key: RSAKey
) -> None:
    async def main() -> None:
        async with strongauth(tmp_path, decryption_key) as s:
            issuer = s.issuer
            other_code = "010101-123N"
            signed = issuer.token()
            assert (await s.join(signed, room="visit-a"))["ok"] is True
            assert await s.refused(issuer.token(issuer.claims(aud="x")), room="visit-a")
            middle = time.time()
            await asyncio.sleep(0.01)
            other = issuer.token(issuer.claims(**{HETU_CLAIM: other_code}))
            assert (await s.join(other, room="visit-b"))["ok"] is True
            await s.plugin.flush()

            for token in (None, "wrong", ADMIN_TOKEN[:-1], ADMIN_TOKEN + "x"):
                for method, path in (("GET", "audit"), ("GET", "audit/verify"), ("POST", "audit")):
                    status, body = await s.admin(method, path, token=token, json={})
                    assert status == 401, (method, path, token)
                    assert "Bearer" in body["error"]

            status, body = await s.admin("GET", "audit")
            assert status == 200 and body["count"] == 5  # accepted, joined, refused, ...
            assert all("proof" not in r for r in body["records"])
            assert HETU not in json.dumps(body) and other_code not in json.dumps(body)

            # by pseudonymous subject: that person's attempts only
            status, body = await s.admin("GET", "audit", params={"subject": expected_subject()})
            assert status == 200
            assert [r["decision"] for r in body["records"]] == ["accepted", "joined", "refused"]
            assert {r["subject"] for r in body["records"]} == {expected_subject()}
            # by national identity code (POST keeps it out of URLs): the same records, and the
            # proof may be asked for then
            status, by_code = await s.admin("POST", "audit", json={"subject": HETU, "proof": True})
            assert status == 200
            assert [r["id"] for r in by_code["records"]] == [r["id"] for r in body["records"]]
            assert by_code["records"][0]["proof"] == signed
            status, _ = await s.admin(
                "GET", "audit", params={"subject": expected_subject(), "proof": "1"}
            )
            assert status == 400  # no proofs by pseudonym
            # by time range and room
            since = {"since": str(middle)}
            status, body = await s.admin("GET", "audit", params=since)
            assert [r["subject"] for r in body["records"]] == [expected_subject(other_code)] * 2
            iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(middle - 3600))
            status, body = await s.admin("GET", "audit", params={"until": iso})
            assert status == 200 and body["count"] == 0
            status, body = await s.admin("GET", "audit", params={"room": "visit-a"})
            assert [r["decision"] for r in body["records"]] == ["accepted", "joined", "refused"]
            # result size limits and paging
            status, page = await s.admin("GET", "audit", params={"limit": "2"})
            assert page["count"] == 2 and page["next_after"] == page["records"][-1]["id"]
            status, rest = await s.admin(
                "GET", "audit", params={"limit": "2", "after": str(page["next_after"])}
            )
            assert [r["id"] for r in rest["records"]] == [3, 4]
            for bad in ({"limit": "0"}, {"limit": "1001"}, {"since": "yesterday"}):
                status, body = await s.admin("GET", "audit", params=bad)
                assert status == 400 and body["error"], bad
            # the chain
            status, body = await s.admin("GET", "audit/verify")
            assert status == 200
            assert body["ok"] is True and body["first_broken"] is None and body["records"] == 5

    run(main())


def test_tampering_with_a_record_is_detected_by_the_hash_chain(
    tmp_path: Path, decryption_key: RSAKey
) -> None:
    db_path = tmp_path / "audit.sqlite3"

    async def main() -> None:
        async with strongauth(tmp_path, decryption_key) as s:
            for _ in range(3):
                assert (await s.join(s.issuer.token()))["ok"] is True
            await s.plugin.flush()
            audit = s.plugin.audit
            assert audit is not None
            assert await s.plugin.audit_call(audit.verify_chain) is None

            db = sqlite3.connect(db_path)
            try:
                # the table refuses changes...
                with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                    db.execute("UPDATE audit SET room = 'elsewhere' WHERE id = 3")
                with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                    db.execute("DELETE FROM audit WHERE id = 3")
                # ...and someone who drops the trigger is still found out
                db.execute("DROP TRIGGER audit_no_update")
                db.execute("UPDATE audit SET room = 'elsewhere' WHERE id = 3")
                db.commit()
            finally:
                db.close()
            assert await s.plugin.audit_call(audit.verify_chain) == 3
            status, body = await s.admin("GET", "audit/verify")
            assert status == 200 and body == {
                "ok": False,
                "first_broken": 3,
                "records": 6,
                "head": body["head"],
            }

    run(main())


def test_recomputed_hashes_and_removed_records_break_the_chain(tmp_path: Path) -> None:
    path = str(tmp_path / "chain.sqlite3")
    log = AuditLog(path, ProofCipher(SALT))
    for n in range(5):
        log.append(AuditEntry(decision="accepted", room=f"r{n}", proof="token"), now=time.time())
    assert log.verify_chain() is None
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("DROP TRIGGER audit_no_delete")
    # change record 2 and recompute its own hash: record 3's link no longer matches
    row = dict(
        zip(
            [d[1] for d in db.execute("PRAGMA table_info(audit)")],
            db.execute("SELECT * FROM audit WHERE id = 2").fetchone(),
            strict=True,
        )
    )
    row["room"] = "forged"
    from mediasrv_strongauth.audit import record_hash

    db.execute("UPDATE audit SET room = ?, hash = ? WHERE id = 2", ("forged", record_hash(row)))
    db.commit()
    assert log.verify_chain() == 3
    # a removed record: the next one is out of place
    db.execute("DELETE FROM audit WHERE id = 4")
    db.commit()
    db.close()
    fresh = AuditLog(str(tmp_path / "other.sqlite3"), ProofCipher(SALT))
    for n in range(3):
        fresh.append(AuditEntry(decision="refused", reason="x", room=f"r{n}"), now=time.time())
    db = sqlite3.connect(tmp_path / "other.sqlite3")
    db.execute("DROP TRIGGER audit_no_delete")
    db.execute("DELETE FROM audit WHERE id = 2")
    db.commit()
    db.close()
    assert fresh.verify_chain() == 3
    log.close()
    fresh.close()


def test_a_schema_1_trail_is_migrated_and_its_chain_still_holds(tmp_path: Path) -> None:
    """A trail written before the on-behalf columns existed: opened by this version, the old
    records keep their hashes, new records carry principal, basis and detail, and the whole
    chain verifies; a changed detail breaks it like any other column."""
    from mediasrv_strongauth.audit import GENESIS, SCHEMA, record_hash, utc_text

    path = tmp_path / "v1.sqlite3"
    v1_schema = "\n".join(
        line
        for line in SCHEMA.splitlines()
        if not line.lstrip().startswith(("principal TEXT", "basis TEXT", "detail TEXT"))
    )
    db = sqlite3.connect(path)
    db.executescript(v1_schema.replace("audit_principal", "unused"))
    columns = [c[1] for c in db.execute("PRAGMA table_info(audit)")]
    assert "principal" not in columns
    previous = GENESIS
    for n in (1, 2):
        row: dict[str, Any] = {c: None for c in columns}
        row.update(
            id=n, time=utc_text(time.time()), decision="accepted", reason="", room=f"r{n}",
            remote="127.0.0.1", prev_hash=previous,
        )  # fmt: skip
        del row["hash"]
        row["hash"] = record_hash(row)
        previous = row["hash"]
        db.execute(
            f"INSERT INTO audit ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
    db.commit()
    db.close()
    log = AuditLog(str(path), ProofCipher(SALT))
    assert log.verify_chain() is None
    record_id, _ = log.append(
        AuditEntry(
            decision="proxy_allowed",
            principal="p" * 32,
            basis="GUARDIAN_OF_MINOR",
            detail={"reasons": [], "result": "ALLOWED"},
        ),
        now=time.time(),
    )
    assert record_id == 3 and log.verify_chain() is None
    assert [r["principal"] for r in log.query(principal="p" * 32)] == ["p" * 32]
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("2",)
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("UPDATE audit SET detail = ? WHERE id = 3", ('{"result":"DISALLOWED"}',))
    db.commit()
    db.close()
    assert log.verify_chain() == 3
    log.close()


def test_acknowledged_records_survive_a_killed_process(tmp_path: Path) -> None:
    """A writer is killed (SIGKILL) mid-stream: every record it acknowledged is there after
    reopening, and the chain is intact."""
    path = tmp_path / "crash.sqlite3"
    script = (
        "import sys, time\n"
        "from mediasrv_strongauth.audit import AuditEntry, AuditLog, ProofCipher\n"
        f"log = AuditLog(sys.argv[1], ProofCipher({SALT!r}))\n"
        "n = 0\n"
        "while True:\n"
        "    rid, _ = log.append(AuditEntry(decision='accepted', room=f'r{n}', proof='t'),"
        " now=time.time())\n"
        "    print(rid, flush=True)\n"
        "    n += 1\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True
    )
    acknowledged: list[int] = []
    try:
        assert writer.stdout is not None
        while len(acknowledged) < 40:
            line = writer.stdout.readline()
            assert line, "the writer ended early"
            acknowledged.append(int(line))
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(10)
    log = AuditLog(str(path), ProofCipher(SALT))
    try:
        ids = {r["id"] for r in log.query(limit=1000)}
        assert set(acknowledged) <= ids
        assert log.verify_chain() is None
        assert log.journal_mode == "wal"
    finally:
        log.close()


# ---- configuration and discovery ----


def test_the_plugin_is_found_by_its_entry_point_and_enabled_by_config(
    tmp_path: Path, decryption_key: RSAKey
) -> None:
    assert discover()["strongauth"].load() is StrongAuthPlugin

    async def main() -> None:
        issuer = Issuer()
        await issuer.start()
        config = plugin_config(issuer, tmp_path, decryption_key)
        server = MediaServer(ServerConfig(port=0, plugins=(PluginSpec("strongauth", config),)))
        HttpFrontend(server)
        await server.start()
        try:
            plugin = server.plugins.get("strongauth")
            assert isinstance(plugin, StrongAuthPlugin)
            assert plugin.config["min_acr"] == loa.FTN_LOA2 and plugin.config["clock_skew"] == 60
            s = Setup(server, plugin, issuer, config, aiohttp.ClientSession())
            assert (await s.join(encrypt(issuer.token(), decryption_key)))["ok"] is True
            await s.close_sockets()
            await s.http.close()
        finally:
            await server.close()
            await issuer.close()

    run(main())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"issuer": None}, "plugins.strongauth.issuer: required"),
        ({"jwks_uri": "http://broker.example/jwks"}, "plugins.strongauth.jwks_uri:"),
        ({"min_acr": "loa2"}, "plugins.strongauth.min_acr:"),
        ({"admin_token": "short"}, "plugins.strongauth.admin_token: (secret) is not valid"),
        ({"subject_salt": "short"}, "plugins.strongauth.subject_salt: (secret) is not valid"),
        ({"clock_skew": "60"}, "plugins.strongauth.clock_skew: expected int, got str"),
        ({"professional_roles": [1]}, "plugins.strongauth.professional_roles:"),
        ({"decryption_key_file": "/nonexistent.pem"}, "decryption_key_file: cannot read"),
        ({"unknown": 1}, "unknown setting 'unknown'"),
    ],
)
def test_configuration_errors_name_the_key(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    config: dict[str, Any] = {
        "issuer": "https://broker.example",
        "audience": AUDIENCE,
        "jwks_uri": "https://broker.example/jwks",
        "admin_token": ADMIN_TOKEN,
        "subject_salt": SALT,
        "audit_db": str(tmp_path / "a.sqlite3"),
    }
    for key, value in change.items():
        if value is None:
            del config[key]
        else:
            config[key] = value
    server = MediaServer(ServerConfig(port=0))
    HttpFrontend(server)
    with pytest.raises(PluginConfigError) as error:
        server.plugins.add(StrongAuthPlugin, config)
    assert message in str(error.value)
    assert "short" not in str(error.value)  # secrets are not shown


def test_a_public_key_file_is_not_a_decryption_key(tmp_path: Path, decryption_key: RSAKey) -> None:
    pem = tmp_path / "public.pem"
    pem.write_bytes(decryption_key.as_pem(private=False))
    config = {
        "issuer": "https://broker.example",
        "audience": AUDIENCE,
        "jwks_uri": "https://broker.example/jwks",
        "admin_token": ADMIN_TOKEN,
        "subject_salt": SALT,
        "decryption_key_file": str(pem),
    }
    with pytest.raises(PluginConfigError, match="holds a public key"):
        MediaServer(ServerConfig(port=0)).plugins.add(StrongAuthPlugin, config)


def test_only_asymmetric_signing_keys_of_the_jwks_are_used() -> None:
    with pytest.warns(SecurityWarning):
        small = RSAKey.generate_key(1024, parameters={"kid": "small"}, private=False)
    encryption = RSAKey.generate_key(2048, parameters={"kid": "enc", "use": "enc"}, private=False)
    good = ECKey.generate_key("P-384", parameters={"kid": "ec-384"})
    document = {
        "keys": [
            {"kty": "oct", "kid": "hmac", "k": b64url(b"a shared secret of 32 bytes.....")},
            small.as_dict(private=False),
            encryption.as_dict(private=False),
            good.as_dict(private=True),  # a careless broker: private members are dropped
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        ]
    }
    keys = parse_jwks(document)
    assert [k.kid for k in keys] == ["ec-384"]
    assert not keys[0].is_private
    assert key_fits(keys[0], "ES384") and not key_fits(keys[0], "ES256")
    assert not key_fits(keys[0], "RS256")


def test_an_audit_database_that_cannot_be_opened_fails_the_start(
    tmp_path: Path, decryption_key: RSAKey
) -> None:
    async def main() -> None:
        config = plugin_config(Issuer(), tmp_path, decryption_key)
        config.update(
            issuer="https://broker.example",
            jwks_uri="https://broker.example/jwks",
            audit_db=str(tmp_path / "missing" / "audit.sqlite3"),
        )
        server = MediaServer(ServerConfig(port=0))
        HttpFrontend(server)
        server.plugins.add(StrongAuthPlugin, config)
        try:
            with pytest.raises(PluginConfigError, match=r"plugins\.strongauth\.audit_db"):
                await server.start()
        finally:
            await server.close()

    run(main())
