"""The proof a node of a cluster sends with a signaling connection it relays to another node
(header ``X-Mediasrv-Relayed``): ``<node id> <target node id> <unix time> <nonce>
<HMAC-SHA256 hex>``, keyed with the cluster's shared ``secret``. A node serves a relayed
connection itself, even taking the room over from its recorded owner, so the header must not
be forgeable by a client, nor reusable: a proof names the node it is for, is valid for
MAX_AGE seconds either way (clock skew between nodes), and is accepted once (RelayProofs
remembers the nonces it has seen for that long). The secret never crosses the wire."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

HEADER = "X-Mediasrv-Relayed"
MAX_AGE = 60.0
MAX_LENGTH = 256
MAX_REMEMBERED = 100_000  # nonces kept at once; more proofs than that in MAX_AGE are refused
_PROOF = re.compile(r"(\S{1,64}) (\S{1,64}) ([0-9]{1,12}) ([0-9a-f]{32}) ([0-9a-f]{64})")


def _mac(secret: str, node_id: str, target: str, stamp: int, nonce: str) -> str:
    message = f"mediasrv-relay|{node_id}|{target}|{stamp}|{nonce}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def make_proof(secret: str, node_id: str, target: str, now: float | None = None) -> str:
    """A proof that node ``node_id`` relays this connection to node ``target``."""
    stamp = int(time.time() if now is None else now)
    nonce = secrets.token_hex(16)
    return f"{node_id} {target} {stamp} {nonce} {_mac(secret, node_id, target, stamp, nonce)}"


class RelayProofs:
    """A node's check of the proofs relayed connections bring."""

    def __init__(self, secret: str, node_id: str) -> None:
        self.secret = secret
        self.node_id = node_id
        self._seen: dict[str, float] = {}  # nonce -> when it may be forgotten

    def check(self, value: str, now: float | None = None) -> str | None:
        """The relaying node's id when ``value`` is a valid proof for this node, seen for the
        first time; else None (whatever the value holds)."""
        if not self.secret or len(value) > MAX_LENGTH or not value.isascii():
            return None
        found = _PROOF.fullmatch(value)
        if found is None:
            return None
        node_id, target, stamp, nonce, mac = found.groups()
        now = time.time() if now is None else now
        if target != self.node_id or abs(now - int(stamp)) > MAX_AGE:
            return None
        if not hmac.compare_digest(mac, _mac(self.secret, node_id, target, int(stamp), nonce)):
            return None
        self._forget(now)
        if nonce in self._seen or len(self._seen) >= MAX_REMEMBERED:
            return None
        self._seen[nonce] = int(stamp) + MAX_AGE
        return node_id

    def _forget(self, now: float) -> None:
        if self._seen and next(iter(self._seen.values())) < now:
            self._seen = {n: until for n, until in self._seen.items() if until >= now}
