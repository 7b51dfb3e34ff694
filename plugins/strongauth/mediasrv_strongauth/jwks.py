"""The identity broker's signing keys: its JWKS, fetched with aiohttp and cached.

The set is fetched when first needed and again once it is older than ``cache_seconds``. A token
whose ``kid`` is not in the set makes one early refetch (the broker rotated its keys), at most one
per ``min_refetch_interval`` seconds so that tokens with made-up kids cannot hammer the broker.
When the broker cannot be reached the keys already known stay in use for ``max_stale`` seconds
past their expiry; with no usable keys at all :class:`JwksUnavailable` is raised.

Only asymmetric signing keys are kept: RSA (at least 2048 bits) and EC (P-256, P-384) keys whose
``use`` is not "enc"; private members are dropped, ``oct`` keys are never used.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

import aiohttp
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, Key, RSAKey

log = logging.getLogger("mediasrv.plugins.strongauth")

MIN_RSA_BITS = 2048
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
KEY_CURVES = {"ES256": "P-256", "ES384": "P-384"}


class JwksUnavailable(Exception):
    """The key set could not be fetched (or held no usable key) and none is cached."""


def parse_jwks(data: Any) -> list[Key]:
    """The usable signing keys of a JWKS document (unusable members are skipped)."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise JwksUnavailable("the document is not a JWKS (no 'keys' list)")
    keys: list[Key] = []
    for item in data["keys"]:
        if not isinstance(item, dict) or item.get("use", "sig") != "sig":
            continue
        ops = item.get("key_ops")
        if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
            continue
        public = {k: v for k, v in item.items() if k not in PRIVATE_MEMBERS}
        key: Key
        try:
            if public.get("kty") == "RSA":
                with warnings.catch_warnings():  # short keys are skipped below, with a warning
                    warnings.simplefilter("ignore", SecurityWarning)
                    key = RSAKey.import_key(public)
                if key.public_key.key_size < MIN_RSA_BITS:
                    log.warning("strongauth: JWKS key %r skipped: RSA below 2048 bits", key.kid)
                    continue
            elif public.get("kty") == "EC" and public.get("crv") in KEY_CURVES.values():
                key = ECKey.import_key(public)
            else:
                continue  # oct keys, other curves and key types are never used
        except (JoseError, ValueError, TypeError, KeyError):
            continue
        key.ensure_kid()
        keys.append(key)
    return keys


def key_fits(key: Key, alg: str) -> bool:
    """May this key verify a signature of this algorithm?"""
    declared = key.get("alg")
    if declared is not None and declared != alg:
        return False
    if alg.startswith(("RS", "PS")):
        return isinstance(key, RSAKey)
    return isinstance(key, ECKey) and key.curve_name == KEY_CURVES.get(alg)


class JwksCache:
    """The keys of one JWKS URI."""

    min_refetch_interval = 10.0  # between refetches caused by unknown kids, seconds
    fetch_timeout = 5.0
    max_document = 512 * 1024  # bytes
    max_stale = 3600.0  # how long known keys outlive their expiry while the broker is down

    def __init__(
        self,
        uri: str,
        cache_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uri = uri
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.fetches = 0  # successful fetches
        self.failures = 0
        self._keys: list[Key] = []
        self._fetched_at: float | None = None
        self._retry_at = 0.0
        self._last_unknown_kid_fetch: float | None = None
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def keys_for(self, kid: str | None) -> list[Key]:
        """The keys that may have signed a token with this kid (all keys when it has none).

        An unknown kid refetches the set once (rate-limited); [] means it is still unknown.
        """
        async with self._lock:
            now = self.clock()
            fetches = self.fetches
            if self._fetched_at is None or (
                now - self._fetched_at >= self.cache_seconds and now >= self._retry_at
            ):
                await self._refresh(now)
            found = self._match(kid)
            if found or kid is None or self.fetches != fetches:  # just fetched: no refetch
                return found
            last = self._last_unknown_kid_fetch
            if last is not None and now - last < self.min_refetch_interval:
                return []
            self._last_unknown_kid_fetch = now
            await self._fetch()  # an unknown kid with an unreachable broker: unavailable
            return self._match(kid)

    def _match(self, kid: str | None) -> list[Key]:
        return [k for k in self._keys if kid is None or k.kid == kid]

    async def _refresh(self, now: float) -> None:
        """A due refresh; known keys stay in use for a while if the broker is down."""
        try:
            await self._fetch()
        except JwksUnavailable as exc:
            self._retry_at = now + self.min_refetch_interval
            fetched = self._fetched_at
            if fetched is None or now - fetched > self.cache_seconds + self.max_stale:
                raise
            log.warning("strongauth: JWKS refresh failed (%s); keeping the known keys", exc)

    async def _fetch(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.fetch_timeout)
            )
        try:
            async with self._session.get(self.uri, allow_redirects=False) as response:
                if response.status != 200:
                    raise JwksUnavailable(f"{self.uri} answered HTTP {response.status}")
                body = await response.content.read(self.max_document + 1)
            if len(body) > self.max_document:
                raise JwksUnavailable(f"{self.uri}: the JWKS is larger than {self.max_document}")
            data = json.loads(body)
        except JwksUnavailable:
            self.failures += 1
            raise
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.failures += 1
            raise JwksUnavailable(f"{self.uri}: {type(exc).__name__}: {exc}") from None
        keys = parse_jwks(data)
        if not keys:
            self.failures += 1
            raise JwksUnavailable(f"{self.uri}: the JWKS has no usable signing key")
        self._keys = keys
        self._fetched_at = self.clock()
        self.fetches += 1
        log.info("strongauth: JWKS fetched: %d signing keys", len(keys))
