"""The mandate service client (Suomi.fi e-Authorizations shape, HPA mode) against the local test
double in mandate_service.py, over real HTTP on 127.0.0.1: the whole flow, refusals (API key,
client id, OAuth secret, clock skew), an unreachable, failing, hanging or garbage-speaking
service, strict validation of the answers, and no identity code in any error or log message."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from mandate_service import MandateService
from mediasrv_proxy.hpa_client import (
    ERROR,
    REFUSED,
    UNAVAILABLE,
    HpaDecision,
    HpaPrincipal,
    HpaSession,
    MandateServiceClient,
    MandateServiceError,
)
from mediasrv_strongauth.identity_code import is_identity_code

CLIENT_ID = "mediasrv-visits-test"
API_KEY = "api-key-for-tests-0123456789abcdef"
OAUTH_SECRET = "oauth-secret-for-tests-0123456789"
REDIRECT = "https://visits.example/proxy/callback"
ISSUE = "health_visit"
OTHER_ISSUE = "social_services"

DELEGATE = "010180-9026"  # Maija, the adult who acts on behalf of others
CHILD = "241010A947N"  # Matti, a minor: Maija has a mandate for the health visit
ELDER = "150575-9346"  # Pekka: Maija's mandate has expired
STRANGER = "311299-918U"  # Liisa: no mandate at all
PERSON_IDS = (DELEGATE, CHILD, ELDER, STRANGER)
NAMES = {DELEGATE: "Maija Meikäläinen", CHILD: "Matti Meikäläinen", ELDER: "Pekka Virtanen"}
NAMES[STRANGER] = "Liisa Lahtinen"

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


def identity_code(n: int) -> str:
    """A valid test identity code (individual numbers 900-999 are for temporary/test use)."""
    birth = f"{1 + n % 28:02d}0{1 + n % 9}8{n % 10}"
    number = f"{900 + n % 100:03d}"
    return f"{birth}-{number}{'0123456789ABCDEFHJKLMNPRSTUVWXY'[int(birth + number) % 31]}"


@asynccontextmanager
async def world(
    **client_options: Any,
) -> AsyncIterator[tuple[MandateService, MandateServiceClient]]:
    """The service with the fixture people and mandates, and a client of it."""
    async with MandateService(CLIENT_ID, API_KEY, OAUTH_SECRET) as service:
        for person_id, name in NAMES.items():
            service.add_person(person_id, name)
        service.add_mandate(DELEGATE, CHILD, [ISSUE])
        past = datetime.now(UTC) - timedelta(days=1)
        service.add_mandate(DELEGATE, ELDER, [ISSUE, OTHER_ISSUE], valid_until=past)
        options: dict[str, Any] = {"timeout": 2.0} | client_options
        base_url = options.pop("base_url", service.url)
        client_id = options.pop("client_id", CLIENT_ID)
        api_key = options.pop("api_key", API_KEY)
        secret = options.pop("oauth_secret", OAUTH_SECRET)
        client = MandateServiceClient(base_url, client_id, api_key, secret, **options)
        try:
            yield service, client
        finally:
            await client.close()


async def choose(client: MandateServiceClient, session: HpaSession, **extra: str) -> str:
    """The browser's trip through /oauth/authorize: the code from the 302's Location header."""
    url = client.authorize_url(session.user_id, REDIRECT, lang="fi")
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(url, params=extra, allow_redirects=False) as response,
    ):
        assert response.status == 302
        location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    assert list(query) == ["code"]
    return query["code"][0]


async def sign_in(client: MandateServiceClient, **extra: str) -> tuple[HpaSession, str]:
    """register → authorize → token: the session and the access token."""
    session = await client.register(DELEGATE)
    code = await choose(client, session, **extra)
    return session, await client.token(code, REDIRECT)


async def failure(call: Awaitable[T]) -> MandateServiceError:
    with pytest.raises(MandateServiceError) as caught:
        await call
    return caught.value


def assert_private(exc: BaseException | str, caplog: pytest.LogCaptureFixture) -> None:
    """No identity code in the error's text (nor in its chained cause) or in any log message."""
    texts = [str(exc), repr(exc), caplog.text]
    if isinstance(exc, BaseException) and exc.__cause__ is not None:
        texts.append(str(exc.__cause__))
    for text in texts:
        for person_id in PERSON_IDS:
            assert person_id not in text


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


# ---- signing ----


def test_checksum_header_is_the_hmac_of_path_and_timestamp() -> None:
    moment = datetime(2026, 11, 23, 10, 15, 30, 123000, tzinfo=UTC).timestamp()
    client = MandateServiceClient(
        "https://valtuudet.example", CLIENT_ID, API_KEY, OAUTH_SECRET, clock=lambda: moment
    )
    path = "/service/hpa/api/delegate/abc?requestId=4f1c2a3e-0000-4000-8000-000000000001"
    stamp = "2026-11-23T10:15:30.123Z"
    digest = hmac.new(API_KEY.encode(), (path + stamp).encode(), hashlib.sha256).digest()
    expected = f"{CLIENT_ID} {stamp} {base64.b64encode(digest).decode()}"
    assert client.checksum_header(path) == expected
    assert client.timestamp() == stamp


def test_timestamp_has_milliseconds_and_z() -> None:
    client = MandateServiceClient(
        "https://valtuudet.example", CLIENT_ID, API_KEY, OAUTH_SECRET, clock=lambda: 0.0
    )
    assert client.timestamp() == "1970-01-01T00:00:00.000Z"


def test_identity_codes() -> None:
    for code in (*PERSON_IDS, "131052-308T", identity_code(7)):
        assert is_identity_code(code)
    for code in ("131052-308A", "131052/308T", "131052-308", "131052-308TT", "131052G308T"):
        assert not is_identity_code(code)


def test_authorize_url() -> None:
    client = MandateServiceClient("https://valtuudet.example/", CLIENT_ID, API_KEY, OAUTH_SECRET)
    url = client.authorize_url("user-1", REDIRECT, lang="sv")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "valtuudet.example",
        "/oauth/authorize",
    )
    assert parse_qs(parts.query) == {
        "client_id": [CLIENT_ID],
        "response_type": ["code"],
        "redirect_uri": [REDIRECT],
        "user": ["user-1"],
        "lang": ["sv"],
    }
    with pytest.raises(ValueError):
        client.authorize_url("user-1", REDIRECT, lang="de")
    with_state = parse_qs(urlsplit(client.authorize_url("u", REDIRECT, state="s/1 &")).query)
    assert with_state["state"] == ["s/1 &"]


def test_state_comes_back_with_the_code() -> None:
    async def main() -> None:
        async with world() as (_, client):
            session = await client.register(DELEGATE)
            url = client.authorize_url(session.user_id, REDIRECT, "en", state="st-1")
            async with (
                aiohttp.ClientSession() as browser,
                browser.get(url, allow_redirects=False) as response,
            ):
                query = parse_qs(urlsplit(response.headers["Location"]).query)
            assert query["state"] == ["st-1"]
            token = await client.token(query["code"][0], REDIRECT)
            assert len(await client.delegates(session, token)) == 2

    run(main())


def test_bad_arguments_are_value_errors_without_the_id() -> None:
    async def main() -> None:
        async with world() as (service, client):
            with pytest.raises(ValueError) as caught:
                await client.register("131052-308A")  # wrong check character
            assert "131052-308A" not in str(caught.value)
            session, token = await sign_in(client)
            for issues in ([], "health_visit", ["a,b"], [""], ["x"] * 51):
                with pytest.raises(ValueError):
                    await client.authorization(session, token, CHILD, issues)
            assert service.calls["authorization"] == 0

    run(main())


# ---- the flow ----


def test_whole_flow_allowed(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with world() as (service, client):
            session = await client.register(DELEGATE)
            assert session.session_id and session.user_id
            register_headers = service.headers["register"]
            assert register_headers["X-AsiointivaltuudetAuthorization"].startswith(CLIENT_ID + " ")
            assert f"/register/{CLIENT_ID}/{DELEGATE}?requestId=" in service.last_path

            code = await choose(client, session)
            token = await client.token(code, REDIRECT)
            assert token
            token_headers = service.headers["token"]
            assert token_headers["Authorization"].startswith("Basic ")
            assert "X-AsiointivaltuudetAuthorization" not in token_headers

            principals = await client.delegates(session, token)
            # every principal with a mandate is "selected", the expired one included
            assert principals == [
                HpaPrincipal(CHILD, NAMES[CHILD]),
                HpaPrincipal(ELDER, NAMES[ELDER]),
            ]
            assert service.headers["delegate"]["Authorization"] == f"Bearer {token}"

            decision = await client.authorization(session, token, CHILD, [ISSUE])
            assert decision == HpaDecision(allowed=True, reasons=())
            headers = service.last_headers
            assert headers["Authorization"] == f"Bearer {token}"
            assert headers["X-AsiointivaltuudetAuthorization"].startswith(CLIENT_ID + " ")
            assert f"/authorization/{session.session_id}/{CHILD}?requestId=" in service.last_path
            assert service.last_path.endswith(f"&issues={ISSUE}")

            assert dict(service.calls) == {
                "register": 1,
                "authorize": 1,
                "token": 1,
                "delegate": 1,
                "authorization": 1,
            }
        assert_private("", caplog)

    run(main())


def test_disallowed_with_reasons(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with world() as (service, client):
            session, token = await sign_in(client)
            decision = await client.authorization(session, token, CHILD, [ISSUE, OTHER_ISSUE])
            assert decision == HpaDecision(False, (f"issue_not_covered:{OTHER_ISSUE}",))
            decision = await client.authorization(session, token, ELDER, [ISSUE])
            assert decision == HpaDecision(False, ("mandate_expired",))
            decision = await client.authorization(session, token, STRANGER, [ISSUE])
            assert decision == HpaDecision(False, ("not_selected",))

            # a person chosen without any mandate (select=)
            session, token = await sign_in(client, select=STRANGER)
            assert await client.delegates(session, token) == [
                HpaPrincipal(STRANGER, NAMES[STRANGER])
            ]
            decision = await client.authorization(session, token, STRANGER, [ISSUE])
            assert decision == HpaDecision(False, ("no_mandate",))
            assert service.calls["authorization"] == 4
        assert_private("", caplog)

    run(main())


def test_answers_without_reasons_and_with_a_token_type_in_capitals() -> None:
    async def main() -> None:
        async with world() as (service, client):
            session, token = await sign_in(client)
            service.reply("authorization", {"result": "ALLOWED"})
            assert await client.authorization(session, token, CHILD, [ISSUE]) == HpaDecision(True)
            service.reply("authorization", {"result": "DISALLOWED", "reasons": None})
            assert await client.authorization(session, token, CHILD, [ISSUE]) == HpaDecision(False)
            service.reply("token", {"access_token": "t-1", "token_type": "Bearer"})
            assert await client.token("any-code", REDIRECT) == "t-1"

    run(main())


def test_a_hundred_principals_are_accepted() -> None:
    async def main() -> None:
        async with world() as (service, client):
            session, token = await sign_in(client)
            ids = [identity_code(n) for n in range(100)]
            assert len(set(ids)) == 100
            service.reply("delegate", [{"personId": i, "name": "N" * 200} for i in ids])
            principals = await client.delegates(session, token)
            assert [p.person_id for p in principals] == ids

    run(main())


def test_principal_repr_leaves_out_the_identity_code() -> None:
    assert CHILD not in repr(HpaPrincipal(CHILD, NAMES[CHILD]))
    assert NAMES[CHILD] in repr(HpaPrincipal(CHILD, NAMES[CHILD]))


def test_the_client_can_be_closed_and_used_again() -> None:
    async def main() -> None:
        async with world() as (service, client):
            await client.register(DELEGATE)
            await client.close()
            await client.close()
            await client.register(DELEGATE)
            assert service.calls["register"] == 2

    run(main())


# ---- refusals ----


def test_wrong_api_key_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with world(api_key="not-the-key") as (service, client):
            exc = await failure(client.register(DELEGATE))
            assert exc.code == REFUSED
            assert "HTTP 401 (invalid_checksum)" in exc.message
            assert service.calls["register"] == 1
            assert_private(exc, caplog)

    run(main())


def test_unknown_client_id_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with world(client_id="someone-else") as (_, client):
            exc = await failure(client.register(DELEGATE))
            assert exc.code == REFUSED
            assert "(unknown_client)" in exc.message
            assert_private(exc, caplog)

    run(main())


def test_wrong_oauth_secret_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with world(oauth_secret="not-the-secret") as (_, client):
            session = await client.register(DELEGATE)
            code = await choose(client, session)
            exc = await failure(client.token(code, REDIRECT))
            assert exc.code == REFUSED
            assert exc.message.startswith("token: ")
            assert "(invalid_client)" in exc.message
            assert code not in exc.message
            assert_private(exc, caplog)

    run(main())


@pytest.mark.parametrize("skew_minutes", [6, -6])
def test_a_skewed_clock_is_refused(skew_minutes: int, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        clock = lambda: time.time() + skew_minutes * 60  # noqa: E731
        async with world(clock=clock) as (_, client):
            exc = await failure(client.register(DELEGATE))
            assert exc.code == REFUSED
            assert "(timestamp_skew)" in exc.message
            assert "clock" in exc.message
            assert_private(exc, caplog)

    run(main())


def test_a_clock_four_minutes_off_is_still_accepted() -> None:
    async def main() -> None:
        async with world(clock=lambda: time.time() - 240) as (_, client):
            session, token = await sign_in(client)
            assert (await client.authorization(session, token, CHILD, [ISSUE])).allowed

    run(main())


def test_a_token_of_another_session_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with world() as (_, client):
            session, _ = await sign_in(client)
            _, other_token = await sign_in(client)
            exc = await failure(client.delegates(session, other_token))
            assert exc.code == REFUSED
            assert other_token not in exc.message
            assert_private(exc, caplog)

    run(main())


# ---- an unavailable service ----


def test_service_down_is_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with world() as (service, client):
            session, token = await sign_in(client)
            service.mode = "down"
            exc = await failure(client.register(DELEGATE))
            assert exc.code == UNAVAILABLE
            assert (
                exc.message
                == "register: the mandate service answered HTTP 503 (service_unavailable)"
            )
            exc = await failure(client.authorization(session, token, CHILD, [ISSUE]))
            assert exc.code == UNAVAILABLE
            assert exc.message.startswith("authorization: the mandate service answered HTTP 503")
            assert_private(exc, caplog)
            assert "HTTP 503" in caplog.text  # logged, as a warning

    run(main())


def test_too_many_requests_is_unavailable() -> None:
    async def main() -> None:
        async with world() as (service, client):
            service.reply("register", {"error": "slow_down"}, status=429)
            exc = await failure(client.register(DELEGATE))
            assert exc.code == UNAVAILABLE
            assert "HTTP 429" in exc.message

    run(main())


def test_connection_refused_is_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        async with world(base_url=f"http://127.0.0.1:{port}") as (_, client):
            exc = await failure(client.register(DELEGATE))
            assert exc.code == UNAVAILABLE
            assert exc.message == (
                "register: the mandate service could not be reached (connection refused)"
            )
            assert exc.__cause__ is None
            assert_private(exc, caplog)

    run(main())


@pytest.mark.parametrize("step", ["register", "authorization"])
def test_a_hanging_service_times_out(step: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with world(timeout=1.0) as (service, client):
            session, token = await sign_in(client)
            service.mode = "hang"
            before = service.calls[step]
            started = time.monotonic()
            if step == "register":
                exc = await failure(client.register(DELEGATE))
            else:
                exc = await failure(client.authorization(session, token, CHILD, [ISSUE]))
            elapsed = time.monotonic() - started
            assert 0.9 <= elapsed <= 1.5
            assert exc.code == UNAVAILABLE
            assert exc.message == f"{step}: the mandate service did not answer within 1.0 s"
            assert service.calls[step] == before + 1
            assert_private(exc, caplog)

    run(main())


@pytest.mark.parametrize("sends", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[{"])
def test_a_bare_socket_that_never_answers_times_out(sends: bytes) -> None:
    """Below HTTP: a listener that accepts and says nothing (or stops in the middle of a body)."""

    async def main() -> None:
        held: list[asyncio.StreamWriter] = []

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)
            writer.write(sends)

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with world(base_url=f"http://127.0.0.1:{port}", timeout=1.0) as (_, client):
                started = time.monotonic()
                exc = await failure(client.register(DELEGATE))
                assert 0.9 <= time.monotonic() - started <= 1.5
                assert exc.code == UNAVAILABLE
                assert "did not answer within 1.0 s" in exc.message
        finally:
            for writer in held:
                writer.close()
            server.close()
            await server.wait_closed()

    run(main())


# ---- malformed answers ----


def test_garbage_is_an_error(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with world() as (service, client):
            session, token = await sign_in(client)
            service.mode = "garbage"
            exc = await failure(client.register(DELEGATE))
            assert (exc.code, exc.message) == (ERROR, "register: the answer is not JSON")
            exc = await failure(client.delegates(session, token))
            assert (exc.code, exc.message) == (ERROR, "delegate list: the answer is not JSON")
            exc = await failure(client.authorization(session, token, CHILD, [ISSUE]))
            assert (exc.code, exc.message) == (ERROR, "authorization: the answer is not JSON")
            assert_private(exc, caplog)

    run(main())


GOOD = {"personId": CHILD, "name": NAMES[CHILD]}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"personId": CHILD, "name": "x"}, "the answer is not a JSON list"),
        ([GOOD, "x"], "item 2 is not a JSON object"),
        ([GOOD, {"name": "Anonymous"}], "item 2 has no personId"),
        ([{"personId": 241010947, "name": "x"}], "item 1 has a personId that is not a Finnish"),
        ([{"personId": "241010A947M", "name": "x"}], "item 1 has a personId that is not a Finnish"),
        ([{"personId": CHILD + " ", "name": "x"}], "item 1 has a personId that is not a Finnish"),
        ([GOOD, GOOD], "item 2 repeats a principal"),
        ([{"personId": CHILD}], "item 1 has no name"),
        ([{"personId": CHILD, "name": ["x"]}], "item 1 has a name that is not a string"),
        ([{"personId": CHILD, "name": "x" * 201}], "item 1 has a name longer than 200"),
        ([{"personId": CHILD, "name": "a\nb"}], "item 1 has a name longer than 200"),
        (
            [{"personId": identity_code(n), "name": "x"} for n in range(101)],
            "more than 100 principals",
        ),
    ],
)
def test_malformed_delegate_lists(
    body: Any, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with world() as (service, client):
            session, token = await sign_in(client)
            service.reply("delegate", body)
            exc = await failure(client.delegates(session, token))
            assert exc.code == ERROR
            assert exc.message.startswith(f"delegate list: {problem}")
            assert "241010A947M" not in exc.message
            assert_private(exc, caplog)

    run(main())


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "the answer is not a JSON object"),
        ({"reasons": []}, "the result is neither ALLOWED nor DISALLOWED"),
        ({"result": "allowed"}, "the result is neither ALLOWED nor DISALLOWED"),
        ({"result": "MAYBE"}, "the result is neither ALLOWED nor DISALLOWED"),
        ({"result": True}, "the result is neither ALLOWED nor DISALLOWED"),
        ({"result": "ALLOWED", "principalId": ELDER}, "the answer is about another principal"),
        ({"result": "DISALLOWED", "reasons": "no_mandate"}, "reasons is not a list"),
        ({"result": "DISALLOWED", "reasons": ["r"] * 51}, "more than 50 reasons"),
        ({"result": "DISALLOWED", "reasons": ["ok", 7]}, "reason 2 is not a non-empty string"),
        ({"result": "DISALLOWED", "reasons": [""]}, "reason 1 is not a non-empty string"),
        ({"result": "DISALLOWED", "reasons": ["r" * 201]}, "reason 1 is longer than 200"),
    ],
)
def test_malformed_decisions(body: Any, problem: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with world() as (service, client):
            session, token = await sign_in(client)
            service.reply("authorization", body)
            exc = await failure(client.authorization(session, token, CHILD, [ISSUE]))
            assert (exc.code, exc.message[: len(problem) + 15]) == (
                ERROR,
                f"authorization: {problem}",
            )
            assert_private(exc, caplog)

    run(main())


def test_fifty_reasons_of_two_hundred_characters_are_accepted() -> None:
    async def main() -> None:
        async with world() as (service, client):
            session, token = await sign_in(client)
            reasons = [f"{n:03d}" + "r" * 197 for n in range(50)]
            service.reply("authorization", {"result": "DISALLOWED", "reasons": reasons})
            decision = await client.authorization(session, token, CHILD, [ISSUE])
            assert decision == HpaDecision(False, tuple(reasons))

    run(main())


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "the answer is not a JSON object"),
        ({"userId": "u"}, "no sessionId"),
        ({"sessionId": "s"}, "no userId"),
        ({"sessionId": 5, "userId": "u"}, "no sessionId"),
        ({"sessionId": "a b", "userId": "u"}, "sessionId is too long or holds spaces"),
        ({"sessionId": "s" * 257, "userId": "u"}, "sessionId is too long or holds spaces"),
    ],
)
def test_malformed_registrations(body: Any, problem: str) -> None:
    async def main() -> None:
        async with world() as (service, client):
            service.reply("register", body)
            exc = await failure(client.register(DELEGATE))
            assert exc.code == ERROR
            assert exc.message.startswith(f"register: {problem}")

    run(main())


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("token", "the answer is not a JSON object"),
        ({"token_type": "bearer"}, "no access_token"),
        ({"access_token": "", "token_type": "bearer"}, "no access_token"),
        ({"access_token": "t"}, "the token_type is not bearer"),
        ({"access_token": "t", "token_type": "mac"}, "the token_type is not bearer"),
        (
            {"access_token": "t", "token_type": "bearer", "expires_in": "600"},
            "expires_in is not a positive integer",
        ),
    ],
)
def test_malformed_tokens(body: Any, problem: str) -> None:
    async def main() -> None:
        async with world() as (service, client):
            service.reply("token", body)
            exc = await failure(client.token("any-code", REDIRECT))
            assert (exc.code, exc.message) == (ERROR, f"token: {problem}")

    run(main())


def test_other_client_errors(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with world() as (service, client):
            session = await client.register(DELEGATE)
            code = await choose(client, session)
            exc = await failure(client.token(code, REDIRECT + "/elsewhere"))
            assert exc.code == ERROR
            assert exc.message == "token: the mandate service answered HTTP 400 (invalid_grant)"
            exc = await failure(client.token(code, REDIRECT))  # a code is used once
            assert (exc.code, exc.message.endswith("(invalid_grant)")) == (ERROR, True)

            session, token = await sign_in(client)
            # an error code that is not a plain word (here an identity code) is not repeated
            service.reply("authorization", {"error": CHILD}, status=404)
            exc = await failure(client.authorization(session, token, CHILD, [ISSUE]))
            assert exc.message == "authorization: the mandate service answered HTTP 404"
            service.reply("authorization", {"error": "x"}, status=302)
            exc = await failure(client.authorization(session, token, CHILD, [ISSUE]))
            assert exc.code == ERROR
            assert "redirect (HTTP 302)" in exc.message
            assert_private(exc, caplog)

    run(main())
