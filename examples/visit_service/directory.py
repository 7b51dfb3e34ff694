"""PersonDirectory: the names of people who have signed in to the visit service, by their
pseudonymous subject, so that calendars and access logs can say who (never identity codes)."""

from __future__ import annotations

from datetime import UTC, datetime

from examples.visit_service.sqlite_book import SqliteBook

SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    subject TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    professional INTEGER NOT NULL,
    last_seen TEXT NOT NULL
);
"""


class PersonDirectory(SqliteBook):
    SCHEMA = SCHEMA

    def remember(self, subject: str, name: str, *, professional: bool) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO people VALUES (?, ?, ?, ?) ON CONFLICT (subject) DO UPDATE SET "
                "name = excluded.name, professional = excluded.professional, "
                "last_seen = excluded.last_seen",
                (subject, name[:200], int(professional), datetime.now(UTC).isoformat()),
            )

    def name(self, subject: str | None) -> str | None:
        if not subject:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT name FROM people WHERE subject = ?", (subject,)
            ).fetchone()
        return row[0] if row else None

    def is_professional(self, subject: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT professional FROM people WHERE subject = ?", (subject,)
            ).fetchone()
        return bool(row and row[0])
