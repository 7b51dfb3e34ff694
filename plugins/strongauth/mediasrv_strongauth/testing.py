"""A local OpenID Connect issuer for tests and development — never for production.

:class:`LocalIssuer` plays an identity broker of the Finnish Trust Network: it makes real
signing keys (RSA 2048 and EC P-256), serves them as a JWKS over HTTP on 127.0.0.1, and issues
real signed ID tokens with a level of assurance and the person claims the strongauth plugin
reads (national identity code, names, roles). Point the plugin's ``issuer`` and ``jwks_uri`` at
it::

    issuer = LocalIssuer(audience="mediasrv-visits")
    await issuer.start()
    config = {"issuer": issuer.issuer, "jwks_uri": issuer.jwks_uri, ...}
    token = issuer.token(issuer.claims(**issuer.person("010115A901T", "Olli", "Oppilas")))
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey

from mediasrv_strongauth import loa

IDENTITY_CODE_CLAIM = "urn:oid:1.2.246.21"
GIVEN_NAME_CLAIM = "urn:oid:1.2.246.575.1.14"
FAMILY_NAME_CLAIM = "urn:oid:2.5.4.4"
DEFAULT_CODE = "131052-308T"  # the Digital and Population Data Services Agency's example


class LocalIssuer:
    """An identity broker on 127.0.0.1: signing keys, a JWKS endpoint, ID tokens."""

    def __init__(self, audience: str = "mediasrv-visits", host: str = "127.0.0.1") -> None:
        self.audience = audience
        self.host = host
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"})
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"})
        self.published: list[Key] = [self.rsa, self.ec]
        self.jwks_requests = 0
        self.jwks_status = 200  # anything else: the JWKS endpoint fails with it
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_get("/jwks", self._jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://{self.host}:{bound}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def jwks(self) -> dict[str, Any]:
        """The published keys as a JWKS document (public parts only)."""
        return {"keys": [k.as_dict(private=False) for k in self.published]}

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_requests += 1
        if self.jwks_status != 200:
            return web.Response(status=self.jwks_status, text="broker down")
        return web.json_response(self.jwks())

    @property
    def jwks_uri(self) -> str:
        return self.url + "/jwks"

    @property
    def issuer(self) -> str:
        return self.url  # the broker's iss

    @staticmethod
    def person(
        identity_code: str, given: str, family: str, roles: list[str] | None = None
    ) -> dict[str, Any]:
        """Claim changes for :meth:`claims` naming a person (keyword-safe names)."""
        changes: dict[str, Any] = {
            "urn__oid__1_dot_2_dot_246_dot_21": identity_code,
            "urn__oid__1_dot_2_dot_246_dot_575_dot_1_dot_14": given,
            "urn__oid__2_dot_5_dot_4_dot_4": family,
        }
        if roles is not None:
            changes["roles"] = roles
        return changes

    def claims(self, **changes: Any) -> dict[str, Any]:
        """The claims of a fresh, valid ID token (level of assurance loa2, a new nonce);
        ``changes`` replace claims (``__`` stands for ``:``, ``_dot_`` for ``.``; None
        removes one)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "broker-pairwise-" + uuid.uuid4().hex[:8],
            "exp": now + 600,
            "iat": now,
            "auth_time": now - 5,
            "nonce": uuid.uuid4().hex,
            "sid": "broker-session-" + uuid.uuid4().hex[:8],
            "acr": loa.FTN_LOA2,
            "amr": ["nordea"],
            IDENTITY_CODE_CLAIM: DEFAULT_CODE,
            GIVEN_NAME_CLAIM: "Tero",
            FAMILY_NAME_CLAIM: "Testi",
        }
        for name, value in changes.items():
            name = name.replace("__", ":").replace("_dot_", ".")
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def token(
        self,
        claims: dict[str, Any] | None = None,
        *,
        key: Key | None = None,
        alg: str = "RS256",
        kid: str | None = None,
    ) -> str:
        """A signed ID token (JWS compact) of these claims (default: :meth:`claims`)."""
        key = key if key is not None else self.rsa
        header = {"alg": alg, "kid": kid if kid is not None else key.kid}
        return jwt.encode(header, claims or self.claims(), key, algorithms=[alg])

    def token_for(
        self, identity_code: str, given: str, family: str, roles: list[str] | None = None
    ) -> str:
        """A fresh signed ID token of a person."""
        return self.token(self.claims(**self.person(identity_code, given, family, roles)))

    def rotate(self) -> RSAKey:
        """A new signing key with a new kid; the old one is withdrawn."""
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-2", "use": "sig"})
        self.published = [self.rsa, self.ec]
        return self.rsa
