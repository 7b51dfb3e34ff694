"""The visit service's development identity provider: the authorization-code flow over real
HTTP, ID tokens that the strongauth plugin verifies and turns into identities in a real join,
and the refusals (unregistered redirect, no nonce, reused or foreign codes)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import uvloop
from mediasrv_strongauth.plugin import StrongAuthPlugin

from examples.visit_service.dev_idp import TEST_PEOPLE, DevIdentityProvider
from mediasrv.config import ServerConfig
from mediasrv.http.frontend import HttpFrontend
from mediasrv.media_server import MediaServer

CLIENT = "visit-service"
CALLBACK = "http://127.0.0.1:9/callback"


def run(coro: Any) -> None:
    uvloop.run(asyncio.wait_for(coro, 60))


async def sign_in(http: aiohttp.ClientSession, idp: DevIdentityProvider, person: str,
                  nonce: str = "n-1", state: str = "s-1") -> str:  # fmt: skip
    """The browser's part: the login page, a choice, the redirect: the code."""
    query = {"client_id": CLIENT, "redirect_uri": CALLBACK, "response_type": "code",
             "nonce": nonce, "state": state}  # fmt: skip
    async with http.get(f"{idp.url}/oidc/authorize", params=query) as page:
        assert page.status == 200
        text = await page.text()
    assert "A development tool" in text and "Paula Vanhempi" in text
    form = {**query, "person": person}
    async with http.post(f"{idp.url}/oidc/authorize", data=form, allow_redirects=False) as back:
        assert back.status == 302, await back.text()
        location = urlsplit(back.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    found = parse_qs(location.query)
    assert found["state"] == [state]
    return found["code"][0]


async def token(http: aiohttp.ClientSession, idp: DevIdentityProvider, code: str,
                client: str = CLIENT) -> tuple[int, dict[str, Any]]:  # fmt: skip
    form = {"grant_type": "authorization_code", "code": code, "client_id": client,
            "redirect_uri": CALLBACK}  # fmt: skip
    async with http.post(f"{idp.url}/oidc/token", data=form) as reply:
        return reply.status, await reply.json()


def test_a_test_person_signs_in_and_joins_with_a_verified_identity(tmp_path: Path) -> None:
    async def main() -> None:
        idp = DevIdentityProvider(client_id=CLIENT, redirect_uris=[CALLBACK])
        await idp.start()
        server = MediaServer(ServerConfig(port=0))
        HttpFrontend(server)
        server.plugins.add(
            StrongAuthPlugin,
            {"issuer": idp.issuer, "audience": CLIENT, "jwks_uri": idp.jwks_uri,
             "admin_token": "a" * 20, "subject_salt": "s" * 20,
             "audit_db": str(tmp_path / "audit.sqlite3")},
        )  # fmt: skip
        await server.start()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{idp.url}/.well-known/openid-configuration") as reply:
                    discovery = await reply.json()
                assert discovery["issuer"] == idp.issuer
                assert discovery["token_endpoint"] == f"{idp.url}/oidc/token"
                code = await sign_in(http, idp, "parent", nonce="nonce-42")
                status, body = await token(http, idp, code)
                assert status == 200, body
                # a code is good once
                assert (await token(http, idp, code))[0] == 400
                assert server.http_address is not None
                ws = await http.ws_connect(f"ws://127.0.0.1:{server.http_address[1]}/ws")
                params = {"token": body["id_token"], "room": "visit-1"}
                await ws.send_str(json.dumps({"id": 1, "method": "join", "params": params}))
                answer = json.loads((await ws.receive()).data)
                assert answer["ok"], answer
                assert answer["result"]["self"]["displayName"] == "Paula Vanhempi"
                peer = server.rooms["visit-1"].peers[answer["result"]["peerId"]]
                assert peer.identity is not None
                parent = next(p for p in TEST_PEOPLE if p.key == "parent")
                assert peer.identity.private["birthdate"] == parent.birthdate.isoformat()
                assert peer.identity.roles == frozenset({"client"})
                await ws.close()
                # a professional gets the role
                status, body = await token(http, idp, await sign_in(http, idp, "nurse"))
                assert status == 200
                assert "professional" in json.dumps(
                    __import__("joserfc.jwt", fromlist=["decode"])
                    .decode(body["id_token"], idp.tokens.rsa)
                    .claims
                )
        finally:
            await server.close()
            await idp.close()

    run(main())


def test_the_provider_refuses_what_a_broker_would() -> None:
    async def main() -> None:
        idp = DevIdentityProvider(client_id=CLIENT, redirect_uris=[CALLBACK])
        await idp.start()
        try:
            async with aiohttp.ClientSession() as http:
                base = {"client_id": CLIENT, "redirect_uri": CALLBACK, "response_type": "code",
                        "nonce": "n"}  # fmt: skip
                for changes, message in (
                    ({"redirect_uri": "https://evil.example/cb"}, "redirect_uri is not registered"),
                    ({"client_id": "other"}, "unknown client_id"),
                    ({"nonce": ""}, "a nonce are required"),
                ):
                    async with http.get(
                        f"{idp.url}/oidc/authorize", params={**base, **changes}
                    ) as reply:
                        assert reply.status == 400 and message in await reply.text()
                code = await sign_in(http, idp, "client")
                assert (await token(http, idp, code, client="other"))[0] == 400
                assert (await token(http, idp, "made-up"))[0] == 400
        finally:
            await idp.close()

    run(main())
