"""Verification of an OpenID Connect ID token: JWE decryption, JWS signature, standard claims.

Each refusal is a :class:`Refused` (a :class:`~mediasrv.plugin.Denied`) with its own code. The
messages name what is wrong but never quote the token or a person claim; the values they quote
(algorithm names, issuer, audience, times) are capped in length.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jwe, jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import Key, RSAKey

from mediasrv.plugin import Denied
from mediasrv_strongauth.jwks import JwksCache, JwksUnavailable, key_fits

JWS_ALGS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384")
JWE_ALGS = ("RSA-OAEP", "RSA-OAEP-256")
JWE_ENCS = ("A128CBC-HS256", "A256CBC-HS512", "A128GCM", "A256GCM")
MAX_TOKEN = 16 * 1024  # characters; real ID tokens are a few kilobytes
MAX_NONCE = 512
SEGMENT = re.compile(r"^[A-Za-z0-9_-]*$")


class Refused(Denied):
    """A refused token; ``claims`` are set once its signature verified, ``proof`` is the token
    (the inner signed JWT of a decrypted JWE) to keep in the audit trail."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        claims: dict[str, Any] | None = None,
        proof: str = "",
    ) -> None:
        super().__init__(code, message)
        self.claims = claims
        self.proof = proof


@dataclass(frozen=True)
class VerifiedToken:
    signed: str  # the signed JWT (JWS compact), kept as proof
    header: dict[str, Any]
    claims: dict[str, Any]
    encrypted: bool  # it arrived as a JWE


def shown(value: object, limit: int = 80) -> str:
    """A value quoted in a message, capped."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _b64_json(segment: str, what: str) -> dict[str, Any]:
    if not SEGMENT.match(segment):
        raise Refused("token_malformed", f"the {what} is not base64url")
    try:
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        raise Refused("token_malformed", f"the {what} is not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise Refused("token_malformed", f"the {what} is not a JSON object")
    return value


def _number(claims: dict[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise Refused("token_malformed", f"the {name} claim is missing", claims=claims)
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise Refused("token_malformed", f"the {name} claim is not a number", claims=claims)
    return float(value)


class TokenVerifier:
    """Checks tokens of one issuer for one audience (the client id of this service)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks: JwksCache,
        clock_skew: int,
        decryption_key: RSAKey | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwks
        self.clock_skew = clock_skew
        self.decryption_key = decryption_key
        self.clock = clock

    async def verify(self, token: object) -> VerifiedToken:
        if not isinstance(token, str) or not token:
            raise Refused("token_malformed", "the token is empty")
        if len(token) > MAX_TOKEN:
            raise Refused("token_malformed", f"the token is longer than {MAX_TOKEN} characters")
        parts = token.split(".")
        encrypted = len(parts) == 5
        if encrypted:
            signed = self.decrypt(token, parts)
            parts = signed.split(".")
            if len(parts) != 3:
                raise Refused(
                    "token_malformed",
                    "the encrypted token does not contain a signed JWT",
                    proof=signed,
                )
        elif len(parts) == 3:
            signed = token
        else:
            raise Refused(
                "token_malformed",
                f"a token has 3 (JWS) or 5 (JWE) dot-separated parts, not {len(parts)}",
                proof=token,
            )
        header, claims = await self._verify_signature(signed, parts)
        self._check_claims(claims, signed)
        return VerifiedToken(signed, header, claims, encrypted)

    # ---- JWE ----

    def decrypt(self, token: str, parts: list[str]) -> str:
        """The signed JWT inside a JWE encrypted to this service's RSA key."""
        header = _b64_json(parts[0], "JWE header")
        alg, enc = header.get("alg"), header.get("enc")
        if self.decryption_key is None:
            raise Refused(
                "token_decrypt",
                "the token is encrypted (JWE) but no decryption key is configured",
                proof=token,
            )
        if alg not in JWE_ALGS:
            raise Refused(
                "token_decrypt",
                f"JWE key management alg {shown(alg)} is not accepted "
                f"(accepted: {', '.join(JWE_ALGS)})",
                proof=token,
            )
        if enc not in JWE_ENCS:
            raise Refused(
                "token_decrypt",
                f"JWE content encryption {shown(enc)} is not accepted "
                f"(accepted: {', '.join(JWE_ENCS)})",
                proof=token,
            )
        if "zip" in header:
            raise Refused("token_decrypt", "compressed (zip) JWE is not accepted", proof=token)
        try:
            result = jwe.decrypt_compact(token, self.decryption_key, algorithms=[alg, enc])
        except (JoseError, ValueError, TypeError):
            raise Refused(
                "token_decrypt",
                "the token could not be decrypted with the configured key "
                "(encrypted to another key, or altered)",
                proof=token,
            ) from None
        try:
            return (result.plaintext or b"").decode("ascii")
        except UnicodeDecodeError:
            raise Refused(
                "token_malformed", "the encrypted token does not contain a JWT", proof=token
            ) from None

    # ---- JWS ----

    async def _verify_signature(
        self, signed: str, parts: list[str]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        header = _b64_json(parts[0], "JWS header")
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise Refused("token_malformed", "the JWS header has no alg", proof=signed)
        if alg.lower() == "none":
            raise Refused(
                "token_alg", "alg 'none' is refused: the token must be signed", proof=signed
            )
        if alg.upper().startswith("HS"):
            raise Refused(
                "token_alg",
                f"alg {shown(alg)} is refused: symmetric (HMAC) signatures are not accepted "
                "for ID tokens (algorithm confusion)",
                proof=signed,
            )
        if alg not in JWS_ALGS:
            raise Refused(
                "token_alg",
                f"alg {shown(alg)} is not accepted (accepted: {', '.join(JWS_ALGS)})",
                proof=signed,
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Refused("token_malformed", "the JWS header kid is not a string", proof=signed)
        try:
            keys = [k for k in await self.jwks.keys_for(kid) if key_fits(k, alg)]
        except JwksUnavailable as exc:
            raise Refused(
                "jwks_unavailable",
                f"the identity broker's signing keys could not be fetched ({exc})",
                proof=signed,
            ) from None
        if not keys:
            raise Refused(
                "token_signature",
                f"no {alg} key with kid {shown(kid)} in the issuer's key set (after a refresh)",
                proof=signed,
            )
        payload = self._signed_payload(signed, alg, keys)
        try:
            claims = json.loads(payload)
        except (ValueError, RecursionError):
            raise Refused("token_malformed", "the payload is not JSON", proof=signed) from None
        if not isinstance(claims, dict):
            raise Refused("token_malformed", "the payload is not a JSON object", proof=signed)
        return header, claims

    @staticmethod
    def _signed_payload(signed: str, alg: str, keys: list[Key]) -> bytes:
        for key in keys:
            try:
                obj = jws.deserialize_compact(signed, key, algorithms=[alg])
            except BadSignatureError:
                continue
            except (JoseError, ValueError, TypeError) as exc:
                raise Refused(
                    "token_malformed",
                    f"the JWS could not be read ({type(exc).__name__})",
                    proof=signed,
                ) from None
            return obj.payload or b""
        raise Refused(
            "token_signature",
            f"the {alg} signature does not verify with the issuer's key",
            proof=signed,
        )

    # ---- claims ----

    def _check_claims(self, claims: dict[str, Any], signed: str) -> None:
        def refuse(code: str, message: str) -> Refused:
            return Refused(code, message, claims=claims, proof=signed)

        if claims.get("iss") != self.issuer:
            raise refuse(
                "token_issuer",
                f"issuer {shown(claims.get('iss'))} is not the configured {shown(self.issuer)}",
            )
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or self.audience not in audiences:
            raise refuse(
                "token_audience",
                f"the token is for audience {shown(aud)}, not {shown(self.audience)}",
            )
        azp = claims.get("azp")
        if azp is not None and azp != self.audience:
            raise refuse(
                "token_audience",
                f"the token's authorized party {shown(azp)} is not {shown(self.audience)}",
            )
        try:
            self._check_times(claims)
        except Refused as exc:
            raise refuse(exc.code, exc.message) from None
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not nonce:
            raise refuse("token_nonce_missing", "the token has no nonce claim (replay protection)")
        if len(nonce) > MAX_NONCE:
            raise refuse("token_malformed", f"the nonce is longer than {MAX_NONCE} characters")

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self.clock()
        skew = self.clock_skew
        exp = _number(claims, "exp", required=True)
        iat = _number(claims, "iat", required=True)
        nbf = _number(claims, "nbf", required=False)
        assert exp is not None and iat is not None
        if now > exp + skew:
            raise Refused(
                "token_expired",
                f"the token expired {now - exp:.0f} s ago (clock skew allowed: {skew} s)",
            )
        if iat > now + skew:
            raise Refused(
                "token_not_yet_valid",
                f"the token is issued {iat - now:.0f} s in the future (clock skew allowed: "
                f"{skew} s)",
            )
        if nbf is not None and nbf > now + skew:
            raise Refused(
                "token_not_yet_valid",
                f"the token is not valid for another {nbf - now:.0f} s (clock skew allowed: "
                f"{skew} s)",
            )
