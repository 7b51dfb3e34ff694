"""The visit service's feedback book on a real SQLite file: answering again replaces the answer,
the NPS arithmetic by month and by unit, every refused input with its message, the comments
listed newest first without ids, and everything surviving a reopen."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from examples.visit_service.appointments import VisitType
from examples.visit_service.feedback import MAX_COMMENT, FeedbackBook, FeedbackError

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
CLINIC, HOME = "Child health clinic, Lahti", "Home care, Heinola"


def book(tmp_path: Path) -> FeedbackBook:
    return FeedbackBook(str(tmp_path / "feedback.sqlite3"))


def answer(b: FeedbackBook, **overrides: Any) -> None:
    fields: dict[str, Any] = {
        "appointment_id": "a1",
        "participant_id": "c1",
        "score": 9,
        "comment": "",
        "visit_type": VisitType.VIDEO_VISIT,
        "unit": CLINIC,
        "month": "2026-11",
        "now": T0,
    }
    fields.update(overrides)
    b.record(**fields)


def test_answering_again_replaces_the_answer(tmp_path: Path) -> None:
    b = book(tmp_path)
    answer(b, score=3, comment="  The sound broke up.  ")
    assert b.answer("a1", "c1") == {
        "score": 3,
        "comment": "The sound broke up.",
        "answeredAt": T0.isoformat(),
    }
    later = T0 + timedelta(minutes=5)
    answer(b, score=10, comment="It worked after all", now=later)
    assert b.answer("a1", "c1") == {
        "score": 10,
        "comment": "It worked after all",
        "answeredAt": later.isoformat(),
    }
    assert b.nps(2026) == [
        {"month": "2026-11", "answers": 1, "promoters": 1, "passives": 0, "detractors": 0,
         "nps": 100},
    ]  # fmt: skip
    assert b.answer("a1", "c2") is None
    assert b.answer("a2", "c1") is None
    b.close()


def test_answered_at_is_stored_in_utc(tmp_path: Path) -> None:
    b = book(tmp_path)
    helsinki = T0.astimezone(ZoneInfo("Europe/Helsinki"))
    answer(b, now=helsinki)
    found = b.answer("a1", "c1")
    assert found is not None and found["answeredAt"] == "2026-11-23T10:00:00+00:00"
    b.close()


def test_nps_by_month(tmp_path: Path) -> None:
    b = book(tmp_path)
    for i, score in enumerate([10, 9, 8, 6, 0]):
        answer(b, participant_id=f"c{i}", score=score, month="2026-03")
    for i in range(4):
        answer(b, appointment_id="a2", participant_id=f"c{i}", score=10, month="2026-04")
    # 7 and 8 are passive, 6 and below detract: (1 - 2) / 3 = -33.3 -> -33
    for i, score in enumerate([7, 6, 9]):
        answer(b, appointment_id="a3", participant_id=f"c{i}", score=score, month="2026-05")
    answer(b, appointment_id="a4", score=0, month="2025-12")  # another year
    answer(b, appointment_id="a5", score=0, month="2027-01")
    assert b.nps(2026) == [
        {"month": "2026-03", "answers": 5, "promoters": 2, "passives": 1, "detractors": 2,
         "nps": 0},
        {"month": "2026-04", "answers": 4, "promoters": 4, "passives": 0, "detractors": 0,
         "nps": 100},
        {"month": "2026-05", "answers": 3, "promoters": 1, "passives": 1, "detractors": 1,
         "nps": 0},
    ]  # fmt: skip
    assert b.nps(2025) == [
        {"month": "2025-12", "answers": 1, "promoters": 0, "passives": 0, "detractors": 1,
         "nps": -100},
    ]  # fmt: skip
    assert b.nps(2024) == []
    b.close()


def test_nps_rounds_to_a_whole_number(tmp_path: Path) -> None:
    b = book(tmp_path)
    for i, score in enumerate([10, 10, 3]):  # (2 - 1) / 3 = 33.3
        answer(b, participant_id=f"c{i}", score=score)
    for i, score in enumerate([0, 0, 9]):  # (1 - 2) / 3 = -33.3
        answer(b, appointment_id="a2", participant_id=f"c{i}", score=score, month="2026-12")
    assert [(r["month"], r["nps"]) for r in b.nps(2026)] == [("2026-11", 33), ("2026-12", -33)]
    assert all(isinstance(r["nps"], int) for r in b.nps(2026))
    b.close()


def test_nps_by_unit(tmp_path: Path) -> None:
    b = book(tmp_path)
    answer(b, participant_id="c1", score=10, unit=CLINIC, month="2026-01")
    answer(b, participant_id="c2", score=10, unit=CLINIC, month="2026-06")
    answer(b, participant_id="c3", score=4, unit=CLINIC, month="2026-06")
    answer(b, participant_id="c4", score=8, unit=CLINIC, month="2026-06")
    answer(b, appointment_id="a2", score=2, unit=HOME, visit_type=VisitType.HOME_CARE_CALL)
    answer(b, appointment_id="a3", score=10, unit=HOME, month="2025-11")  # another year
    assert b.nps_by_unit(2026) == [
        {"unit": CLINIC, "answers": 4, "promoters": 2, "passives": 1, "detractors": 1, "nps": 25},
        {"unit": HOME, "answers": 1, "promoters": 0, "passives": 0, "detractors": 1, "nps": -100},
    ]
    assert b.nps_by_unit(2025) == [
        {"unit": HOME, "answers": 1, "promoters": 1, "passives": 0, "detractors": 0, "nps": 100},
    ]
    b.close()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"score": 11}, "score must be a whole number from 0 to 10, not 11"),
        ({"score": -1}, "score must be a whole number from 0 to 10, not -1"),
        ({"score": 7.0}, "score must be a whole number from 0 to 10, not 7.0"),
        ({"score": "7"}, "score must be a whole number from 0 to 10, not '7'"),
        ({"score": True}, "score must be a whole number from 0 to 10, not True"),
        ({"score": None}, "score must be a whole number from 0 to 10, not None"),
        ({"comment": None}, "comment must be a text (empty when there is none)"),
        ({"comment": 5}, "comment must be a text (empty when there is none)"),
        ({"comment": "x" * (MAX_COMMENT + 1)}, "comment must be at most 2000 characters, not 2001"),
        ({"appointment_id": ""}, "appointment_id must be a non-empty text"),
        ({"appointment_id": "   "}, "appointment_id must be a non-empty text"),
        ({"appointment_id": None}, "appointment_id must be a non-empty text"),
        ({"participant_id": ""}, "participant_id must be a non-empty text"),
        ({"visit_type": "sauna"}, "visit_type must be one of video_visit, group_visit"),
        ({"unit": " "}, "unit must be a non-empty text"),
        ({"month": "2026-13"}, "month must be YYYY-MM (such as 2026-11), not '2026-13'"),
        ({"month": "2026-1"}, "month must be YYYY-MM"),
        ({"month": "2026-11-23"}, "month must be YYYY-MM"),
        ({"now": datetime(2026, 11, 23, 10, 0)}, "now must be a datetime with a time zone"),
    ],
)
def test_refused_answers_say_why(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    b = book(tmp_path)
    with pytest.raises(FeedbackError) as refused:
        answer(b, **overrides)
    assert str(refused.value).startswith(message)
    assert isinstance(refused.value, ValueError)
    assert b.nps(2026) == []
    b.close()


def test_comment_limits(tmp_path: Path) -> None:
    b = book(tmp_path)
    answer(b, participant_id="c1", comment="x" * MAX_COMMENT)  # exactly the limit
    answer(b, participant_id="c2", comment="  " + "y" * MAX_COMMENT + "\n")  # after strip
    answer(b, participant_id="c3", comment="")
    found = b.answer("a1", "c2")
    assert found is not None and found["comment"] == "y" * MAX_COMMENT
    assert len(b.comments(2026)) == 2
    b.close()


def test_refused_queries_say_why(tmp_path: Path) -> None:
    b = book(tmp_path)
    with pytest.raises(FeedbackError, match="year must be a whole number from 1 to 9999"):
        b.nps(0)
    with pytest.raises(FeedbackError, match="year must be a whole number"):
        b.nps_by_unit("2026")  # type: ignore[arg-type]
    with pytest.raises(FeedbackError, match="limit must be a whole number from 1 to 500"):
        b.comments(2026, limit=0)
    b.close()


def test_comments_newest_first_without_ids(tmp_path: Path) -> None:
    b = book(tmp_path)
    answer(b, participant_id="c1", score=4, comment="Could not hear", now=T0)
    answer(b, participant_id="c2", score=9, comment="", now=T0 + timedelta(minutes=1))
    answer(
        b,
        appointment_id="a2",
        participant_id="r1",
        score=10,
        comment="Easy to join <b>",
        visit_type=VisitType.NETWORK_MEETING,
        unit=HOME,
        month="2026-10",
        now=T0 + timedelta(minutes=2),
    )
    answer(b, appointment_id="a3", comment="Last year", month="2025-12", now=T0 + timedelta(1))
    comments = b.comments(2026)
    assert comments == [
        {"month": "2026-10", "type": "network_meeting", "unit": HOME, "score": 10,
         "comment": "Easy to join <b>"},
        {"month": "2026-11", "type": "video_visit", "unit": CLINIC, "score": 4,
         "comment": "Could not hear"},
    ]  # fmt: skip
    for row in comments:
        assert not {"appointment_id", "participant_id", "appointmentId", "participantId"} & set(row)
        assert "a1" not in row.values() and "c1" not in row.values()
    assert b.comments(2026, limit=1) == comments[:1]
    # answering again moves the comment to the top
    answer(b, participant_id="c1", score=6, comment="Better now", now=T0 + timedelta(minutes=3))
    assert [c["comment"] for c in b.comments(2026)] == ["Better now", "Easy to join <b>"]
    b.close()


def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    b = book(tmp_path)
    answer(b, participant_id="c1", score=10, comment="Thank you")
    answer(b, participant_id="c2", score=2)
    b.close()
    b = book(tmp_path)
    assert b.answer("a1", "c1") == {
        "score": 10,
        "comment": "Thank you",
        "answeredAt": T0.isoformat(),
    }
    assert [r["nps"] for r in b.nps(2026)] == [0]
    assert b.comments(2026)[0]["comment"] == "Thank you"
    answer(b, participant_id="c2", score=9)  # still an upsert after reopening
    assert [r["nps"] for r in b.nps(2026)] == [100]
    b.close()


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    book(tmp_path).close()
    db = sqlite3.connect(tmp_path / "feedback.sqlite3")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        db.close()
