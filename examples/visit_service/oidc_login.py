"""OidcLogin: the authorization-code flow of the visit service's sign-in, against the
development identity provider or a real OIDC broker.

``begin()`` makes a state and a nonce (kept here, ten minutes, single use) and the URL of the
provider's login; ``finish()`` checks the state, exchanges the code for the ID token at the
token endpoint (client_secret_post) and returns it with the expected nonce: the caller
verifies the token (strongauth) and compares the nonce.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

PENDING_SECONDS = 600
MAX_PENDING = 5000
MAX_PENDING_PER_ADDRESS = 20
TIMEOUT = aiohttp.ClientTimeout(total=10)


class LoginError(Exception):
    """The sign-in could not be completed; the message can be shown."""


@dataclass(frozen=True)
class PendingLogin:
    nonce: str
    return_to: str
    created: float
    browser: str  # SHA-256 of the secret in the browser's sign-in cookie
    remote: str  # the address that started it (a bound on sign-ins per address)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class OidcLogin:
    def __init__(
        self,
        issuer: str,
        client_id: str,
        redirect_uri: str,
        *,
        client_secret: str = "",
        acr_values: str = "",
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.acr_values = acr_values
        self._metadata: dict[str, Any] | None = None
        self._pending: dict[str, PendingLogin] = {}
        self._lock = asyncio.Lock()

    async def metadata(self) -> dict[str, Any]:
        async with self._lock:
            if self._metadata is None:
                url = f"{self.issuer}/.well-known/openid-configuration"
                try:
                    async with aiohttp.ClientSession(timeout=TIMEOUT) as http, http.get(url) as r:
                        found = await r.json(content_type=None) if r.status == 200 else None
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    found = None
                if not isinstance(found, dict) or not all(
                    isinstance(found.get(k), str)
                    for k in ("authorization_endpoint", "token_endpoint", "issuer")
                ):
                    raise LoginError("the identification service cannot be reached")
                self._metadata = found
            return self._metadata

    async def begin(self, return_to: str, remote: str) -> tuple[str, str]:
        """The URL of the provider's sign-in page, and a secret for a cookie of this browser:
        ``finish`` takes the sign-in only from the browser that started it."""
        meta = await self.metadata()
        now = time.monotonic()
        for key, pending in list(self._pending.items()):
            if now - pending.created > PENDING_SECONDS:
                del self._pending[key]
        mine = sum(1 for p in self._pending.values() if p.remote == remote)
        if len(self._pending) >= MAX_PENDING or mine >= MAX_PENDING_PER_ADDRESS:
            raise LoginError("too many sign-ins are under way; try again in a moment")
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        browser = secrets.token_urlsafe(24)
        self._pending[state] = PendingLogin(nonce, return_to, now, _digest(browser), remote)
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid profile",
            "state": state,
            "nonce": nonce,
        }
        if self.acr_values:
            query["acr_values"] = self.acr_values
        return f"{meta['authorization_endpoint']}?{urlencode(query)}", browser

    async def finish(self, state: str, code: str, browser: str) -> tuple[str, PendingLogin]:
        """The ID token of a completed sign-in and what ``begin`` kept for it; ``browser`` is
        the secret of the sign-in cookie (a sign-in started elsewhere is refused)."""
        pending = self._pending.get(state) if isinstance(state, str) else None
        if pending is None or time.monotonic() - pending.created > PENDING_SECONDS:
            raise LoginError("the sign-in has expired or was already used; please sign in again")
        if not hmac.compare_digest(pending.browser, _digest(browser or "")):
            raise LoginError("the sign-in was started in another browser; please sign in again")
        del self._pending[state]
        if not isinstance(code, str) or not 0 < len(code) <= 2048:
            raise LoginError("the identification service returned no code")
        meta = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "client_id": self.client_id,
        }
        if self.client_secret:
            form["client_secret"] = self.client_secret
        try:
            async with (
                aiohttp.ClientSession(timeout=TIMEOUT) as http,
                http.post(meta["token_endpoint"], data=form) as response,
            ):
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            raise LoginError("the identification service did not answer") from None
        token = body.get("id_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise LoginError("the identification service returned no ID token")
        return token, pending
