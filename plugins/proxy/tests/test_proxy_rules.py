"""The rules on their own: every basis, the age boundaries (12th and 18th birthdays, 29
February), validity periods, issues and guardians' confirmations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from mediasrv_proxy.basis import ALL, DEFAULT_PERMISSIONS, Basis, Permission, parse_permissions
from mediasrv_proxy.decision import explain
from mediasrv_proxy.grant import Grant
from mediasrv_proxy.rules import decide

TODAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ADULT = date(1980, 5, 5)


def grant(basis: Basis, principal_born: date | None, **changes: Any) -> Grant:
    fields: dict[str, Any] = {
        "id": "g1",
        "principal": "p" * 32,
        "principal_name": "P",
        "principal_birthdate": principal_born,
        "delegate": "d" * 32,
        "delegate_name": "D",
        "basis": basis,
    }
    fields.update(changes)
    return Grant(**fields)


def reasons(
    g: Grant | None,
    *,
    delegate: date | None = ADULT,
    issue: str = "",
    assessment: bool | None = None,
    today: date = TODAY,
) -> tuple[str, ...]:
    return decide(
        g,
        now=NOW,
        today=today,
        delegate_birthdate=delegate,
        issue=issue,
        assessment=assessment,
        permissions=DEFAULT_PERMISSIONS,
    ).reasons


def test_a_guardian_acts_for_a_child_until_12_then_by_assessment_until_18() -> None:
    eleven = date(2015, 11, 24)  # turns 11... and 12 tomorrow
    assert reasons(grant(Basis.GUARDIAN_OF_MINOR, eleven)) == ()
    twelve_today = date(2014, 11, 23)
    assert reasons(grant(Basis.GUARDIAN_OF_MINOR, twelve_today)) == ("assessment_missing",)
    g = grant(Basis.GUARDIAN_OF_MINOR, twelve_today)
    assert reasons(g, assessment=False) == ()
    assert reasons(g, assessment=True) == ("minor_decides_for_themselves",)
    seventeen = date(2008, 11, 24)  # 18 tomorrow
    assert reasons(grant(Basis.GUARDIAN_OF_MINOR, seventeen), assessment=False) == ()
    eighteen = date(2008, 11, 23)
    assert reasons(grant(Basis.GUARDIAN_OF_MINOR, eighteen)) == ("principal_is_adult",)


def test_a_leap_day_birthday_comes_of_age_on_the_first_of_march() -> None:
    born = date(2008, 2, 29)
    g = grant(Basis.GUARDIAN_OF_MINOR, born)
    assert reasons(g, today=date(2026, 2, 28), assessment=False) == ()
    assert reasons(g, today=date(2026, 3, 1)) == ("principal_is_adult",)


def test_the_delegate_must_be_an_adult_whatever_the_grant() -> None:
    g = grant(Basis.MANDATE, ADULT)
    assert reasons(g, delegate=date(2009, 1, 1)) == ("delegate_is_minor",)
    assert reasons(g, delegate=None) == ("delegate_age_unknown",)
    assert reasons(None, delegate=date(2010, 1, 1)) == ("delegate_is_minor", "no_grant")
    assert reasons(None) == ("no_grant",)


def test_validity_revocation_and_issues() -> None:
    day = timedelta(days=1)
    assert reasons(grant(Basis.MANDATE, ADULT, valid_until=NOW)) == ("grant_expired",)
    assert reasons(grant(Basis.MANDATE, ADULT, valid_until=NOW + day)) == ()
    assert reasons(grant(Basis.MANDATE, ADULT, valid_from=NOW + day)) == ("grant_not_yet_valid",)
    assert reasons(grant(Basis.MANDATE, ADULT, revoked=True)) == ("grant_revoked",)
    scoped = grant(Basis.MANDATE, ADULT, issues=("health",))
    assert reasons(scoped, issue="health") == ()
    assert reasons(scoped, issue="tax") == ("issue_not_covered",)
    assert reasons(grant(Basis.MANDATE, ADULT), issue="tax") == ()  # no issues: all matters
    everything = grant(Basis.MANDATE, ADULT, revoked=True, valid_until=NOW, issues=("x",))
    assert reasons(everything, issue="y", delegate=date(2012, 1, 1)) == (
        "delegate_is_minor",
        "grant_revoked",
        "grant_expired",
        "issue_not_covered",
    )


def test_a_mandate_for_a_child_needs_every_guardian() -> None:
    child = date(2018, 1, 1)
    g = grant(Basis.MANDATE, child, guardians_required=2, confirmed_by=("a",))
    assert reasons(g) == ("guardian_consent_missing",)
    assert reasons(grant(Basis.MANDATE, child, guardians_required=2, confirmed_by=("a", "b"))) == ()
    assert reasons(grant(Basis.MANDATE, child, guardians_required=2, confirmed_by=("a", "a"))) == (
        "guardian_consent_missing",
    )


def test_other_bases() -> None:
    assert reasons(grant(Basis.CONTINUING_POWER_OF_ATTORNEY, date(2015, 1, 1))) == (
        "principal_is_minor",
    )
    assert reasons(grant(Basis.CONTINUING_POWER_OF_ATTORNEY, ADULT)) == ()
    assert reasons(grant(Basis.PUBLIC_GUARDIAN, ADULT)) == ()
    assert reasons(grant(Basis.PRIVATE_GUARDIAN, date(2011, 1, 1))) == ("assessment_missing",)
    assert reasons(grant(Basis.PRIVATE_GUARDIAN, None)) == ("principal_age_unknown",)


def test_permissions_come_with_the_decision_and_join_is_required() -> None:
    allowed = decide(
        grant(Basis.PUBLIC_GUARDIAN, ADULT),
        now=NOW,
        today=TODAY,
        delegate_birthdate=ADULT,
        issue="",
        assessment=None,
        permissions=DEFAULT_PERMISSIONS,
    )
    assert allowed.allowed and allowed.result == "ALLOWED"
    assert allowed.permissions == ALL - {Permission.ATTACHMENTS}
    no_join = parse_permissions({"MANDATE": ["chat"]})
    refused = decide(
        grant(Basis.MANDATE, ADULT),
        now=NOW,
        today=TODAY,
        delegate_birthdate=ADULT,
        issue="",
        assessment=None,
        permissions=no_join,
    )
    assert refused.reasons == ("permission_join",) and refused.permissions == frozenset()
    assert refused.result == "DISALLOWED"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "expected a table"),
        ({"UNCLE": []}, "unknown basis 'UNCLE'"),
        ({"MANDATE": "join"}, "expected a list"),
        ({"MANDATE": ["join", "fly"]}, "unknown permission 'fly'"),
    ],
)
def test_bad_permission_tables(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_permissions(value)


def test_reasons_read_as_sentences() -> None:
    text = explain(("grant_expired", "mandate_service_unavailable:it did not answer in 1.0 s"))
    assert text == (
        "the right to act for this person has expired; the mandate service could not be "
        "reached (it did not answer in 1.0 s)"
    )
