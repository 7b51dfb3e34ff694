"""Short-lived TURN credentials of the TURN REST API scheme, as coturn checks them with
``use-auth-secret`` and ``static-auth-secret``: the username is ``<expiry>:<subject>`` (expiry in
Unix seconds), the password base64(HMAC-SHA1(secret, username)). The TURN server needs no user
database and a credential stops working at its expiry; the subject is a peer id, never a name,
so the TURN server's logs carry no personal data."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from mediasrv.config import TurnConfig


def turn_password(secret: str, username: str) -> str:
    """The password coturn derives from its static-auth-secret for a username."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def ice_servers(config: TurnConfig, subject: str, now: float | None = None) -> list[dict[str, Any]]:
    """The ``iceServers`` of an RTCConfiguration for one peer: the TURN URLs with a credential
    valid for ``config.ttl`` seconds, and any STUN URLs; [] when none are configured."""
    if not subject or ":" in subject:
        raise ValueError("a TURN credential's subject is a non-empty id without ':'")
    servers: list[dict[str, Any]] = []
    relays = list(config.relays)
    if relays:
        expiry = int(time.time() if now is None else now) + config.ttl
        username = f"{expiry}:{subject}"
        servers.append(
            {
                "urls": relays,
                "username": username,
                "credential": turn_password(config.secret, username),
            }
        )
    stuns = [u for u in config.urls if u.startswith("stun:")]
    if stuns:
        servers.append({"urls": stuns})
    return servers
