"""The identification audit trail: an append-only, hash-chained SQLite table.

Every identification attempt (accepted or refused) and every join and leave of an identified
peer appends one record; other plugins append theirs through
:meth:`~mediasrv_strongauth.plugin.StrongAuthPlugin.record` (the proxy plugin: every decision on
acting on behalf of someone, with ``principal``, ``basis`` and the reasons in ``detail``).

Each record carries ``prev_hash`` (the ``hash`` of the record before it; 64 zeros for the
first) and ``hash`` = SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8) of all its
columns except ``hash`` — ``prev_hash`` included; the schema 2 columns ``principal``, ``basis``
and ``detail`` only when set — so that changing, removing or inserting a record breaks the chain
at that record or the next one
(:meth:`AuditLog.verify_chain`).
Removing the *last* records cannot be seen from the file alone: keep the head (``head()``,
``GET audit/verify``) somewhere else now and then to anchor it.

SQLite runs in WAL mode with ``synchronous=FULL``: a record is on disk (fsynced) when
:meth:`AuditLog.append` returns, so acknowledged records survive a crash or power loss. Triggers
refuse UPDATE and DELETE on the table (someone with the file can drop them; the chain still shows
what they did).

The token is kept as proof, encrypted (AES-256-GCM under a key derived from the subject salt,
see :class:`ProofCipher`), because it carries the national identity code; the chain covers the
ciphertext, so the proof's integrity is checked without decrypting it. The same transaction that
appends an accepted identification claims the token's nonce (table ``nonces``, kept until the
token's ``exp`` plus the clock skew), so a replay is refused across restarts too.

This module is synchronous; the plugin writes from one worker thread and reads from others.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

GENESIS = "0" * 64
SCHEMA_VERSION = "2"
MAX_LIMIT = 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,          -- UTC, 2025-01-31T12:00:00.000000Z (sorts as text)
    decision TEXT NOT NULL,      -- accepted | refused | joined | left | (other plugins') proxy_*
    reason TEXT NOT NULL,        -- the refusal code; '' otherwise
    room TEXT NOT NULL,
    peer TEXT,                   -- the local peer id (joined/left)
    remote TEXT NOT NULL,        -- client IP address
    iss TEXT, sub TEXT, acr TEXT,
    amr TEXT,                    -- canonical JSON list
    auth_time INTEGER, iat INTEGER, nonce TEXT,
    sid TEXT,                    -- the broker's session id
    subject TEXT,                -- pseudonymous subject (HMAC of the national identity code)
    ref INTEGER,                 -- joined/left: the accepted identification record
    proof TEXT,                  -- the token, encrypted (ProofCipher)
    principal TEXT,              -- v2: acting on behalf of this pseudonymous subject
    basis TEXT,                  -- v2: on what basis (GUARDIAN_OF_MINOR, MANDATE, ...)
    detail TEXT,                 -- v2: canonical JSON object (reasons, issue, grant, ...)
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_subject ON audit (subject, time);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TABLE IF NOT EXISTS nonces (
    iss TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (iss, nonce)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_expires ON nonces (expires);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

COLUMNS = (
    "id",
    "time",
    "decision",
    "reason",
    "room",
    "peer",
    "remote",
    "iss",
    "sub",
    "acr",
    "amr",
    "auth_time",
    "iat",
    "nonce",
    "sid",
    "subject",
    "ref",
    "proof",
    "principal",
    "basis",
    "detail",
    "prev_hash",
    "hash",
)
# columns added in schema 2: left out of a record's hash when empty, so that the records
# written before them keep their hashes
V2_COLUMNS = ("principal", "basis", "detail")


def utc_text(when: float) -> str:
    """A record's time: UTC with microseconds, fixed width (so text order is time order)."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(row: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of a record's columns (``hash`` left out)."""
    fields = {k: v for k, v in row.items() if k != "hash" and not (k in V2_COLUMNS and v is None)}
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()


class ProofCipher:
    """AES-256-GCM for the proof tokens, keyed by HKDF-SHA256 of the subject salt.

    Whoever holds the plugin's configuration can read the proofs (to show them to the person or
    to a court); a copy of the database alone cannot.
    """

    INFO = b"mediasrv-strongauth audit proof v1"

    def __init__(self, secret: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=self.INFO).derive(
            secret.encode("utf-8")
        )
        self._aead = AESGCM(key)

    def seal(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), self.INFO)
        return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str) -> str:
        raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
        return self._aead.decrypt(raw[:12], raw[12:], self.INFO).decode("utf-8")


@dataclass(frozen=True)
class AuditEntry:
    """What one record says (the log adds id, time, prev_hash and hash)."""

    decision: str
    reason: str = ""
    room: str = ""
    peer: str | None = None
    remote: str = ""
    iss: str | None = None
    sub: str | None = None
    acr: str | None = None
    amr: list[str] | None = None
    auth_time: int | None = None
    iat: int | None = None
    nonce: str | None = None
    sid: str | None = None
    subject: str | None = None
    ref: int | None = None
    proof: str | None = None  # plaintext here; sealed when written
    principal: str | None = None  # the pseudonymous subject acted for
    basis: str | None = None
    detail: dict[str, Any] | None = None  # stored as canonical JSON


@dataclass(frozen=True)
class NonceClaim:
    """Claim a token's nonce in the same transaction as its record (a replay fails)."""

    iss: str
    nonce: str
    expires: int  # unix time after which the token is expired anyway


class AuditLog:
    """One SQLite audit database. Appends are serialized (one lock; the plugin writes from one
    thread); reads open read-only connections of their own and may run in any thread."""

    def __init__(self, path: str, cipher: ProofCipher) -> None:
        self.path = path
        self.cipher = cipher
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self._migrate()
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
        )

    def _migrate(self) -> None:
        """Schema 1 → 2: the on-behalf columns (records already written keep their hashes)."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(audit)")}
        for column in V2_COLUMNS:
            if column not in have:
                self._db.execute(f"ALTER TABLE audit ADD COLUMN {column} TEXT")
        self._db.execute("CREATE INDEX IF NOT EXISTS audit_principal ON audit (principal, time)")

    @property
    def journal_mode(self) -> str:
        with self._lock:
            return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    @property
    def synchronous(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA synchronous").fetchone()[0])  # 2: FULL

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection of its own: reads (queries, chain checks) run beside the
        writer without waiting for it (WAL) and without holding it up."""
        uri = Path(self.path).resolve().as_uri() + "?mode=ro"
        db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        try:
            yield db
        finally:
            db.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- writing ----

    def append(
        self, entry: AuditEntry, *, now: float, nonce: NonceClaim | None = None
    ) -> tuple[int, bool]:
        """Append a record (and claim the nonce); returns its id and whether the nonce was
        already used — then the record written is a refusal ``token_nonce_replayed``."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                replayed = False
                if nonce is not None:
                    db.execute("DELETE FROM nonces WHERE expires < ?", (int(now),))
                    try:
                        db.execute(
                            "INSERT INTO nonces (iss, nonce, expires) VALUES (?, ?, ?)",
                            (nonce.iss, nonce.nonce, nonce.expires),
                        )
                    except sqlite3.IntegrityError:
                        replayed = True
                        entry = replace(entry, decision="refused", reason="token_nonce_replayed")
                record_id = self._insert(entry, now)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return record_id, replayed

    def _last(self) -> Any:
        return self._db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()

    def _insert(self, entry: AuditEntry, now: float) -> int:
        last = self._last()
        fields = asdict(entry)
        fields["amr"] = canonical_json(entry.amr) if entry.amr is not None else None
        fields["proof"] = self.cipher.seal(entry.proof) if entry.proof else None
        fields["detail"] = canonical_json(entry.detail) if entry.detail is not None else None
        row: dict[str, Any] = {
            "id": last[0] + 1 if last else 1,
            "time": utc_text(now),
            **fields,
            "prev_hash": last[1] if last else GENESIS,
        }
        row["hash"] = record_hash(row)
        self._db.execute(
            f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
            [row[c] for c in COLUMNS],
        )
        return int(row["id"])

    # ---- reading ----

    def nonce_used(self, iss: str, nonce: str) -> bool:
        with self._reader() as db:
            found = db.execute(
                "SELECT 1 FROM nonces WHERE iss = ? AND nonce = ?", (iss, nonce)
            ).fetchone()
        return found is not None

    def query(
        self,
        *,
        subject: str | None = None,
        principal: str | None = None,
        since: str | None = None,
        until: str | None = None,
        room: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Records in id order; ``since`` inclusive, ``until`` exclusive (utc_text strings);
        at most ``limit`` (≤ MAX_LIMIT) with id > ``after`` (for paging)."""
        where = ["id > ?"]
        args: list[Any] = [after]
        for column, op, value in (
            ("subject", "=", subject),
            ("principal", "=", principal),
            ("time", ">=", since),
            ("time", "<", until),
            ("room", "=", room),
        ):
            if value is not None:
                where.append(f"{column} {op} ?")
                args.append(value)
        args.append(max(1, min(limit, MAX_LIMIT)))
        sql = f"SELECT * FROM audit WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
        with self._reader() as db:
            cursor = db.execute(sql, args)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def verify_chain(self) -> int | None:
        """The id of the first record whose hash, link or position is wrong; None if intact."""
        expected_id, expected_prev = 1, GENESIS
        with self._reader() as db:
            cursor = db.execute(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY id")
            while batch := cursor.fetchmany(500):
                for values in batch:
                    row = dict(zip(COLUMNS, values, strict=True))
                    if (
                        row["id"] != expected_id
                        or row["prev_hash"] != expected_prev
                        or record_hash(row) != row["hash"]
                    ):
                        return int(row["id"])
                    expected_id, expected_prev = expected_id + 1, row["hash"]
        return None

    def head(self) -> tuple[int, str]:
        """The last record's id and hash (to anchor the chain elsewhere)."""
        with self._reader() as db:
            last = db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        return (int(last[0]), str(last[1])) if last else (0, GENESIS)

    def open_proof(self, sealed: str) -> str:
        return self.cipher.open(sealed)
