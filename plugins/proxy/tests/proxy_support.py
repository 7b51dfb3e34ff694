"""A real MediaServer with the strongauth, chat and proxy plugins, the local OpenID Connect
issuer, test people with valid identity codes (their ages kept right whatever the date), and
signaling over real WebSockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from mandate_service import MandateService
from mediasrv_chat.plugin import ChatPlugin
from mediasrv_proxy.plugin import ProxyPlugin
from mediasrv_strongauth.identity_code import make_identity_code
from mediasrv_strongauth.plugin import StrongAuthPlugin
from mediasrv_strongauth.testing import LocalIssuer

from mediasrv.config import ServerConfig
from mediasrv.http.frontend import HttpFrontend
from mediasrv.media_server import MediaServer

AUDIENCE = "mediasrv-visits"
ADMIN_TOKEN = "proxy-admin-token-0123456789"
AUDIT_TOKEN = "audit-admin-token-0123456789"
SALT = "subject-salt-for-proxy-tests-0123"
HPA_CLIENT = "mediasrv-visits"
HPA_KEY = "hpa-api-key-0123456789"
HPA_SECRET = "hpa-oauth-secret-0123456789"
TIMEOUT = 90.0
Message = dict[str, Any]


def run(coro: Coroutine[Any, Any, None]) -> None:
    uvloop.run(asyncio.wait_for(coro, TIMEOUT))


def born(years: int, days: int = 40) -> date:
    """A birth date ``years`` (and ``days``) before today: that age now, whatever today is."""
    today = date.today()
    return date(today.year - years, today.month, min(today.day, 28)) - timedelta(days=days)


@dataclass(frozen=True)
class Person:
    given: str
    family: str
    birthdate: date
    individual: int
    roles: tuple[str, ...] = ()

    @property
    def code(self) -> str:
        return make_identity_code(self.birthdate, self.individual)

    @property
    def name(self) -> str:
        return f"{self.given} {self.family}"


PARENT = Person("Paula", "Vanhempi", born(41), 901)
SECOND_PARENT = Person("Pertti", "Vanhempi", born(43), 903)
CHILD = Person("Ville", "Lapsi", born(10), 905)
TEEN = Person("Teija", "Nuori", born(15), 907)
ELDER = Person("Eino", "Vanhus", born(86), 909)
RELATIVE = Person("Raili", "Sukulainen", born(57), 911)
MINOR = Person("Milla", "Alaikäinen", born(16), 913)
NURSE = Person("Hanna", "Hoitaja", born(38), 915, ("professional",))
GUARDIAN = Person("Yrjö", "Edunvalvoja", born(50), 917)


class Socket:
    """One signaling WebSocket: requests by id, notifications kept in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.notifications: list[Message] = []
        self._answers: dict[int, asyncio.Future[Message]] = {}
        self._next = 0
        self._seen = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            message: Message = json.loads(msg.data)
            message["raw"] = msg.data
            future = self._answers.pop(message.get("id", -1), None)
            if future is not None:
                future.set_result(message)
            elif "method" in message:
                self.notifications.append(message)
                self._seen.set()

    async def request(self, method: str, params: Message) -> Message:
        self._next += 1
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._answers[self._next] = future
        await self.ws.send_str(json.dumps({"id": self._next, "method": method, "params": params}))
        return await asyncio.wait_for(future, 15)

    async def notification(self, method: str, within: float = 10.0) -> Message:
        async def find() -> Message:
            while True:
                for note in self.notifications:
                    if note["method"] == method:
                        self.notifications.remove(note)
                        return note
                self._seen.clear()
                await self._seen.wait()

        return await asyncio.wait_for(find(), within)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


@dataclass
class Setup:
    server: MediaServer
    proxy: ProxyPlugin
    strongauth: StrongAuthPlugin
    issuer: LocalIssuer
    http: aiohttp.ClientSession
    hpa: MandateService | None = None
    sockets: list[Socket] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.server.http_address is not None
        return self.server.http_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, person: Person) -> str:
        return self.issuer.token_for(person.code, person.given, person.family, list(person.roles))

    async def connect(self) -> Socket:
        socket = Socket(await self.http.ws_connect(f"ws://127.0.0.1:{self.port}/ws"))
        self.sockets.append(socket)
        return socket

    async def join(
        self,
        person: Person,
        room: str = "visit-1",
        on_behalf: Message | None = None,
        socket: Socket | None = None,
    ) -> tuple[Message, Socket]:
        """A real signaling join with a fresh ID token of the person: the response (raw text
        under "raw") and the socket (kept open)."""
        socket = socket or await self.connect()
        params: Message = {"token": self.token(person), "room": room, "autoSubscribe": False}
        if on_behalf is not None:
            params["onBehalfOf"] = on_behalf
        return await socket.request("join", params), socket

    async def refused(self, person: Person, on_behalf: Message, room: str = "visit-1") -> Message:
        response, socket = await self.join(person, room, on_behalf)
        assert response["ok"] is False, response
        await socket.close()
        error: Message = response["error"]
        return error

    async def admin(
        self, method: str, path: str, token: str | None = ADMIN_TOKEN, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        url = f"{self.url}/plugins/proxy/{path}"
        async with self.http.request(method, url, headers=headers, **kwargs) as reply:
            return reply.status, await reply.json()

    async def grant(self, principal: Person, delegate: Person, basis: str, **more: Any) -> Message:
        body = {
            "principal": principal.code,
            "principalName": principal.name,
            "delegate": delegate.code,
            "delegateName": delegate.name,
            "basis": basis,
            **more,
        }
        status, grant = await self.admin("POST", "grants", json=body)
        assert status == 201, grant
        result: Message = grant
        return result

    async def records(self, prefix: str = "proxy_") -> list[Message]:
        audit = self.strongauth.audit
        assert audit is not None
        await self.strongauth.flush()
        rows = await self.strongauth.audit_call(audit.query, after=0, limit=1000)
        return [r for r in rows if r["decision"].startswith(prefix)]

    def subject(self, person: Person) -> str:
        return self.strongauth.subject_of(person.code)


@asynccontextmanager
async def proxy_server(
    tmp_path: Path, *, hpa: bool = False, chat: bool = False, **proxy_config: Any
) -> AsyncIterator[Setup]:
    issuer = LocalIssuer(audience=AUDIENCE)
    await issuer.start()
    service = None
    if hpa:
        service = MandateService(HPA_CLIENT, HPA_KEY, HPA_SECRET)
        await service.start()
    server = MediaServer(ServerConfig(port=0))
    HttpFrontend(server)
    strongauth = server.plugins.add(
        StrongAuthPlugin,
        {
            "issuer": issuer.issuer,
            "audience": AUDIENCE,
            "jwks_uri": issuer.jwks_uri,
            "admin_token": AUDIT_TOKEN,
            "subject_salt": SALT,
            "audit_db": str(tmp_path / "audit.sqlite3"),
            "professional_roles": ["professional"],
        },
    )
    if chat:
        server.plugins.add(
            ChatPlugin,
            {"database": str(tmp_path / "chat.sqlite3"), "attachments_dir": str(tmp_path / "f")},
        )
    config: Message = {
        "database": str(tmp_path / "grants.sqlite3"),
        "admin_token": ADMIN_TOKEN,
        **proxy_config,
    }
    if service is not None:
        config.update(
            hpa_url=service.url,
            hpa_client_id=HPA_CLIENT,
            hpa_api_key=HPA_KEY,
            hpa_oauth_secret=HPA_SECRET,
            public_url="http://127.0.0.1:1",  # replaced once the port is known
        )
    proxy = server.plugins.add(ProxyPlugin, config)
    assert isinstance(proxy, ProxyPlugin) and isinstance(strongauth, StrongAuthPlugin)
    await server.start()
    setup = Setup(server, proxy, strongauth, issuer, aiohttp.ClientSession(), service)
    if proxy.hpa is not None:
        proxy.hpa.redirect_uri = f"{setup.url}/plugins/proxy/hpa/callback"
        proxy.config["public_url"] = setup.url
    try:
        yield setup
    finally:
        for socket in setup.sockets:
            await socket.close()
        await setup.http.close()
        await server.close()
        if service is not None:
            await service.stop()
        await issuer.close()
