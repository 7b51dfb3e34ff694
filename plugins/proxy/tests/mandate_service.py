"""A local test double of the mandate service: the Suomi.fi e-Authorizations ("Valtuudet") Web
API in person-on-behalf-of-person mode ("HPA"), served by aiohttp on 127.0.0.1 at a random port.

    async with MandateService("client-1", "api-key", "oauth-secret") as service:
        service.add_person("010180-9026", "Maija Meikäläinen")
        service.add_person("241010A947N", "Matti Meikäläinen")
        service.add_mandate("010180-9026", "241010A947N", ["health_visit"])
        client = MandateServiceClient(service.url, "client-1", "api-key", "oauth-secret")

Endpoints, checked as the real service checks them:

- ``GET /service/hpa/user/register/{clientId}/{delegateId}?requestId=`` → ``{sessionId, userId}``
- ``GET /oauth/authorize?client_id=&response_type=code&redirect_uri=&user=&lang=`` → 302
- ``POST /oauth/token?grant_type=authorization_code&redirect_uri=&code=`` (HTTP Basic auth with
  the client id and OAuth secret) → ``{access_token, token_type: "bearer", expires_in}``
- ``GET /service/hpa/api/delegate/{sessionId}?requestId=`` (Bearer token) → ``[{personId, name}]``
- ``GET /service/hpa/api/authorization/{sessionId}/{principalId}?requestId=&issues=a,b``
  (Bearer token) → ``{result: ALLOWED|DISALLOWED, reasons: [...], principalId}``

The register, delegate and authorization calls must carry ``X-AsiointivaltuudetAuthorization:
<clientId> <timestamp> <base64 HMAC-SHA256(api key, raw path with query + timestamp)>`` with the
timestamp as ``2026-11-23T10:15:30.123Z`` within ±5 minutes of the service's clock; a missing or
malformed header, an unknown client id, a skewed timestamp or a wrong HMAC is answered 401 with a
JSON ``{"error": ...}``. A wrong Basic auth on the token endpoint is 401 ``invalid_client``, a
missing or wrong Bearer token (each token belongs to one session) 401 ``invalid_token``, an
unknown, used or expired code or a different redirect_uri 400 ``invalid_grant``.

Simplification at ``/oauth/authorize``: tests have no human to pick principals, so the service
answers at once with a 302 to ``redirect_uri?code=<fresh code>`` (``&state=`` echoed when given)
as if the person had selected every principal the delegate has mandates for (expired ones
included, as the real selection page would list them and the authorization call then refuses).
The extra query parameter ``select=<personId>`` limits the selection to that one person; it may
name anyone, even a person without a mandate, so that tests can reach the ``no_mandate`` answer.
``cancel=1`` redirects with ``error=access_denied`` as if the person cancelled.

Decisions: ALLOWED when the delegate's valid mandates for the principal together cover every
requested issue; else DISALLOWED with the reasons ``no_mandate`` (no mandate at all),
``not_selected`` (the principal was not chosen in this session), ``mandate_expired`` (an issue is
covered only by expired mandates) and ``issue_not_covered:<issue>``.

For tests: ``mode`` is ``"ok"``, ``"down"`` (503 on every call), ``"hang"`` (every request is
accepted and never answered until :meth:`MandateService.stop`) or ``"garbage"`` (200 with a body
that is not JSON); :meth:`MandateService.reply` makes one endpoint answer a canned body (after
the request passed the credential checks). ``calls`` counts requests per endpoint name
(``register``, ``authorize``, ``token``, ``delegate``, ``authorization``), ``last_headers`` and
``last_path`` hold the last request's headers and raw path with query, ``headers[endpoint]`` the
last headers seen per endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode

from aiohttp import web

Mode = Literal["ok", "down", "hang", "garbage"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HEADER = "X-AsiointivaltuudetAuthorization"
MAX_SKEW_SECONDS = 300.0
CODE_SECONDS = 600.0
TOKEN_SECONDS = 600
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@dataclass
class Mandate:
    """A mandate: the delegate may act for the principal in these issues until ``valid_until``."""

    delegate_id: str
    principal_id: str
    issues: frozenset[str]
    valid_until: datetime | None = None


@dataclass
class _Session:
    delegate_id: str
    user_id: str
    selected: list[str] | None = None  # set by /oauth/authorize


@dataclass
class _Grant:
    session_id: str
    redirect_uri: str
    expires: float


@dataclass
class _Canned:
    status: int
    body: Any
    raw: bool = field(default=False)


def _error(status: int, error: str) -> web.Response:
    return web.json_response({"error": error}, status=status)


class MandateService:
    """The test double (see the module docstring); an async context manager."""

    def __init__(
        self,
        client_id: str,
        api_key: str,
        oauth_secret: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self.api_key = api_key
        self.oauth_secret = oauth_secret
        self.clock = clock
        self.mode: Mode = "ok"
        self.url = ""
        self.calls: Counter[str] = Counter()
        self.last_headers: dict[str, str] = {}
        self.last_path = ""
        self.headers: dict[str, dict[str, str]] = {}
        self.persons: dict[str, str] = {}
        self.mandates: list[Mandate] = []
        self._sessions: dict[str, _Session] = {}
        self._users: dict[str, str] = {}  # user id → session id
        self._codes: dict[str, _Grant] = {}
        self._tokens: dict[str, tuple[str, float]] = {}  # token → (session id, expiry)
        self._canned: dict[str, _Canned] = {}
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # ---- fixture data ----

    def add_person(self, person_id: str, name: str) -> None:
        """A person known to the service (the name is what the delegate list shows)."""
        self.persons[person_id] = name

    def add_mandate(
        self,
        delegate_id: str,
        principal_id: str,
        issues: list[str],
        valid_until: datetime | None = None,
    ) -> None:
        """The delegate may act for the principal in ``issues`` (until ``valid_until``, if given;
        a naive datetime is taken as UTC)."""
        if valid_until is not None and valid_until.tzinfo is None:
            valid_until = valid_until.replace(tzinfo=UTC)
        self.mandates.append(Mandate(delegate_id, principal_id, frozenset(issues), valid_until))

    def reply(self, endpoint: str, body: Any, status: int = 200, *, raw: bool = False) -> None:
        """Make ``endpoint`` answer ``body`` (as JSON, or as text when ``raw``) from now on."""
        self._canned[endpoint] = _Canned(status, body, raw)

    def clear_replies(self) -> None:
        """Back to the real answers."""
        self._canned.clear()

    # ---- lifecycle ----

    async def start(self) -> None:
        """Serve on 127.0.0.1 at a random port; ``url`` is then ``http://127.0.0.1:<port>``."""
        self._release = asyncio.Event()
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get(
            "/service/hpa/user/register/{client_id}/{delegate_id}", self._register, name="register"
        )
        app.router.add_get("/oauth/authorize", self._authorize, name="authorize")
        app.router.add_post("/oauth/token", self._token, name="token")
        app.router.add_get(
            "/service/hpa/api/delegate/{session_id}", self._delegate, name="delegate"
        )
        app.router.add_get(
            "/service/hpa/api/authorization/{session_id}/{principal_id}",
            self._authorization,
            name="authorization",
        )
        # no access log: the paths hold identity codes, and tests assert none is logged
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop serving (requests held by the "hang" mode are answered 503 first)."""
        self._release.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> MandateService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ---- common checks ----

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        endpoint = request.match_info.route.name or "unknown"
        self.calls[endpoint] += 1
        self.last_headers = dict(request.headers)
        self.headers[endpoint] = self.last_headers
        self.last_path = request.raw_path
        if self.mode == "down":
            return _error(503, "service_unavailable")
        if self.mode == "hang":
            await self._release.wait()
            return _error(503, "service_unavailable")
        if self.mode == "garbage":
            return web.Response(status=200, text="<html><body>Huoltokatko</body></html>")
        return await handler(request)

    def _canned_reply(self, endpoint: str) -> web.Response | None:
        canned = self._canned.get(endpoint)
        if canned is None:
            return None
        if canned.raw:
            return web.Response(status=canned.status, text=str(canned.body))
        return web.json_response(canned.body, status=canned.status)

    def _checksum_refusal(self, request: web.Request) -> web.Response | None:
        """None when the X-AsiointivaltuudetAuthorization header is right, else the 401."""
        value = request.headers.get(HEADER)
        if value is None:
            return _error(401, "missing_checksum")
        parts = value.split(" ")
        if len(parts) != 3:
            return _error(401, "malformed_checksum")
        client_id, stamp, checksum = parts
        if client_id != self.client_id:
            return _error(401, "unknown_client")
        if not _TIMESTAMP.fullmatch(stamp):
            return _error(401, "invalid_timestamp")
        try:
            sent = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        except ValueError:
            return _error(401, "invalid_timestamp")
        if abs(sent.timestamp() - self.clock()) > MAX_SKEW_SECONDS:
            return _error(401, "timestamp_skew")
        expected = hmac.new(
            self.api_key.encode("utf-8"),
            (request.raw_path + stamp).encode("utf-8"),
            hashlib.sha256,
        ).digest()
        if not hmac.compare_digest(base64.b64encode(expected).decode("ascii"), checksum):
            return _error(401, "invalid_checksum")
        return None

    def _bearer_refusal(self, request: web.Request, session_id: str) -> web.Response | None:
        value = request.headers.get("Authorization", "")
        scheme, _, token = value.partition(" ")
        held = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if held is None or held[0] != session_id or held[1] < self.clock():
            return _error(401, "invalid_token")
        return None

    def _basic_ok(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        client_id, _, secret = decoded.partition(":")
        return hmac.compare_digest(client_id, self.client_id) and hmac.compare_digest(
            secret.encode("utf-8"), self.oauth_secret.encode("utf-8")
        )

    # ---- endpoints ----

    async def _register(self, request: web.Request) -> web.Response:
        refusal = self._checksum_refusal(request)
        if refusal is not None:
            return refusal
        if request.match_info["client_id"] != self.client_id:
            return _error(401, "unknown_client")
        if not request.query.get("requestId"):
            return _error(400, "missing_request_id")
        canned = self._canned_reply("register")
        if canned is not None:
            return canned
        session_id = uuid.uuid4().hex
        user_id = secrets.token_urlsafe(12)
        self._sessions[session_id] = _Session(request.match_info["delegate_id"], user_id)
        self._users[user_id] = session_id
        return web.json_response({"sessionId": session_id, "userId": user_id})

    async def _authorize(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("client_id") != self.client_id:
            return web.Response(status=400, text="unknown client")
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri:
            return web.Response(status=400, text="no redirect_uri")
        if query.get("response_type") != "code":
            return web.Response(status=400, text="response_type must be code")
        if query.get("lang", "fi") not in ("fi", "sv", "en"):
            return web.Response(status=400, text="unsupported lang")
        session_id = self._users.get(query.get("user", ""))
        if session_id is None:
            return web.Response(status=400, text="unknown user")
        canned = self._canned_reply("authorize")
        if canned is not None:
            return canned
        params: dict[str, str] = {}
        if query.get("cancel") == "1":
            params["error"] = "access_denied"
        else:
            session = self._sessions[session_id]
            if "select" in query:
                session.selected = [query["select"]]
            else:
                session.selected = list(
                    dict.fromkeys(
                        m.principal_id
                        for m in self.mandates
                        if m.delegate_id == session.delegate_id
                    )
                )
            code = secrets.token_urlsafe(16)
            self._codes[code] = _Grant(session_id, redirect_uri, self.clock() + CODE_SECONDS)
            params["code"] = code
        if "state" in query:
            params["state"] = query["state"]
        separator = "&" if "?" in redirect_uri else "?"
        raise web.HTTPFound(redirect_uri + separator + urlencode(params))

    async def _token(self, request: web.Request) -> web.Response:
        if not self._basic_ok(request):
            return _error(401, "invalid_client")
        query = request.query
        if query.get("grant_type") != "authorization_code":
            return _error(400, "unsupported_grant_type")
        canned = self._canned_reply("token")
        if canned is not None:
            return canned
        grant = self._codes.pop(query.get("code", ""), None)
        if (
            grant is None
            or grant.expires < self.clock()
            or grant.redirect_uri != query.get("redirect_uri")
        ):
            return _error(400, "invalid_grant")
        token = secrets.token_urlsafe(24)
        self._tokens[token] = (grant.session_id, self.clock() + TOKEN_SECONDS)
        return web.json_response(
            {"access_token": token, "token_type": "bearer", "expires_in": TOKEN_SECONDS}
        )

    async def _delegate(self, request: web.Request) -> web.Response:
        refusal = self._checksum_refusal(request)
        if refusal is not None:
            return refusal
        session_id = request.match_info["session_id"]
        refusal = self._bearer_refusal(request, session_id)
        if refusal is not None:
            return refusal
        if not request.query.get("requestId"):
            return _error(400, "missing_request_id")
        canned = self._canned_reply("delegate")
        if canned is not None:
            return canned
        session = self._sessions.get(session_id)
        if session is None:
            return _error(404, "unknown_session")
        return web.json_response(
            [{"personId": p, "name": self.persons.get(p, "")} for p in session.selected or []]
        )

    async def _authorization(self, request: web.Request) -> web.Response:
        refusal = self._checksum_refusal(request)
        if refusal is not None:
            return refusal
        session_id = request.match_info["session_id"]
        refusal = self._bearer_refusal(request, session_id)
        if refusal is not None:
            return refusal
        if not request.query.get("requestId"):
            return _error(400, "missing_request_id")
        issues = [i for i in request.query.get("issues", "").split(",") if i]
        if not issues:
            return _error(400, "missing_issues")
        canned = self._canned_reply("authorization")
        if canned is not None:
            return canned
        session = self._sessions.get(session_id)
        if session is None:
            return _error(404, "unknown_session")
        principal_id = request.match_info["principal_id"]
        reasons = self.decide(session.delegate_id, principal_id, issues)
        if principal_id not in (session.selected or []):
            reasons = ["not_selected"]
        return web.json_response(
            {
                "result": "DISALLOWED" if reasons else "ALLOWED",
                "reasons": reasons,
                "principalId": principal_id,
            }
        )

    def decide(self, delegate_id: str, principal_id: str, issues: list[str]) -> list[str]:
        """The reasons to refuse (an empty list: ALLOWED), from the fixture mandates alone."""
        mandates = [
            m
            for m in self.mandates
            if m.delegate_id == delegate_id and m.principal_id == principal_id
        ]
        if not mandates:
            return ["no_mandate"]
        now = self.clock()
        valid = [m for m in mandates if m.valid_until is None or m.valid_until.timestamp() > now]
        lapsed = [
            m for m in mandates if m.valid_until is not None and m.valid_until.timestamp() <= now
        ]
        covered: frozenset[str] = frozenset().union(*(m.issues for m in valid))
        expired: frozenset[str] = frozenset().union(*(m.issues for m in lapsed))
        reasons: list[str] = []
        for issue in issues:
            if issue in covered:
                continue
            reason = "mandate_expired" if issue in expired else f"issue_not_covered:{issue}"
            if reason not in reasons:
                reasons.append(reason)
        return reasons
