"""The visit service over plain HTTP, without a browser: a VisitService on loopback (HTTP port
0, the development identity provider on port 0, a temporary data directory, the test people
and their grants), one aiohttp session per person (its own cookie jar) that signs in through
the identity provider's real login form, and readers of what the pages and event streams
carry (the boot JSON, the CSRF token, server-sent events)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp

from examples.visit_service.config import load
from examples.visit_service.demo import seed_people
from examples.visit_service.dev_idp import TEST_PEOPLE
from examples.visit_service.service import VisitService

LOGIN_FIELDS = ("client_id", "redirect_uri", "state", "nonce", "acr_values")
BOOT = re.compile(r'<script type="application/json" id="boot">(.*?)</script>', re.S)
STEP = 10.0  # seconds: connecting


@contextlib.asynccontextmanager
async def visit_service(data_dir: Path, **settings: Any) -> AsyncIterator[VisitService]:
    """A started VisitService with the test people and their grants (no demo appointments)."""
    config = load(None, **{"port": 0, "dev_idp_port": 0, "data_dir": str(data_dir),
                           "demo_data": False, **settings})  # fmt: skip
    service = VisitService(config)
    await service.start()
    try:
        await seed_people(service)
        yield service
    finally:
        await service.close()


def identity_code(key: str) -> str:
    return next(p.identity_code for p in TEST_PEOPLE if p.key == key)


def person_name(key: str) -> str:
    return next(p.name for p in TEST_PEOPLE if p.key == key)


def subject_of(service: VisitService, key: str) -> str:
    """The pseudonymous subject strongauth gives the test person ``key``."""
    return str(service.strongauth.subject_of(identity_code(key)))


def browser(lang: str = "en") -> aiohttp.ClientSession:
    """One person's "browser": cookies of their own (an IP host needs the unsafe jar)."""
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        headers={"Accept-Language": lang},
        # no total: event streams stay open; the tests bound their waits themselves
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=STEP),
    )


class _Inputs(HTMLParser):
    """The hidden inputs of a page (name -> value), entities decoded."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "input" and found.get("type") == "hidden" and found.get("name"):
            self.hidden[str(found["name"])] = found.get("value") or ""


def hidden_inputs(html: str) -> dict[str, str]:
    parser = _Inputs()
    parser.feed(html)
    return parser.hidden


def boot_of(html: str) -> dict[str, Any]:
    """The page's boot JSON (``<script type="application/json" id="boot">``)."""
    match = BOOT.search(html)
    assert match is not None, "the page has no boot JSON"
    value = json.loads(match.group(1).replace("<\\/", "</"))
    assert isinstance(value, dict)
    return value


def csrf_of(html: str) -> str:
    """The session's CSRF token of a signed-in page: the logout form's hidden ``csrf`` (the
    same as the boot JSON's ``csrf`` where there is one)."""
    token = hidden_inputs(html).get("csrf", "")
    assert token, "the page has no CSRF token (not signed in?)"
    match = BOOT.search(html)
    if match is not None:
        assert boot_of(html).get("csrf") == token
    return token


async def login_page(
    http: aiohttp.ClientSession, service: VisitService, next_path: str
) -> dict[str, str]:
    """Begin a sign-in (``/visit/login?next=``): the identity provider's login form fields."""
    async with http.get(f"{service.url}/visit/login", params={"next": next_path}) as response:
        assert response.status == 200, response.status
        assert service.idp is not None and str(response.url).startswith(service.idp.url)
        html = await response.text()
    fields = hidden_inputs(html)
    assert set(LOGIN_FIELDS) <= set(fields), fields
    return {k: fields[k] for k in LOGIN_FIELDS}


async def pick_person(
    http: aiohttp.ClientSession, service: VisitService, fields: dict[str, str], person: str
) -> str:
    """Submit the identity provider's form as ``person``: the callback URL it redirects to."""
    assert service.idp is not None
    action = urljoin(f"{service.idp.url}/oidc/authorize", "authorize")
    async with http.post(action, data={**fields, "person": person},
                         allow_redirects=False) as response:  # fmt: skip
        assert response.status == 302, (response.status, await response.text())
        location = response.headers["Location"]
    assert location.startswith(f"{service.url}/visit/callback?"), location
    return location


async def sign_in(
    http: aiohttp.ClientSession, service: VisitService, person: str, next_path: str = "/visit/"
) -> tuple[int, str, str]:
    """The real sign-in of test person ``person`` (a key such as "nurse"), landing on
    ``next_path``: (status, final URL, HTML) of the page it lands on."""
    fields = await login_page(http, service, next_path)
    callback = await pick_person(http, service, fields, person)
    async with http.get(callback) as response:
        return response.status, str(response.url), await response.text()


async def csrf(http: aiohttp.ClientSession, service: VisitService) -> str:
    """The signed-in session's CSRF token, read from a page."""
    async with http.get(f"{service.url}/visit/", allow_redirects=False) as response:
        assert response.status == 200
        return csrf_of(await response.text())


async def post_json(
    http: aiohttp.ClientSession, url: str, body: Any, token: str | None
) -> tuple[int, Any]:
    """POST a JSON body (with ``X-CSRF-Token`` unless ``token`` is None): status and JSON."""
    headers = {"X-CSRF-Token": token} if token is not None else {}
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def next_event(response: aiohttp.ClientResponse) -> Any:
    """The next server-sent event's ``data:`` (JSON), skipping comments (heartbeats)."""
    while True:
        line = await response.content.readline()
        if not line:
            raise AssertionError("the event stream ended")
        text = line.decode().strip()
        if text.startswith("data:"):
            return json.loads(text[len("data:") :])
