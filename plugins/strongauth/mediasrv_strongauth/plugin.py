"""StrongAuthPlugin: strong electronic identification for joins, with an audit trail.

The join ``token`` is an OpenID Connect ID token from an identity broker (Finnish Trust
Network): signed (JWS) and usually encrypted to this service (JWE, RSA-OAEP). It is decrypted,
its signature verified against the broker's JWKS, its claims checked (issuer, audience, times,
nonce never seen before, level of assurance, national identity code present), and the person
becomes a pseudonymous :class:`~mediasrv.plugin.Identity`. Every attempt, accepted or refused,
is appended to the hash-chained audit trail (:mod:`mediasrv_strongauth.audit`), and joins and
leaves of identified peers too; ``GET /plugins/strongauth/audit`` and ``audit/verify`` let an
administrator read and check it (:mod:`mediasrv_strongauth.admin`).

The national identity code never leaves this plugin in clear: the subject is
HMAC-SHA256(subject_salt, code) in hex (first 32 characters), the code is not logged, and the
token kept as proof is stored encrypted. See plugins/strongauth/README.md.

Join tickets (:meth:`StrongAuthPlugin.issue_ticket`) let an application that identified a
person once (:meth:`StrongAuthPlugin.verify_person`) let them join a room later, and rejoin after
a network drop, without a fresh ID token: a ticket is a random single-use join ``token``
(``msat.`` + 43 characters) kept in memory only, and each join by ticket is audited as an
``accepted`` record whose ``ref`` is the identification it stands on.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import secrets
import sqlite3
import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from mediasrv.blocking_thread import BlockingThread
from mediasrv.plugin import (
    Denied,
    Identity,
    JoinRequest,
    Plugin,
    PluginConfigError,
    Setting,
    long_secret,
    non_empty,
    string_list,
    validate_config,
)
from mediasrv_strongauth import loa
from mediasrv_strongauth.admin import admin_routes
from mediasrv_strongauth.audit import AuditEntry, AuditLog, NonceClaim, ProofCipher
from mediasrv_strongauth.identity_code import birthdate_of
from mediasrv_strongauth.jwks import MIN_RSA_BITS, JwksCache
from mediasrv_strongauth.tokens import MAX_TOKEN, Refused, TokenVerifier, VerifiedToken, shown

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from aiohttp import web

    from mediasrv.media_server import MediaServer
    from mediasrv.peer import Peer
    from mediasrv.room import Room

log = logging.getLogger("mediasrv.plugins.strongauth")

P = ParamSpec("P")
T = TypeVar("T")

SUBJECT_HEX = 32  # characters of the HMAC kept as the pseudonymous subject (128 bits)
EIDAS_PERSON_ID = "http://eidas.europa.eu/attributes/naturalperson/PersonIdentifier"
GIVEN_NAME_CLAIMS = ("urn:oid:1.2.246.575.1.14", "urn:oid:2.5.4.42", "given_name")
FAMILY_NAME_CLAIMS = ("urn:oid:2.5.4.4", "family_name")
BIRTHDATE_CLAIMS = ("urn:oid:1.3.6.1.5.5.7.9.1", "birthdate")
MAX_DISPLAY_NAME = 128
MAX_IDENTITY_CODE = 256
TICKET_PREFIX = "msat."  # a join token with this prefix is a join ticket, not an ID token
MAX_TICKETS = 10000  # outstanding join tickets at most (each is a few hundred bytes)
MAX_TICKETS_PER_SUBJECT = 5  # a person's sixth replaces their oldest
MAX_TICKET_SECONDS = 3600.0


def _secure_uri(uri: object) -> bool:
    """https, or http to a loopback host (tests, a local sidecar)."""
    if not isinstance(uri, str):
        return False
    parts = urlsplit(uri)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1", "localhost")


def pseudonymous_subject(salt: str, identity_code: str) -> str:
    """The subject of a person: HMAC-SHA256 keyed by the salt, hex, truncated."""
    digest = hmac.new(salt.encode("utf-8"), identity_code.encode("utf-8"), hashlib.sha256)
    return digest.hexdigest()[:SUBJECT_HEX]


def _first_string(claims: Mapping[str, Any], names: tuple[str, ...]) -> str:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _amr(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _int_or_none(value: object) -> int | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    return None


def _identified(identity: Identity) -> dict[str, Any]:
    """The audit fields of an identification this plugin made (from its identity's claims)."""
    c = identity.claims
    return {
        "iss": _str_or_none(c.get("iss")),
        "sub": _str_or_none(c.get("sub")),
        "acr": _str_or_none(c.get("acr")),
        "amr": _amr(c.get("amr")),
        "auth_time": _int_or_none(c.get("auth_time")),
        "subject": identity.subject,
    }


def _str_or_none(value: object) -> str | None:
    return value[:512] if isinstance(value, str) else None


def _birthdate(claims: Mapping[str, Any], identity_code: str) -> str | None:
    """The person's birth date (ISO), from the date-of-birth claim or the identity code."""
    for name in BIRTHDATE_CLAIMS:
        value = claims.get(name)
        if isinstance(value, str):
            try:
                return date.fromisoformat(value[:10]).isoformat()
            except ValueError:
                continue
    born = birthdate_of(identity_code)
    return born.isoformat() if born is not None else None


@dataclass(frozen=True)
class _Ticket:
    """An outstanding join ticket: whom it admits, to which room, until when."""

    identity: Identity  # a copy, taken when the ticket was issued
    room: str
    expires_at: float  # plugin clock (unix seconds)

    @property
    def record(self) -> int:
        """The audit record of the identification the ticket stands on."""
        return int(self.identity.claims["audit_record"])


def _is_ticket(token: object) -> bool:
    return isinstance(token, str) and token.startswith(TICKET_PREFIX)


class StrongAuthPlugin(Plugin):
    name = "strongauth"
    config_schema = {
        "issuer": Setting(str, required=True, check=non_empty, help="the broker's iss"),
        "audience": Setting(
            str, required=True, check=non_empty, help="this service's client id (aud)"
        ),
        "jwks_uri": Setting(
            str,
            required=True,
            check=_secure_uri,
            help="the broker's JWKS URL (https; http only to a loopback host)",
        ),
        "min_acr": Setting(
            str,
            default=loa.FTN_LOA2,
            check=loa.is_known,
            help="lowest level of assurance: " + ", ".join(loa.LOA_RANK),
        ),
        "clock_skew": Setting(
            int, default=60, check=lambda n: 0 <= n <= 600, help="seconds, 0..600"
        ),
        "identity_claim": Setting(
            str, default="urn:oid:1.2.246.21", check=non_empty, help="national identity code"
        ),
        "role_claim": Setting(str, default="roles", check=non_empty, help="claim with roles"),
        "professional_roles": Setting(
            list,
            default=["professional"],
            check=string_list,
            help="roles taken from role_claim (others are ignored); nobody with none: client",
        ),
        "decryption_key_file": Setting(
            str, default="", help="PEM RSA private key for JWE ID tokens ('' for none)"
        ),
        "audit_db": Setting(
            str, default="strongauth-audit.sqlite3", check=non_empty, help="SQLite file"
        ),
        "admin_token": Setting(
            str,
            required=True,
            secret=True,
            check=long_secret,
            help="bearer token of the audit API (16+ characters)",
        ),
        "jwks_cache_seconds": Setting(
            int, default=300, check=lambda n: 1 <= n <= 86400, help="seconds, 1..86400"
        ),
        "subject_salt": Setting(
            str,
            required=True,
            secret=True,
            check=long_secret,
            help="HMAC key of the pseudonymous subjects and of the proof encryption "
            "(16+ characters; changing it changes every subject)",
        ),
    }

    def __init__(self, server: MediaServer, config: Mapping[str, Any]) -> None:
        super().__init__(server, validate_config(type(self), config))
        cfg = self.config
        self.professional_roles = frozenset(cfg["professional_roles"])
        self.jwks = JwksCache(cfg["jwks_uri"], cfg["jwks_cache_seconds"])
        self.verifier = TokenVerifier(
            issuer=cfg["issuer"],
            audience=cfg["audience"],
            jwks=self.jwks,
            clock_skew=cfg["clock_skew"],
            decryption_key=self._decryption_key(cfg["decryption_key_file"]),
        )
        self.clock: Callable[[], float] = time.time
        self.audit: AuditLog | None = None
        self._thread = BlockingThread("strongauth-audit")
        self._pending: set[asyncio.Task[None]] = set()
        self.counts: dict[str, int] = {}  # decisions and refusal codes
        self._tickets: dict[str, _Ticket] = {}  # join tickets (in memory only, never logged)

    @staticmethod
    def _decryption_key(path: str) -> RSAKey | None:
        if not path:
            return None
        where = "plugins.strongauth.decryption_key_file"
        try:
            key = RSAKey.import_key(Path(path).read_bytes())
        except OSError as exc:
            raise PluginConfigError(f"{where}: cannot read {path!r}: {exc.strerror}") from None
        except (JoseError, ValueError, TypeError):
            raise PluginConfigError(f"{where}: {path!r} is not a PEM RSA key") from None
        if not key.is_private:
            raise PluginConfigError(f"{where}: {path!r} holds a public key, not a private one")
        if key.private_key is None or key.private_key.key_size < MIN_RSA_BITS:
            raise PluginConfigError(f"{where}: the RSA key is shorter than {MIN_RSA_BITS} bits")
        return key

    # ---- life ----

    async def setup(self) -> None:
        self._thread.start()
        cipher = ProofCipher(self.config["subject_salt"])
        path = self.config["audit_db"]
        try:
            self.audit = await self.audit_call(AuditLog, path, cipher)
        except sqlite3.Error as exc:
            raise PluginConfigError(
                f"plugins.strongauth.audit_db: cannot open {path!r}: {exc}"
            ) from None
        self.on("peerjoined", self._peer_joined)
        self.on("peerleft", self._peer_left)

    async def close(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.jwks.close()
        if self.audit is not None:
            await self.audit_call(self.audit.close)
            self.audit = None
        self._thread.shutdown()

    async def audit_call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking audit work (SQLite, fsync) on the audit thread."""
        return await self._thread.call(fn, *args, **kwargs)

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    # ---- the gate ----

    async def authenticate(self, request: JoinRequest) -> Identity | None:
        if _is_ticket(request.token):
            return await self._redeem_ticket(request)
        try:
            token = await self.verifier.verify(request.token)
            identity_code = self._check_person(token)
        except Refused as refused:
            await self._audit_refusal(request, refused)
            raise
        except Exception as exc:
            log.error("strongauth: identification failed: %s", type(exc).__name__)
            failure = Refused("internal_error", "the identification could not be completed")
            await self._audit_refusal(request, failure)
            raise failure from None
        return await self._accept(request, token, identity_code)

    def _check_person(self, token: VerifiedToken) -> str:
        """The level of assurance and the person's identity code (returned, never kept)."""
        claims = token.claims
        acr = claims.get("acr")
        minimum = self.config["min_acr"]
        if acr is None:
            raise Refused(
                "loa_too_low", "the token has no acr (level of assurance) claim", claims=claims
            )
        if not loa.meets(acr, minimum):
            known = "" if loa.is_known(acr) else " (not a known level)"
            raise Refused(
                "loa_too_low",
                f"level of assurance {shown(acr)}{known} is below the required {minimum!r}",
                claims=claims,
            )
        claim = self.config["identity_claim"]
        code = claims.get(claim)
        if not (isinstance(code, str) and code.strip()):
            code = claims.get(EIDAS_PERSON_ID)  # foreign eIDAS users
        if not (isinstance(code, str) and code.strip()) or len(code) > MAX_IDENTITY_CODE:
            raise Refused(
                "identity_missing",
                f"the token carries no person identifier (claim {claim!r}, or the eIDAS "
                "PersonIdentifier)",
                claims=claims,
            )
        return code.strip()

    def _roles(self, claims: Mapping[str, Any]) -> frozenset[str]:
        value = claims.get(self.config["role_claim"])
        given = {value} if isinstance(value, str) else set(value) if isinstance(value, list) else ()
        roles = frozenset(r for r in given if isinstance(r, str)) & self.professional_roles
        return roles or frozenset({"client"})

    def _subject(self, claims: Mapping[str, Any] | None) -> str | None:
        """The pseudonymous subject of a verified token's person, if it names one."""
        if claims is None:
            return None
        code = claims.get(self.config["identity_claim"]) or claims.get(EIDAS_PERSON_ID)
        if not isinstance(code, str) or not code.strip() or len(code) > MAX_IDENTITY_CODE:
            return None
        return pseudonymous_subject(self.config["subject_salt"], code.strip())

    def subject_of(self, identity_code: str) -> str:
        """The pseudonymous subject of a national identity code (for audit queries)."""
        return pseudonymous_subject(self.config["subject_salt"], identity_code.strip())

    def _entry(
        self, request: JoinRequest, claims: Mapping[str, Any] | None, **fields: Any
    ) -> AuditEntry:
        c: Mapping[str, Any] = claims or {}
        return AuditEntry(
            room=request.room,
            remote=request.remote,
            iss=_str_or_none(c.get("iss")),
            sub=_str_or_none(c.get("sub")),
            acr=_str_or_none(c.get("acr")),
            amr=_amr(c.get("amr")) if claims is not None else None,
            auth_time=_int_or_none(c.get("auth_time")),
            iat=_int_or_none(c.get("iat")),
            nonce=_str_or_none(c.get("nonce")),
            sid=_str_or_none(c.get("sid")),
            subject=self._subject(claims),
            **fields,
        )

    async def _append_or_deny(
        self, entry: AuditEntry, what: str, nonce: NonceClaim | None = None
    ) -> tuple[int, bool]:
        """Append a record a join depends on: (id, nonce replayed). When the trail cannot take
        it the join is refused (``audit_unavailable``): nobody joins unaudited."""
        try:
            if self.audit is None:
                raise RuntimeError("strongauth is not set up (the server has not started)")
            found: tuple[int, bool] = await self.audit_call(
                self.audit.append, entry, now=self.clock(), nonce=nonce
            )
        except Exception as exc:
            self._count("audit_unavailable")
            log.error("strongauth: the audit trail refused a record: %s", type(exc).__name__)
            raise Denied(
                "audit_unavailable",
                f"the {what} could not be recorded in the audit trail; try again later",
            ) from None
        return found

    async def _accept(
        self, request: JoinRequest, token: VerifiedToken, identity_code: str
    ) -> Identity:
        claims = token.claims
        subject = pseudonymous_subject(self.config["subject_salt"], identity_code)
        entry = self._entry(request, claims, decision="accepted", proof=token.signed)
        nonce = NonceClaim(
            iss=claims["iss"],
            nonce=claims["nonce"],
            expires=int(claims["exp"]) + self.config["clock_skew"] + 1,
        )
        record_id, replayed = await self._append_or_deny(entry, "identification", nonce)
        if replayed:
            self._count("token_nonce_replayed")
            log.warning(
                "strongauth: refused token_nonce_replayed from %s (subject %s, record %d)",
                request.remote,
                subject,
                record_id,
            )
            raise Refused(
                "token_nonce_replayed",
                "the token's nonce has already been used: an ID token is accepted once",
            )
        self._count("accepted")
        log.info(
            "strongauth: identified subject %s (%s) for room %r from %s (record %d)",
            subject,
            claims.get("acr"),
            request.room,
            request.remote,
            record_id,
        )
        return self._identity(claims, identity_code, record_id)

    def _identity(self, claims: Mapping[str, Any], identity_code: str, record_id: int) -> Identity:
        subject = pseudonymous_subject(self.config["subject_salt"], identity_code)
        given = _first_string(claims, GIVEN_NAME_CLAIMS)
        family = _first_string(claims, FAMILY_NAME_CLAIMS)
        display = " ".join(n for n in (given, family) if n) or _first_string(claims, ("name",))
        return Identity(
            subject=subject,
            display_name=display[:MAX_DISPLAY_NAME],
            roles=self._roles(claims),
            method=str(claims.get("acr")),
            claims={
                "iss": claims.get("iss"),
                "sub": claims.get("sub"),
                "acr": claims.get("acr"),
                "amr": _amr(claims.get("amr")),
                "auth_time": _int_or_none(claims.get("auth_time")),
                "nonce": _str_or_none(claims.get("nonce")),
                "audit_record": record_id,
            },
            private={
                "identity_code": identity_code,
                "birthdate": _birthdate(claims, identity_code),
            },
        )

    async def _audit_refusal(
        self,
        request: JoinRequest,
        refused: Refused,
        purpose: str | None = None,
        *,
        ticket: _Ticket | None = None,
    ) -> None:
        """Count and record a refusal. For a join ticket (``request.token`` is one) the ticket
        is never the proof; ``ticket`` is the ticket found, if it was known (expired, another
        room): the record names its person and points to its identification then."""
        self._count(refused.code)
        if _is_ticket(request.token):
            proof = ""
        else:
            proof = refused.proof or (
                request.token[:MAX_TOKEN] if isinstance(request.token, str) else ""
            )
        entry = self._entry(
            request,
            refused.claims,
            decision="refused",
            reason=refused.code,
            proof=proof,
            detail={"purpose": purpose} if purpose else None,
        )
        if _is_ticket(request.token):
            entry = replace(
                entry,
                detail={"via": "ticket"},
                subject=ticket.identity.subject if ticket is not None else None,
                ref=ticket.record if ticket is not None else None,
            )
        log.info(
            "strongauth: refused %s from %s for room %r%s",
            refused.code,
            request.remote,
            request.room,
            f" (subject {entry.subject})" if entry.subject else "",
        )
        if self.audit is None:
            log.error("strongauth: not set up; refusal %s not recorded", refused.code)
            return
        try:
            await self.audit_call(self.audit.append, entry, now=self.clock())
        except Exception as exc:  # the refusal stands either way
            log.error("strongauth: could not record a refusal: %s", type(exc).__name__)

    # ---- join tickets ----

    def issue_ticket(self, identity: Identity, room: str, *, seconds: float = 120.0) -> str:
        """A single-use join ticket for a person this plugin identified (``verify_person``, or
        a peer's identity after a join): the ``token`` of one ``join`` of ``room`` within
        ``seconds`` (1..3600). The join is audited as ``accepted`` with ``ref`` = the
        identity's ``audit_record`` and ``detail.via = "ticket"``. Tickets live in memory only
        (a restart voids them); at most :data:`MAX_TICKETS` are outstanding (RuntimeError)."""
        if not isinstance(identity, Identity) or identity.plugin not in ("", self.name):
            raise ValueError("join tickets are issued only for identities strongauth established")
        record = identity.claims.get("audit_record")
        if not isinstance(record, int) or isinstance(record, bool):
            raise ValueError(
                "the identity has no audit_record: it was not established by strongauth"
            )
        if not isinstance(room, str) or not room:
            raise ValueError("room must be a non-empty string")
        if (
            not isinstance(seconds, (int, float))
            or isinstance(seconds, bool)
            or not math.isfinite(seconds)
            or not 1 <= seconds <= MAX_TICKET_SECONDS
        ):
            raise ValueError(f"seconds must be a number from 1 to {MAX_TICKET_SECONDS:g}")
        now = self.clock()
        self._sweep_tickets(now)
        mine = [t for t, held in self._tickets.items() if held.identity.subject == identity.subject]
        for old in mine[: max(0, len(mine) - MAX_TICKETS_PER_SUBJECT + 1)]:
            del self._tickets[old]  # oldest first (dicts keep insertion order)
        if len(self._tickets) >= MAX_TICKETS:
            raise RuntimeError("too many outstanding join tickets")
        kept = replace(identity, claims=dict(identity.claims), private=dict(identity.private))
        ticket = TICKET_PREFIX + secrets.token_urlsafe(32)
        self._tickets[ticket] = _Ticket(kept, room, now + seconds)
        self._count("ticket_issued")
        log.info(
            "strongauth: issued a join ticket for subject %s, room %r, %g s (record %d)",
            identity.subject,
            room,
            seconds,
            record,
        )
        return ticket

    def _sweep_tickets(self, now: float) -> None:
        expired = [t for t, ticket in self._tickets.items() if now >= ticket.expires_at]
        for t in expired:
            del self._tickets[t]

    def _check_ticket(self, ticket: _Ticket | None, request: JoinRequest) -> _Ticket:
        """The ticket found for this join, if it may admit it; Refused otherwise."""
        if ticket is None:
            raise Refused("ticket_invalid", "the join ticket is unknown or has already been used")
        claims = dict(ticket.identity.claims)  # the identification's, for the refusal record
        if self.clock() >= ticket.expires_at:
            raise Refused("ticket_expired", "the join ticket has expired", claims=claims)
        if ticket.room != request.room:
            raise Refused(
                "ticket_room", "the join ticket was issued for another room", claims=claims
            )
        return ticket

    async def _redeem_ticket(self, request: JoinRequest) -> Identity:
        """A join by ticket: the ticket is used up whatever the outcome; the join is audited as
        ``accepted`` with ``ref`` = the identification the ticket stands on."""
        found = self._tickets.pop(request.token, None)
        try:
            ticket = self._check_ticket(found, request)
        except Refused as refused:
            await self._audit_refusal(request, refused, ticket=found)
            raise
        identity = ticket.identity
        entry = AuditEntry(
            decision="accepted",
            room=request.room,
            remote=request.remote,
            **_identified(identity),
            ref=ticket.record,
            detail={"via": "ticket"},
        )
        record_id, _ = await self._append_or_deny(entry, "join")
        self._count("accepted")
        log.info(
            "strongauth: admitted subject %s by join ticket for room %r from %s "
            "(record %d, identification %d)",
            identity.subject,
            request.room,
            request.remote,
            record_id,
            ticket.record,
        )
        return Identity(
            subject=identity.subject,
            display_name=identity.display_name,
            roles=identity.roles,
            method=identity.method,
            claims={**identity.claims, "audit_record": record_id},
            private=dict(identity.private),
        )

    # ---- joins and leaves of identified peers ----

    def _peer_entry(self, decision: str, room: Room, peer: Peer) -> AuditEntry | None:
        identity = getattr(peer, "identity", None) or peer.app_data.get("identity")
        if not isinstance(identity, Identity) or identity.plugin not in ("", self.name):
            return None
        record = identity.claims.get("audit_record")
        if not isinstance(record, int):
            return None
        on_behalf = peer.app_data.get("on_behalf")
        acting = on_behalf if isinstance(on_behalf, dict) else {}
        return AuditEntry(
            decision=decision,
            room=room.id,
            peer=peer.id,
            principal=_str_or_none(acting.get("principal")),
            basis=_str_or_none(acting.get("basis")),
            detail=(
                {"grant": acting.get("grant"), "decision_record": acting.get("record")}
                if acting
                else None
            ),
            **_identified(identity),
            ref=record,
        )

    def _peer_joined(self, room: Room, peer: Peer) -> None:
        self._record_later(self._peer_entry("joined", room, peer))

    def _peer_left(self, room: Room, peer: Peer) -> None:
        self._record_later(self._peer_entry("left", room, peer))

    def _record_later(self, entry: AuditEntry | None) -> None:
        if entry is None or self.audit is None:
            return
        audit = self.audit
        now = self.clock()

        async def write() -> None:
            try:
                await self.audit_call(audit.append, entry, now=now)
            except Exception as exc:
                log.error("strongauth: could not record %s: %s", entry.decision, type(exc).__name__)

        task = asyncio.get_running_loop().create_task(write())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # ---- for other plugins ----

    async def record(self, entry: AuditEntry) -> int:
        """Append a record to the audit trail (fsynced when this returns); its id. Raises
        when the trail cannot take it: a caller that must not act unaudited refuses then."""
        if self.audit is None:
            raise RuntimeError("strongauth is not set up (the server has not started)")
        record_id, _ = await self.audit_call(self.audit.append, entry, now=self.clock())
        return record_id

    async def verify_person(self, token: object, remote: str, purpose: str) -> Identity:
        """Identify a person by an ID token for something other than a join (e.g. listing
        whom they may act for), without using up the token's nonce: the same token can join
        afterwards. Audited as ``verified`` (or ``refused``) with ``detail.purpose``; raises
        :class:`Refused` like a join would."""
        request = JoinRequest(
            token=token if isinstance(token, str) else "",
            room="",
            display_name="",
            params={},
            remote=remote,
            headers={},
        )
        try:
            verified = await self.verifier.verify(token)
            identity_code = self._check_person(verified)
        except Refused as refused:
            await self._audit_refusal(request, refused, purpose)
            raise
        except Exception as exc:
            log.error("strongauth: identification failed: %s", type(exc).__name__)
            failure = Refused("internal_error", "the identification could not be completed")
            await self._audit_refusal(request, failure, purpose)
            raise failure from None
        claims = verified.claims
        entry = self._entry(
            request, claims, decision="verified", proof=verified.signed, detail={"purpose": purpose}
        )
        try:
            record_id = await self.record(entry)
        except Exception as exc:
            log.error("strongauth: the audit trail refused a record: %s", type(exc).__name__)
            raise Denied(
                "audit_unavailable",
                "the identification could not be recorded in the audit trail; try again later",
            ) from None
        return self._identity(claims, identity_code, record_id)

    async def flush(self) -> None:
        """Wait for the join/leave records being written."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    # ---- HTTP ----

    def routes(self) -> list[web.RouteDef]:
        return admin_routes(self)
