"""The local grant store: grants, guardians' confirmations and professionals' assessments in
SQLite (WAL, ``synchronous=FULL``: what the admin API acknowledged is on disk).

Synchronous; the plugin calls it from one worker thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from mediasrv_proxy.basis import Basis
from mediasrv_proxy.grant import Grant

SCHEMA = """
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,          -- pseudonymous subjects, never identity codes
    principal_name TEXT NOT NULL,
    principal_birthdate TEXT,         -- ISO date
    delegate TEXT NOT NULL,
    delegate_name TEXT NOT NULL,
    basis TEXT NOT NULL,
    issues TEXT NOT NULL,             -- JSON list
    valid_from TEXT,                  -- ISO 8601 UTC
    valid_until TEXT,
    guardians_required INTEGER NOT NULL,
    revoked_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_pair ON grants (principal, delegate);
CREATE INDEX IF NOT EXISTS grants_delegate ON grants (delegate);
CREATE TABLE IF NOT EXISTS confirmations (
    grant_id TEXT NOT NULL REFERENCES grants (id),
    guardian TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (grant_id, guardian)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS assessments (
    room TEXT NOT NULL,
    principal TEXT NOT NULL,
    decides_self INTEGER NOT NULL,
    by_subject TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (room, principal)
) WITHOUT ROWID;
"""


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat() if when is not None else None


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class GrantStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- grants ----

    def add(self, grant: Grant) -> Grant:
        """Store a new grant (its id is made here when empty)."""
        if not grant.id:
            grant = replace(grant, id=uuid.uuid4().hex)
        with self._lock:
            self._db.execute(
                "INSERT INTO grants (id, principal, principal_name, principal_birthdate, "
                "delegate, delegate_name, basis, issues, valid_from, valid_until, "
                "guardians_required, revoked_at, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                (
                    grant.id,
                    grant.principal,
                    grant.principal_name,
                    grant.principal_birthdate.isoformat() if grant.principal_birthdate else None,
                    grant.delegate,
                    grant.delegate_name,
                    grant.basis.value,
                    json.dumps(list(grant.issues)),
                    _iso(grant.valid_from),
                    _iso(grant.valid_until),
                    grant.guardians_required,
                    _iso(datetime.now(UTC)),
                ),
            )
        return grant

    def _grants(self, where: str, args: tuple[Any, ...]) -> list[Grant]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, principal, principal_name, principal_birthdate, delegate, "
                f"delegate_name, basis, issues, valid_from, valid_until, guardians_required, "
                f"revoked_at FROM grants WHERE {where} ORDER BY created_at, id",
                args,
            ).fetchall()
            confirmed: dict[str, list[str]] = {}
            for row in rows:
                confirmed[row[0]] = [
                    r[0]
                    for r in self._db.execute(
                        "SELECT guardian FROM confirmations WHERE grant_id = ? ORDER BY at",
                        (row[0],),
                    )
                ]
        return [
            Grant(
                id=row[0],
                principal=row[1],
                principal_name=row[2],
                principal_birthdate=date.fromisoformat(row[3]) if row[3] else None,
                delegate=row[4],
                delegate_name=row[5],
                basis=Basis(row[6]),
                issues=tuple(json.loads(row[7])),
                valid_from=_when(row[8]),
                valid_until=_when(row[9]),
                guardians_required=row[10],
                confirmed_by=tuple(confirmed[row[0]]),
                revoked=row[11] is not None,
            )
            for row in rows
        ]

    def get(self, grant_id: str) -> Grant | None:
        found = self._grants("id = ?", (grant_id,))
        return found[0] if found else None

    def between(self, principal: str, delegate: str) -> list[Grant]:
        return self._grants("principal = ? AND delegate = ?", (principal, delegate))

    def of_delegate(self, delegate: str) -> list[Grant]:
        return self._grants("delegate = ?", (delegate,))

    def of_principal(self, principal: str) -> list[Grant]:
        return self._grants("principal = ?", (principal,))

    def revoke(self, grant_id: str) -> Grant | None:
        """Revoke a grant (kept, marked); the grant, or None when there is none."""
        with self._lock:
            self._db.execute(
                "UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (_iso(datetime.now(UTC)), grant_id),
            )
        return self.get(grant_id)

    def confirm(self, grant_id: str, guardian: str) -> Grant | None:
        """A guardian's confirmation of a mandate for their child (idempotent)."""
        with self._lock:
            if self._db.execute("SELECT 1 FROM grants WHERE id = ?", (grant_id,)).fetchone():
                self._db.execute(
                    "INSERT OR IGNORE INTO confirmations (grant_id, guardian, at) VALUES (?, ?, ?)",
                    (grant_id, guardian, _iso(datetime.now(UTC))),
                )
        return self.get(grant_id)

    # ---- assessments of minors aged 12 to 17 ----

    def assess(
        self, room: str, principal: str, decides_self: bool, by: str, at: float | None = None
    ) -> None:
        when = datetime.fromtimestamp(at, UTC) if at is not None else datetime.now(UTC)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO assessments (room, principal, decides_self, by_subject, "
                "at) VALUES (?, ?, ?, ?, ?)",
                (room, principal, int(decides_self), by, _iso(when)),
            )

    def assessment(self, room: str, principal: str, not_before: float = 0.0) -> bool | None:
        """The assessment made in a visit (room) since a Unix time; None when there is none."""
        cutoff = _iso(datetime.fromtimestamp(not_before, UTC))
        with self._lock:
            row = self._db.execute(
                "SELECT decides_self FROM assessments WHERE room = ? AND principal = ? AND at >= ?",
                (room, principal, cutoff),
            ).fetchone()
        return None if row is None else bool(row[0])

    def purge_assessments(self, older_than: float) -> int:
        """Forget assessments made before a Unix time (they are per visit)."""
        cutoff = _iso(datetime.fromtimestamp(older_than, UTC))
        with self._lock:
            return self._db.execute("DELETE FROM assessments WHERE at < ?", (cutoff,)).rowcount


def grant_fields(grant: Grant, *, hide_public_guardian: bool = True) -> dict[str, Any]:
    """A grant as JSON for the admin API. A public guardian is an office: the person acting in
    it is never shown (not even pseudonymously)."""
    hidden = hide_public_guardian and grant.basis is Basis.PUBLIC_GUARDIAN
    return {
        "id": grant.id,
        "principal": grant.principal,
        "principalName": grant.principal_name,
        "principalBirthdate": (
            grant.principal_birthdate.isoformat() if grant.principal_birthdate else None
        ),
        "delegate": None if hidden else grant.delegate,
        "delegateName": grant.delegate_name,
        "basis": grant.basis.value,
        "issues": list(grant.issues),
        "validFrom": _iso(grant.valid_from),
        "validUntil": _iso(grant.valid_until),
        "guardiansRequired": grant.guardians_required,
        "confirmations": len(set(grant.confirmed_by)),
        "revoked": grant.revoked,
        "source": grant.source,
    }
