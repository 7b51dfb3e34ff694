"""A client of the mandate service: the Suomi.fi e-Authorizations ("Valtuudet") Web API in the
person-on-behalf-of-person mode ("HPA").

The flow, one :class:`MandateServiceClient` method a step:

1. :meth:`~MandateServiceClient.register` opens a session for the delegate (the person who wants
   to act on behalf of someone else) and returns a :class:`HpaSession`;
2. :meth:`~MandateServiceClient.authorize_url` is where the person's browser is sent to choose the
   principal(s); the service then redirects the browser to ``redirect_uri?code=...``;
3. :meth:`~MandateServiceClient.token` trades that code for an access token (HTTP Basic auth with
   the client id and the OAuth secret);
4. :meth:`~MandateServiceClient.delegates` lists the principals the person chose
   (:class:`HpaPrincipal`);
5. :meth:`~MandateServiceClient.authorization` asks whether the person may act for one principal
   in the given issues (:class:`HpaDecision`).

Steps 1, 4 and 5 are signed with the ``X-AsiointivaltuudetAuthorization`` header
(:meth:`~MandateServiceClient.checksum_header`): the client id, an ISO 8601 UTC timestamp with
milliseconds and ``base64(HMAC-SHA256(api key, path-with-query + timestamp))``. The service refuses
a timestamp more than 5 minutes off its own clock, so the host clock must be kept in time.

Every call is bounded by ``timeout`` seconds in all (connecting, sending, waiting, reading) and
every failure raises :class:`MandateServiceError` with one of three codes:

- ``mandate_service_unavailable``: the service could not be reached, did not answer in time, or
  answered 5xx (or 429): try again later;
- ``mandate_service_refused``: the service answered 401 or 403, so our client id, API key, OAuth
  secret or request signature were refused: a configuration (or clock) problem;
- ``mandate_service_error``: any other 4xx, a redirect, a body that is not JSON or a JSON
  document of the wrong shape; the message says what was wrong.

Answers are validated strictly: at most 100 principals, each with a well-formed Finnish identity
code (check character included) and a name of at most 200 characters; a decision is ``ALLOWED`` or
``DISALLOWED`` with at most 50 reasons of at most 200 characters each.

Privacy: identity codes and tokens go into the URLs and headers sent to the service, and nowhere
else. They never appear in log messages or exception messages (an error says "principal", not the
code), exceptions are raised ``from None`` (the underlying aiohttp error, whose text may hold the
URL, is neither the cause nor printed in tracebacks), and :class:`HpaPrincipal` leaves the
identity code out of its ``repr``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from mediasrv_strongauth.identity_code import is_identity_code
from yarl import URL

log = logging.getLogger("mediasrv.plugins.proxy")

CHECKSUM_HEADER = "X-AsiointivaltuudetAuthorization"

UNAVAILABLE = "mandate_service_unavailable"
REFUSED = "mandate_service_refused"
ERROR = "mandate_service_error"

MAX_PRINCIPALS = 100
MAX_NAME_CHARS = 200
MAX_REASONS = 50
MAX_REASON_CHARS = 200
MAX_ISSUES = 50
MAX_ISSUE_CHARS = 200
MAX_ID_CHARS = 256  # session ids, user ids
MAX_TOKEN_CHARS = 4096
MAX_BODY_BYTES = 1 << 20
LANGUAGES = frozenset({"fi", "sv", "en"})

_SAFE_ERROR_CODE = re.compile(r"[A-Za-z_]{1,64}")  # letters only: never an identity code
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class MandateServiceError(Exception):
    """A call to the mandate service failed.

    ``code`` is ``mandate_service_unavailable``, ``mandate_service_refused`` or
    ``mandate_service_error`` (see the module docstring); ``message`` is for people and holds no
    identity code or token. ``str(exc)`` is the message.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"MandateServiceError({self.code!r}, {self.message!r})"


@dataclass(frozen=True, slots=True)
class HpaSession:
    """A session registered for one delegate: ``session_id`` goes into the API paths, ``user_id``
    into the user-facing authorize URL."""

    session_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class HpaPrincipal:
    """A principal the person chose and may act for (the identity code is left out of repr)."""

    person_id: str = field(repr=False)
    name: str


@dataclass(frozen=True, slots=True)
class HpaDecision:
    """The service's answer for one principal and set of issues."""

    allowed: bool
    reasons: tuple[str, ...] = ()


class MandateServiceClient:
    """An async client of the mandate service (HPA mode); see the module docstring.

    ``base_url`` is the service root (``https://host`` or ``https://host/prefix``); ``clock``
    gives the time for the signature timestamps (seconds since the epoch, like
    :func:`time.time`). The aiohttp session is created at the first call and closed by
    :meth:`close`; a closed client may be used again (a new session is created).
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        api_key: str,
        oauth_secret: str,
        *,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("base_url must be an http or https URL")
        if parts.query or parts.fragment:
            raise ValueError("base_url must not have a query or a fragment")
        if not client_id or any(c.isspace() or c == ":" for c in client_id):
            raise ValueError("client_id must be non-empty, without spaces or colons")
        if not api_key or not oauth_secret:
            raise ValueError("api_key and oauth_secret must be non-empty")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        self.base_url = base_url.rstrip("/")
        self._base_path = urlsplit(self.base_url).path
        self.client_id = client_id
        self._api_key = api_key.encode("utf-8")
        self._oauth_secret = oauth_secret
        self.timeout = float(timeout)
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the HTTP session (if one was opened)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> MandateServiceClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ---- signing ----

    def timestamp(self) -> str:
        """The current time as the service wants it: ``2026-11-23T10:15:30.123Z``."""
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        return f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}Z"

    def checksum_header(self, path_and_query: str) -> str:
        """The ``X-AsiointivaltuudetAuthorization`` value for a request to ``path_and_query``.

        ``path_and_query`` is the request path plus ``?query`` exactly as sent (percent-encoding
        included, and the base URL's path prefix, if any, in front).
        """
        stamp = self.timestamp()
        digest = hmac.new(
            self._api_key, (path_and_query + stamp).encode("utf-8"), hashlib.sha256
        ).digest()
        return f"{self.client_id} {stamp} {base64.b64encode(digest).decode('ascii')}"

    # ---- the API ----

    async def register(self, delegate_person_id: str) -> HpaSession:
        """Step 1: open a session for the delegate (the person signed in)."""
        _check_person(delegate_person_id, "delegate")
        path = (
            f"/service/hpa/user/register/{_segment(self.client_id)}/{_segment(delegate_person_id)}"
            f"?requestId={uuid.uuid4()}"
        )
        data = await self._call("register", "GET", path, signed=True)
        if not isinstance(data, dict):
            _malformed("register", "the answer is not a JSON object")
        session_id = _identifier(data.get("sessionId"), "register", "sessionId")
        user_id = _identifier(data.get("userId"), "register", "userId")
        return HpaSession(session_id=session_id, user_id=user_id)

    def authorize_url(
        self, user_id: str, redirect_uri: str, lang: str = "fi", *, state: str | None = None
    ) -> str:
        """Step 2: where the person's browser goes to choose the principal(s).

        The service redirects the browser back to ``redirect_uri?code=...`` (or ``?error=...``).
        ``state``, when given, is added as the OAuth ``state`` parameter for the redirect to
        carry back (the redirect_uri given to :meth:`token` must be the same as here).
        """
        if lang not in LANGUAGES:
            raise ValueError("lang must be fi, sv or en")
        params = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "user": user_id,
            "lang": lang,
        }
        if state is not None:
            params["state"] = state
        query = urlencode(params, quote_via=quote)
        return f"{self.base_url}/oauth/authorize?{query}"

    async def token(self, code: str, redirect_uri: str) -> str:
        """Step 3: trade the authorization code for an access token (returned)."""
        if not code:
            raise ValueError("the authorization code is empty")
        query = urlencode(
            {"grant_type": "authorization_code", "redirect_uri": redirect_uri, "code": code},
            quote_via=quote,
        )
        data = await self._call("token", "POST", f"/oauth/token?{query}", signed=False, basic=True)
        if not isinstance(data, dict):
            _malformed("token", "the answer is not a JSON object")
        access_token = data.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            _malformed("token", "no access_token")
        if len(access_token) > MAX_TOKEN_CHARS or _CONTROL.search(access_token):
            _malformed("token", "the access_token is too long or holds control characters")
        token_type = data.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            _malformed("token", "the token_type is not bearer")
        expires_in = data.get("expires_in")
        if expires_in is not None and (
            not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0
        ):
            _malformed("token", "expires_in is not a positive integer")
        return access_token

    async def delegates(self, session: HpaSession, access_token: str) -> list[HpaPrincipal]:
        """Step 4: the principals the person chose (and may act for), in the service's order."""
        path = f"/service/hpa/api/delegate/{_segment(session.session_id)}?requestId={uuid.uuid4()}"
        what = "delegate list"
        data = await self._call(what, "GET", path, signed=True, bearer=access_token)
        if not isinstance(data, list):
            _malformed(what, "the answer is not a JSON list")
        if len(data) > MAX_PRINCIPALS:
            _malformed(what, f"more than {MAX_PRINCIPALS} principals")
        principals: list[HpaPrincipal] = []
        seen: set[str] = set()
        for n, item in enumerate(data, start=1):
            if not isinstance(item, dict):
                _malformed(what, f"item {n} is not a JSON object")
            person_id = item.get("personId")
            if person_id is None:
                _malformed(what, f"item {n} has no personId")
            if not isinstance(person_id, str) or not is_identity_code(person_id):
                _malformed(what, f"item {n} has a personId that is not a Finnish identity code")
            if person_id in seen:
                _malformed(what, f"item {n} repeats a principal")
            seen.add(person_id)
            name = item.get("name")
            if name is None:
                _malformed(what, f"item {n} has no name")
            if not isinstance(name, str):
                _malformed(what, f"item {n} has a name that is not a string")
            if len(name) > MAX_NAME_CHARS or _CONTROL.search(name):
                _malformed(
                    what,
                    f"item {n} has a name longer than {MAX_NAME_CHARS} characters"
                    " or with control characters",
                )
            principals.append(HpaPrincipal(person_id=person_id, name=name))
        return principals

    async def authorization(
        self,
        session: HpaSession,
        access_token: str,
        principal_person_id: str,
        issues: Sequence[str],
    ) -> HpaDecision:
        """Step 5: may the person act for the principal in all of ``issues``?"""
        _check_person(principal_person_id, "principal")
        if isinstance(issues, str) or not issues:
            raise ValueError("issues must be a non-empty sequence of issue names")
        if len(issues) > MAX_ISSUES:
            raise ValueError(f"at most {MAX_ISSUES} issues a call")
        for issue in issues:
            if (
                not isinstance(issue, str)
                or not issue
                or len(issue) > MAX_ISSUE_CHARS
                or "," in issue
                or _CONTROL.search(issue)
            ):
                raise ValueError("an issue name is empty, too long or holds a comma")
        issue_list = ",".join(quote(issue, safe=":") for issue in issues)
        path = (
            f"/service/hpa/api/authorization/{_segment(session.session_id)}"
            f"/{_segment(principal_person_id)}?requestId={uuid.uuid4()}&issues={issue_list}"
        )
        what = "authorization"
        data = await self._call(what, "GET", path, signed=True, bearer=access_token)
        if not isinstance(data, dict):
            _malformed(what, "the answer is not a JSON object")
        result = data.get("result")
        if result not in ("ALLOWED", "DISALLOWED"):
            _malformed(what, "the result is neither ALLOWED nor DISALLOWED")
        answered_for = data.get("principalId")
        if (
            isinstance(answered_for, str)
            and is_identity_code(answered_for)
            and answered_for != principal_person_id
        ):
            _malformed(what, "the answer is about another principal")
        reasons = data.get("reasons")
        if reasons is None:
            reasons = []
        if not isinstance(reasons, list):
            _malformed(what, "reasons is not a list")
        if len(reasons) > MAX_REASONS:
            _malformed(what, f"more than {MAX_REASONS} reasons")
        for n, reason in enumerate(reasons, start=1):
            if not isinstance(reason, str) or not reason:
                _malformed(what, f"reason {n} is not a non-empty string")
            if len(reason) > MAX_REASON_CHARS or _CONTROL.search(reason):
                _malformed(
                    what,
                    f"reason {n} is longer than {MAX_REASON_CHARS} characters"
                    " or holds control characters",
                )
        return HpaDecision(allowed=result == "ALLOWED", reasons=tuple(reasons))

    # ---- HTTP ----

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def _call(
        self,
        what: str,
        method: str,
        path_and_query: str,
        *,
        signed: bool,
        bearer: str | None = None,
        basic: bool = False,
    ) -> Any:
        """One request; the parsed JSON answer of a 200, else :class:`MandateServiceError`.

        ``what`` names the step in messages; ``path_and_query`` is already percent-encoded.
        """
        headers = {"Accept": "application/json"}
        if signed:
            headers[CHECKSUM_HEADER] = self.checksum_header(self._base_path + path_and_query)
        if bearer is not None:
            if not bearer or _CONTROL.search(bearer):
                raise ValueError("the access token is empty or holds control characters")
            headers["Authorization"] = f"Bearer {bearer}"
        if basic:
            pair = f"{self.client_id}:{self._oauth_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        url = URL(self.base_url + path_and_query, encoded=True)
        started = time.monotonic()
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    async with self._http().request(
                        method, url, headers=headers, allow_redirects=False
                    ) as response:
                        status = response.status
                        body = await _read_body(response, what)
            except TimeoutError:
                _fail(
                    UNAVAILABLE,
                    f"{what}: the mandate service did not answer within {self.timeout} s",
                )
            except aiohttp.ClientConnectorError as exc:
                # the text of exc names host and port only, never the path
                _fail(
                    UNAVAILABLE,
                    f"{what}: the mandate service could not be reached ({_os_reason(exc)})",
                )
            except aiohttp.ClientError as exc:
                _fail(
                    UNAVAILABLE,
                    f"{what}: the connection to the mandate service failed ({type(exc).__name__})",
                )
            elapsed_ms = (time.monotonic() - started) * 1000
            log.debug("proxy: mandate service %s: HTTP %d in %.0f ms", what, status, elapsed_ms)
            return _interpret(what, status, body)
        except MandateServiceError as exc:
            log.warning("proxy: %s (%s)", exc.message, exc.code)
            raise


async def _read_body(response: aiohttp.ClientResponse, what: str) -> bytes:
    if response.content_length is not None and response.content_length > MAX_BODY_BYTES:
        _malformed(what, f"the answer is larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            _malformed(what, f"the answer is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _interpret(what: str, status: int, body: bytes) -> Any:
    """The JSON of a 200 answer, or the error for any other status or a non-JSON body."""
    if status == 200:
        try:
            return json.loads(body)
        except ValueError:
            _malformed(what, "the answer is not JSON")
    detail = _service_error_code(body)
    if status in (401, 403):
        if what == "token":
            refused = "our client id or OAuth secret (or the code's client)"
        else:
            refused = "our client id, API key or request signature (is the clock right?)"
        _fail(REFUSED, f"{what}: the mandate service refused {refused}: HTTP {status}{detail}")
    if status >= 500 or status == 429:
        _fail(UNAVAILABLE, f"{what}: the mandate service answered HTTP {status}{detail}")
    if 300 <= status < 400:
        _malformed(what, f"the mandate service answered with a redirect (HTTP {status})")
    _malformed(what, f"the mandate service answered HTTP {status}{detail}")


def _service_error_code(body: bytes) -> str:
    """``" (invalid_grant)"`` when the body is a JSON error with a plain error code, else ""."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if isinstance(data, dict):
        for key in ("error", "code"):
            value = data.get(key)
            if isinstance(value, str) and _SAFE_ERROR_CODE.fullmatch(value):
                return f" ({value})"
    return ""


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "its TLS certificate was not accepted"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "the TLS handshake failed"
    error = exc.os_error
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if error.strerror:
        return str(error.strerror)
    return type(error).__name__


def _identifier(value: object, what: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        _malformed(what, f"no {key}")
    if len(value) > MAX_ID_CHARS or _CONTROL.search(value) or any(c.isspace() for c in value):
        _malformed(what, f"{key} is too long or holds spaces or control characters")
    return value


def _check_person(person_id: str, role: str) -> None:
    if not isinstance(person_id, str) or not is_identity_code(person_id):
        raise ValueError(f"the {role} is not identified by a Finnish identity code")


def _segment(value: str) -> str:
    return quote(value, safe="")


def _malformed(what: str, problem: str) -> NoReturn:
    _fail(ERROR, f"{what}: {problem}")


def _fail(code: str, message: str) -> NoReturn:
    raise MandateServiceError(code, message) from None
