"""The visit service's feedback book: the answers to the survey shown when a visit ends (a
score 0-10, "how likely would you recommend ...", and an optional comment), and the Net
Promoter Score the services report by month and by unit.

One answer per participant of a visit: answering again replaces the earlier answer. The
reports never show participant or appointment ids, only the month, visit type and unit of each
answer. SQLite in WAL mode with ``synchronous=FULL``, as the appointment book.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from examples.visit_service.appointments import MAX_TEXT, VisitType
from examples.visit_service.sqlite_book import SqliteBook

MAX_COMMENT = 2000  # characters, after stripping
MAX_COMMENTS_LISTED = 500
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


class FeedbackError(ValueError):
    """A refused answer or query; the message says what is wrong."""


SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    appointment_id TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    score INTEGER NOT NULL CHECK (score BETWEEN 0 AND 10),
    comment TEXT NOT NULL,           -- stripped, may be empty
    answered_at TEXT NOT NULL,       -- ISO 8601 UTC (sorts as text)
    visit_type TEXT NOT NULL,
    unit TEXT NOT NULL,
    month TEXT NOT NULL,             -- YYYY-MM of the visit
    PRIMARY KEY (appointment_id, participant_id)
);
CREATE INDEX IF NOT EXISTS feedback_month ON feedback (month);
CREATE INDEX IF NOT EXISTS feedback_answered ON feedback (answered_at);
"""

# answers, promoters (9-10), passives (7-8), detractors (0-6) of a group
_COUNTS = (
    "COUNT(*), SUM(score >= 9), SUM(score BETWEEN 7 AND 8), SUM(score <= 6) "
    "FROM feedback WHERE substr(month, 1, 4) = ?"
)


def _id(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise FeedbackError(f"{name} must be a non-empty text of at most {MAX_TEXT} characters")
    return value


def _score(value: object) -> int:
    # bool is an int subclass, but True is not a score
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise FeedbackError(f"score must be a whole number from 0 to 10, not {value!r}")
    return value


def _comment(value: object) -> str:
    if not isinstance(value, str):
        raise FeedbackError("comment must be a text (empty when there is none)")
    text = value.strip()
    if len(text) > MAX_COMMENT:
        raise FeedbackError(f"comment must be at most {MAX_COMMENT} characters, not {len(text)}")
    return text


def _visit_type(value: object) -> str:
    if isinstance(value, str) and value in {k.value for k in VisitType}:
        return VisitType(value).value
    kinds = ", ".join(k.value for k in VisitType)
    raise FeedbackError(f"visit_type must be one of {kinds}, not {value!r}")


def _unit(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise FeedbackError(f"unit must be a non-empty text of at most {MAX_TEXT} characters")
    return value.strip()


def _month(value: object) -> str:
    if not isinstance(value, str) or not _MONTH.fullmatch(value):
        raise FeedbackError(f"month must be YYYY-MM (such as 2026-11), not {value!r}")
    return value


def _year(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 9999:
        raise FeedbackError(f"year must be a whole number from 1 to 9999, not {value!r}")
    return f"{value:04d}"


def _figures(answers: int, promoters: int, passives: int, detractors: int) -> dict[str, int]:
    return {
        "answers": answers,
        "promoters": promoters,
        "passives": passives,
        "detractors": detractors,
        "nps": round(100 * (promoters - detractors) / answers),
    }


class FeedbackBook(SqliteBook):
    SCHEMA = SCHEMA

    def record(
        self,
        *,
        appointment_id: str,
        participant_id: str,
        score: int,
        comment: str,
        visit_type: str,
        unit: str,
        month: str,
        now: datetime,
    ) -> None:
        """Save a participant's answer about a visit, replacing an earlier one."""
        row = (
            _id("appointment_id", appointment_id),
            _id("participant_id", participant_id),
            _score(score),
            _comment(comment),
            self._answered_at(now),
            _visit_type(visit_type),
            _unit(unit),
            _month(month),
        )
        with self._lock:
            self._db.execute(
                "INSERT INTO feedback (appointment_id, participant_id, score, comment, "
                "answered_at, visit_type, unit, month) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (appointment_id, participant_id) DO UPDATE SET "
                "score = excluded.score, comment = excluded.comment, "
                "answered_at = excluded.answered_at, visit_type = excluded.visit_type, "
                "unit = excluded.unit, month = excluded.month",
                row,
            )

    @staticmethod
    def _answered_at(now: object) -> str:
        if not isinstance(now, datetime) or now.tzinfo is None:
            raise FeedbackError("now must be a datetime with a time zone")
        return now.astimezone(UTC).isoformat()

    def answer(self, appointment_id: str, participant_id: str) -> dict[str, Any] | None:
        """A participant's answer about a visit (score, comment, answeredAt), or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT score, comment, answered_at FROM feedback "
                "WHERE appointment_id = ? AND participant_id = ?",
                (appointment_id, participant_id),
            ).fetchone()
        if row is None:
            return None
        return {"score": row[0], "comment": row[1], "answeredAt": row[2]}

    def nps(self, year: int) -> list[dict[str, Any]]:
        """The answers of a year by month (of the visit): counts and the NPS, -100 to 100."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT month, {_COUNTS} GROUP BY month ORDER BY month", (_year(year),)
            ).fetchall()
        return [{"month": month, **_figures(*counts)} for month, *counts in rows]

    def nps_by_unit(self, year: int) -> list[dict[str, Any]]:
        """The answers of a year by unit: counts and the NPS, -100 to 100."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT unit, {_COUNTS} GROUP BY unit ORDER BY unit", (_year(year),)
            ).fetchall()
        return [{"unit": unit, **_figures(*counts)} for unit, *counts in rows]

    def comments(self, year: int, limit: int = 50) -> list[dict[str, Any]]:
        """The latest non-empty comments of a year, newest first: month, type, unit, score and
        the comment; no appointment or participant ids."""
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_COMMENTS_LISTED
        ):
            raise FeedbackError(
                f"limit must be a whole number from 1 to {MAX_COMMENTS_LISTED}, not {limit!r}"
            )
        with self._lock:
            rows = self._db.execute(
                "SELECT month, visit_type, unit, score, comment FROM feedback "
                "WHERE substr(month, 1, 4) = ? AND comment != '' "
                "ORDER BY answered_at DESC, rowid DESC LIMIT ?",
                (_year(year), limit),
            ).fetchall()
        return [
            {"month": m, "type": t, "unit": u, "score": s, "comment": c} for m, t, u, s, c in rows
        ]
