"""The proof a node of a cluster sends with a signaling connection it relays to another node
(header ``X-Mediasrv-Relayed``): ``<node id> <unix time> <HMAC-SHA256 hex>``, keyed with the
cluster's shared ``secret``. A node serves a relayed connection itself, even taking the room
over from its recorded owner, so the header must not be forgeable by a client. The proof is
valid for MAX_AGE seconds either way (clock skew between nodes); the secret never crosses
the wire."""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Mediasrv-Relayed"
MAX_AGE = 60.0
MAX_LENGTH = 256


def _mac(secret: str, node_id: str, stamp: int) -> str:
    message = f"mediasrv-relay|{node_id}|{stamp}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def make_proof(secret: str, node_id: str, now: float | None = None) -> str:
    stamp = int(time.time() if now is None else now)
    return f"{node_id} {stamp} {_mac(secret, node_id, stamp)}"


def check_proof(secret: str, value: str, now: float | None = None) -> str | None:
    """The relaying node's id when ``value`` is a valid proof, else None."""
    if not secret or len(value) > MAX_LENGTH:
        return None
    parts = value.split(" ")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    node_id, stamp, mac = parts[0], int(parts[1]), parts[2]
    if abs((time.time() if now is None else now) - stamp) > MAX_AGE:
        return None
    return node_id if hmac.compare_digest(mac, _mac(secret, node_id, stamp)) else None
