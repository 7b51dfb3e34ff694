"""The rules of acting on behalf of someone, as the national mandate service applies them.

- The delegate must be an adult (18 or over).
- A grant counts only inside its validity period, unrevoked, and for the matters (issues) it
  names; a grant naming none covers all matters.
- A guardian of a minor sees and acts in the child's matters until the child is 12. From 12 to
  17 a professional assesses (at each visit) whether the minor decides on their own matters; if
  so, the guardian has no access, and until someone has assessed it the guardian waits: the rule
  fails closed. At 18 guardianship ends.
- The 12-17 assessment applies to every basis when the principal is a minor.
- A minor cannot give a mandate: a mandate for a child is given by its guardians, and counts
  only when all of them have confirmed it (``guardians_required``; the grant store refuses a
  mandate for a minor without it, and the mandate service applies the rule itself).
- A continuing power of attorney exists only for adults.

:func:`decide` collects every reason that applies, so a refusal says all that is wrong at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

from mediasrv_strongauth.identity_code import age_on

from mediasrv_proxy.basis import Basis, Permission
from mediasrv_proxy.decision import Decision
from mediasrv_proxy.grant import Grant

ADULT_AGE = 18
OWN_DECISIONS_FROM = 12  # a minor's own say in health and social care matters begins here


def decide(
    grant: Grant | None,
    *,
    now: datetime,
    today: date,
    delegate_birthdate: date | None,
    issue: str,
    assessment: bool | None,
    permissions: Mapping[Basis, frozenset[Permission]],
) -> Decision:
    """May the grant's delegate act for its principal in a visit about ``issue``?

    ``now`` is an aware datetime (validity periods), ``today`` the local date (ages);
    ``assessment`` is what a professional recorded for this principal in this visit: True when
    the minor decides on their own matters, False when the guardian may act, None when nobody
    has assessed it.
    """
    reasons: list[str] = []
    if delegate_birthdate is None:
        reasons.append("delegate_age_unknown")
    elif age_on(delegate_birthdate, today) < ADULT_AGE:
        reasons.append("delegate_is_minor")
    if grant is None:
        return Decision(False, (*reasons, "no_grant"))
    if grant.revoked:
        reasons.append("grant_revoked")
    if grant.valid_from is not None and now < grant.valid_from:
        reasons.append("grant_not_yet_valid")
    if grant.valid_until is not None and now >= grant.valid_until:
        reasons.append("grant_expired")
    if not grant.covers(issue):
        reasons.append("issue_not_covered")
    born = grant.principal_birthdate
    age = age_on(born, today) if born is not None else None
    if age is None:
        reasons.append("principal_age_unknown")
    else:
        minor = age < ADULT_AGE
        if grant.basis is Basis.GUARDIAN_OF_MINOR and not minor:
            reasons.append("principal_is_adult")
        if grant.basis is Basis.CONTINUING_POWER_OF_ATTORNEY and minor:
            reasons.append("principal_is_minor")
        if (
            grant.basis is Basis.MANDATE
            and minor
            and len(set(grant.confirmed_by)) < grant.guardians_required
        ):
            reasons.append("guardian_consent_missing")
        if minor and age >= OWN_DECISIONS_FROM:
            if assessment is None:
                reasons.append("assessment_missing")
            elif assessment:
                reasons.append("minor_decides_for_themselves")
    granted = permissions.get(grant.basis, frozenset())
    if not reasons and Permission.JOIN not in granted:
        reasons.append("permission_join")
    return Decision(
        allowed=not reasons,
        reasons=tuple(reasons),
        basis=grant.basis,
        grant=grant.id,
        permissions=granted if not reasons else frozenset(),
    )
