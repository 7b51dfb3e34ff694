"""A development identity provider for the visit service — never for production.

It stands in for the OpenID Connect broker of the Finnish Trust Network so that a visit can be
tried on one machine: an authorization-code flow whose login page lists test people (clearly
marked as a development tool), a token endpoint that issues real signed ID tokens (RS256, with
a level of assurance, ``amr``, the national identity code, names, roles and the nonce of the
request), discovery and a JWKS. The strongauth plugin verifies those tokens exactly as it would
a broker's. Test people have test identity codes (individual numbers 900-999, which no real
person has).

    idp = DevIdentityProvider(client_id="visits", redirect_uris=["http://127.0.0.1:8080/cb"])
    await idp.start()   # idp.url, idp.jwks_uri, idp.issuer
"""

from __future__ import annotations

import html
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from urllib.parse import urlencode

from aiohttp import web
from mediasrv_strongauth import loa
from mediasrv_strongauth.identity_code import make_identity_code
from mediasrv_strongauth.testing import LocalIssuer

CODE_SECONDS = 60
MAX_PENDING = 1000


def _born(years: int, days: int = 40) -> date:
    """A birth date that makes someone ``years`` old today, whatever today is."""
    today = date.today()
    return date(today.year - years, today.month, min(today.day, 28)) - timedelta(days=days)


@dataclass(frozen=True)
class DevPerson:
    key: str
    given: str
    family: str
    birthdate: date
    individual: int  # 900-999: a temporary identity code no real person has
    roles: tuple[str, ...] = ()
    description: str = ""

    @property
    def identity_code(self) -> str:
        return make_identity_code(self.birthdate, self.individual)

    @property
    def name(self) -> str:
        return f"{self.given} {self.family}"


TEST_PEOPLE: tuple[DevPerson, ...] = (
    DevPerson(
        "nurse",
        "Hanna",
        "Hoitaja",
        _born(38),
        931,
        ("professional",),
        "public health nurse (professional)",
    ),
    DevPerson(
        "doctor", "Lauri", "Lääkäri", _born(47), 932, ("professional",), "doctor (professional)"
    ),
    DevPerson("client", "Aino", "Asiakas", _born(34), 933, (), "adult client"),
    DevPerson("parent", "Paula", "Vanhempi", _born(41), 934, (), "parent of Ville and Teija"),
    DevPerson("child", "Ville", "Lapsi", _born(10), 935, (), "child, 10"),
    DevPerson("teen", "Teija", "Nuori", _born(15), 936, (), "minor, 15"),
    DevPerson("elder", "Eino", "Vanhus", _born(86), 937, (), "elderly home-care client"),
    DevPerson(
        "relative", "Raili", "Sukulainen", _born(57), 938, (), "relative with a mandate for Eino"
    ),
)


@dataclass
class _Pending:
    person: DevPerson
    client_id: str
    redirect_uri: str
    nonce: str
    acr: str
    expires: float = field(default_factory=lambda: time.monotonic() + CODE_SECONDS)


class DevIdentityProvider:
    """The development broker: ``/authorize`` (login page), ``/token``, ``/jwks``,
    ``/.well-known/openid-configuration``. Only the registered redirect URIs are accepted,
    codes are single-use and live 60 s, and a request without a nonce is refused."""

    def __init__(
        self,
        *,
        client_id: str,
        redirect_uris: Sequence[str],
        people: Sequence[DevPerson] = TEST_PEOPLE,
        host: str = "127.0.0.1",
    ) -> None:
        self.client_id = client_id
        self.redirect_uris = set(redirect_uris)
        self.people = {p.key: p for p in people}
        self.host = host
        self.tokens = LocalIssuer(audience=client_id, host=host)  # keys and token minting
        self._codes: dict[str, _Pending] = {}
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return self.tokens.url

    @property
    def issuer(self) -> str:
        return self.tokens.issuer

    @property
    def jwks_uri(self) -> str:
        return self.tokens.jwks_uri

    async def start(self, port: int = 0) -> None:
        app = web.Application(client_max_size=16 * 1024)
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/oidc/authorize", self._login_page)
        app.router.add_post("/oidc/authorize", self._login)
        app.router.add_post("/oidc/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.tokens.url = f"http://{self.host}:{bound}"  # the issuer is this address

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self.tokens.jwks())

    # ---- endpoints ----

    async def _discovery(self, request: web.Request) -> web.Response:
        base = self.url + "/oidc"
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": base + "/authorize",
                "token_endpoint": base + "/token",
                "jwks_uri": self.jwks_uri,
                "response_types_supported": ["code"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "acr_values_supported": [loa.FTN_LOA2, loa.FTN_LOA3],
            }
        )

    def _check_client(self, client_id: str, redirect_uri: str) -> str | None:
        if client_id != self.client_id:
            return "unknown client_id"
        if redirect_uri not in self.redirect_uris:
            return "redirect_uri is not registered for this client"
        return None

    async def _login_page(self, request: web.Request) -> web.Response:
        q = request.query
        problem = self._check_client(q.get("client_id", ""), q.get("redirect_uri", ""))
        if problem or q.get("response_type") != "code" or not q.get("nonce"):
            reason = problem or "response_type=code and a nonce are required"
            return web.Response(status=400, text=f"invalid request: {reason}\n")
        rows = "\n".join(
            f'<li><button name="person" value="{html.escape(p.key)}">'
            f"{html.escape(p.name)}</button> {html.escape(p.description)}</li>"
            for p in self.people.values()
        )
        hidden = "\n".join(
            f'<input type="hidden" name="{k}" value="{html.escape(q.get(k, ""))}">'
            for k in ("client_id", "redirect_uri", "state", "nonce", "acr_values")
        )
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Development identity provider</title></head>
<body><main>
<h1>Development identity provider</h1>
<p role="alert"><strong>A development tool: these are test people, not a real
identification.</strong></p>
<form method="post" action="authorize">{hidden}
<fieldset><legend>Sign in as</legend><ul>{rows}</ul></fieldset>
<label><input type="checkbox" name="loa3" value="1"> level of assurance high (loa3)</label>
</form></main></body></html>"""
        return web.Response(text=page, content_type="text/html")

    async def _login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        client_id, redirect_uri = str(form.get("client_id", "")), str(form.get("redirect_uri", ""))
        problem = self._check_client(client_id, redirect_uri)
        person = self.people.get(str(form.get("person", "")))
        nonce = str(form.get("nonce", ""))
        if problem or person is None or not nonce:
            return web.Response(status=400, text=f"invalid request: {problem or 'person'}\n")
        self._sweep()
        if len(self._codes) >= MAX_PENDING:
            return web.Response(status=503, text="too many sign-ins in progress\n")
        code = secrets.token_urlsafe(24)
        acr = loa.FTN_LOA3 if form.get("loa3") else loa.FTN_LOA2
        self._codes[code] = _Pending(person, client_id, redirect_uri, nonce, acr)
        query = {"code": code}
        if form.get("state"):
            query["state"] = str(form["state"])
        raise web.HTTPFound(f"{redirect_uri}?{urlencode(query)}")

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        pending = self._codes.pop(str(form.get("code", "")), None)
        if (
            form.get("grant_type") != "authorization_code"
            or pending is None
            or pending.expires < time.monotonic()
            or str(form.get("client_id", "")) != pending.client_id
            or str(form.get("redirect_uri", "")) != pending.redirect_uri
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        token = self.id_token(pending.person, nonce=pending.nonce, acr=pending.acr)
        return web.json_response({"id_token": token, "token_type": "Bearer", "expires_in": 600})

    # ---- tokens ----

    def id_token(self, person: DevPerson, *, nonce: str | None = None, acr: str = "") -> str:
        """A signed ID token of a test person (a fresh nonce unless given)."""
        claims = self.tokens.claims(
            **self.tokens.person(
                person.identity_code, person.given, person.family, list(person.roles) or None
            ),
            acr=acr or loa.FTN_LOA2,
            amr=["dev-idp"],
            urn__oid__1_dot_3_dot_6_dot_1_dot_5_dot_5_dot_7_dot_9_dot_1=person.birthdate.isoformat(),
        )
        if nonce is not None:
            claims["nonce"] = nonce
        return self.tokens.token(claims)

    def _sweep(self) -> None:
        now = time.monotonic()
        for code in [c for c, p in self._codes.items() if p.expires < now]:
            del self._codes[code]
