"""The audit API, mounted under /plugins/strongauth/ (``Authorization: Bearer <admin_token>``).

``GET audit?subject=&since=&until=&room=&after=&limit=``
    Records in id order, at most ``limit`` (default 100, at most 1000); ``next_after`` is the
    ``after`` of the next page (null at the end). ``subject`` is a pseudonymous subject (32 hex
    characters) or a national identity code, which is hashed with the subject salt first;
    ``principal`` (the same forms) selects the records of people acting on that person's behalf.
    ``since`` (inclusive) and ``until`` (exclusive) are ISO 8601 times (UTC when no offset is
    given) or Unix seconds.
``POST audit`` with the same fields in a JSON object
    The same query, for identity codes that should not appear in URLs (proxies log URLs).
    ``"proof": true`` adds each record's decrypted token, only when ``subject`` is a national
    identity code: whoever asks already knows the person.
``GET audit/verify``
    ``{"ok", "first_broken", "records", "head"}``: the hash chain checked from the first record.

Records show the pseudonymous subject, never the identity code; the token kept as proof is
shown only as above. Every call is logged (the query, never an identity code).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web

from mediasrv.http.json_body import BadRequest, read_object
from mediasrv_strongauth.audit import COLUMNS, MAX_LIMIT, AuditLog, utc_text

log = logging.getLogger("mediasrv.plugins.strongauth")

PSEUDONYM = re.compile(r"^[0-9a-f]{32}$")
DEFAULT_LIMIT = 100
# every column but the encrypted proof (shown only when asked for by identity code)
SHOWN_COLUMNS = tuple(column for column in COLUMNS if column != "proof")


class AuditApiHost(Protocol):
    """What the audit API uses of its plugin (a StrongAuthPlugin is one): the admin token in
    its configuration, its audit trail (None until set up), and the pseudonymous subject of a
    national identity code."""

    @property
    def config(self) -> Mapping[str, Any]: ...

    @property
    def audit(self) -> AuditLog | None: ...

    def subject_of(self, identity_code: str) -> str: ...


class BadQuery(Exception):
    pass


def parse_time(name: str, value: object) -> str | None:
    """An ISO 8601 time or Unix seconds as the audit trail's time text."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = datetime.fromisoformat(value)
            except ValueError:
                raise BadQuery(f"{name}: not an ISO 8601 time or Unix seconds") from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = when.timestamp()
    else:
        raise BadQuery(f"{name}: not an ISO 8601 time or Unix seconds")
    try:
        return utc_text(seconds)
    except (OverflowError, OSError, ValueError):
        raise BadQuery(f"{name}: out of range") from None


def parse_int(name: str, value: object, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    number: int | None = None
    if isinstance(value, int | str) and not isinstance(value, bool):
        try:
            number = int(value)
        except ValueError:
            number = None
    if number is None or not low <= number <= high:
        raise BadQuery(f"{name}: an integer in {low}..{high}")
    return number


def _string(name: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 256:
        raise BadQuery(f"{name}: a string of at most 256 characters")
    return value


def _open_proof(plugin: AuditApiHost, sealed: str | None) -> str | None:
    if not sealed or plugin.audit is None:
        return None
    try:
        return plugin.audit.open_proof(sealed)
    except Exception as exc:  # sealed under another salt, or damaged
        log.error("strongauth: a proof could not be opened: %s", type(exc).__name__)
        return None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def admin_routes(plugin: AuditApiHost) -> list[web.RouteDef]:
    expected = f"Bearer {plugin.config['admin_token']}".encode()

    def authorized(request: web.Request) -> bool:
        given = request.headers.get("Authorization", "").encode("utf-8", "replace")
        return hmac.compare_digest(given, expected)

    def unauthorized(request: web.Request) -> web.Response:
        log.warning("strongauth: audit API refused %s without a valid token", request.remote)
        return web.json_response(
            {"error": "a valid 'Authorization: Bearer <admin_token>' header is required"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="strongauth-audit"'},
        )

    async def query(request: web.Request, fields: dict[str, Any]) -> web.Response:
        if plugin.audit is None:
            return _error(503, "the audit trail is not open (the server has not started)")
        try:
            raw_subject = _string("subject", fields.get("subject"))
            by_code = raw_subject is not None and not PSEUDONYM.match(raw_subject)
            subject = plugin.subject_of(raw_subject) if by_code and raw_subject else raw_subject
            raw_principal = _string("principal", fields.get("principal"))
            principal = (
                plugin.subject_of(raw_principal)
                if raw_principal and not PSEUDONYM.match(raw_principal)
                else raw_principal
            )
            proof = fields.get("proof") in (True, "1", "true")
            if proof and not by_code:
                raise BadQuery("proof: only with a subject given as a national identity code")
            limit = parse_int("limit", fields.get("limit"), DEFAULT_LIMIT, 1, MAX_LIMIT)
            after = parse_int("after", fields.get("after"), 0, 0, 2**62)
            since = parse_time("since", fields.get("since"))
            until = parse_time("until", fields.get("until"))
            room = _string("room", fields.get("room"))
        except BadQuery as exc:
            return _error(400, str(exc))
        audit = plugin.audit
        rows = await asyncio.to_thread(
            audit.query,
            subject=subject,
            principal=principal,
            since=since,
            until=until,
            room=room,
            after=after,
            limit=limit,
        )
        records = []
        for row in rows:
            record = {c: row[c] for c in SHOWN_COLUMNS}
            record["amr"] = json.loads(row["amr"]) if row["amr"] else None
            record["detail"] = json.loads(row["detail"]) if row["detail"] else None
            if proof:
                record["proof"] = _open_proof(plugin, row["proof"])
            records.append(record)
        log.info(
            "strongauth: audit query from %s: subject=%s principal=%s since=%s until=%s "
            "room=%r -> %d%s",
            request.remote,
            subject,
            principal,
            since,
            until,
            room,
            len(records),
            " with proofs" if proof else "",
        )
        return web.json_response(
            {
                "records": records,
                "count": len(records),
                "limit": limit,
                "next_after": records[-1]["id"] if len(records) == limit else None,
            }
        )

    async def get_audit(request: web.Request) -> web.Response:
        if not authorized(request):
            return unauthorized(request)
        return await query(request, dict(request.query))

    async def post_audit(request: web.Request) -> web.Response:
        if not authorized(request):
            return unauthorized(request)
        try:
            fields = await read_object(request)
        except BadRequest as bad:
            return _error(bad.status, bad.message)
        return await query(request, fields)

    async def verify(request: web.Request) -> web.Response:
        if not authorized(request):
            return unauthorized(request)
        if plugin.audit is None:
            return _error(503, "the audit trail is not open (the server has not started)")
        first_broken = await asyncio.to_thread(plugin.audit.verify_chain)
        records, head = await asyncio.to_thread(plugin.audit.head)
        log.info(
            "strongauth: audit chain verified from %s: first broken %s",
            request.remote,
            first_broken,
        )
        return web.json_response(
            {
                "ok": first_broken is None,
                "first_broken": first_broken,
                "records": records,
                "head": head,
            }
        )

    return [
        web.get("/audit", get_audit),
        web.post("/audit", post_audit),
        web.get("/audit/verify", verify),
    ]
