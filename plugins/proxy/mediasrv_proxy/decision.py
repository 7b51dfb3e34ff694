"""The outcome of a check: ALLOWED or DISALLOWED, with reasons."""

from __future__ import annotations

from dataclasses import dataclass, field

from mediasrv_proxy.basis import Basis, Permission

# what each reason code means, as shown to the person refused (and kept in the audit trail)
REASONS = {
    "no_grant": "there is no valid right to act for this person",
    "grant_revoked": "the right to act for this person has been revoked",
    "grant_expired": "the right to act for this person has expired",
    "grant_not_yet_valid": "the right to act for this person is not valid yet",
    "issue_not_covered": "the right does not cover this matter",
    "delegate_is_minor": "a person under 18 cannot act on behalf of others",
    "delegate_age_unknown": "the acting person's age could not be established",
    "principal_age_unknown": "the age of the person acted for could not be established",
    "principal_is_adult": "guardianship of a minor ends when the child turns 18",
    "principal_is_minor": "this kind of right exists only for adults",
    "assessment_missing": (
        "the person acted for is 12 to 17: a professional must first assess whether they "
        "decide on their own matters"
    ),
    "minor_decides_for_themselves": (
        "a professional has assessed that the minor (12 to 17) decides on their own matters"
    ),
    "guardian_consent_missing": "not every guardian of the child has confirmed the mandate",
    "mandate_service_disallowed": "the mandate service did not allow it",
    "mandate_service_unavailable": "the mandate service could not be reached",
    "mandate_session_unknown": "the mandate selection has expired or is not this person's",
    "principal_not_selected": "this person was not selected in the mandate service",
    "issue_missing": "the mandate service needs the matter (issue) the visit concerns",
    "permission_join": "this right does not include taking part in visits",
}


def explain(reasons: tuple[str, ...]) -> str:
    """Reason codes as one sentence for people."""
    texts = []
    for code in reasons:
        base, _, extra = code.partition(":")
        text = REASONS.get(base, base)
        texts.append(f"{text} ({extra})" if extra else text)
    return "; ".join(texts) or "allowed"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reasons: tuple[str, ...] = ()  # codes (see REASONS); "mandate_service_disallowed:<theirs>"
    basis: Basis | None = None
    grant: str | None = None  # the grant decided on
    permissions: frozenset[Permission] = field(default_factory=frozenset)

    @property
    def result(self) -> str:
        return "ALLOWED" if self.allowed else "DISALLOWED"

    @property
    def message(self) -> str:
        return explain(self.reasons)
