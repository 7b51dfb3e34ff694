"""A grant: a right of one person (the delegate) to act for another (the principal)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from mediasrv_proxy.basis import Basis


@dataclass(frozen=True)
class Grant:
    """People are pseudonymous subjects (HMAC of the national identity code, the strongauth
    plugin's ``subject_of``); identity codes are never kept."""

    id: str
    principal: str  # the pseudonymous subject acted for
    principal_name: str
    principal_birthdate: date | None
    delegate: str  # the pseudonymous subject acting
    delegate_name: str
    basis: Basis
    # the mandate's themes or issues; () means all matters (e.g. a guardian of a minor)
    issues: tuple[str, ...] = ()
    valid_from: datetime | None = None  # aware datetimes; None: no bound
    valid_until: datetime | None = None
    # a mandate for a child must be confirmed by all of its guardians: how many there are
    guardians_required: int = 0
    confirmed_by: tuple[str, ...] = ()  # subjects of the guardians who confirmed
    revoked: bool = False
    source: str = "local"  # "local" (the grant store) or "hpa" (the mandate service)

    def covers(self, issue: str) -> bool:
        return not self.issues or not issue or issue in self.issues
