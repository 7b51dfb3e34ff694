"""On what basis someone acts for another person, and what each basis permits in a visit."""

from __future__ import annotations

from enum import StrEnum


class Basis(StrEnum):
    """The source of a right to act on behalf of someone (Suomi.fi e-Authorizations terms)."""

    GUARDIAN_OF_MINOR = "GUARDIAN_OF_MINOR"  # huoltaja: from the population register
    MANDATE = "MANDATE"  # valtuutus: given by the principal (or by all guardians of a child)
    PRIVATE_GUARDIAN = "PRIVATE_GUARDIAN"  # yksityinen edunvalvoja, appointed by a court
    PUBLIC_GUARDIAN = "PUBLIC_GUARDIAN"  # yleinen edunvalvoja (a public guardianship office)
    CONTINUING_POWER_OF_ATTORNEY = "CONTINUING_POWER_OF_ATTORNEY"  # edunvalvontavaltuutus


class Permission(StrEnum):
    """What a delegate may do in a visit."""

    JOIN = "join"
    SPEAK = "speak"  # publish audio
    VIDEO = "video"  # publish video
    CHAT = "chat"  # read and post chat messages
    ATTACHMENTS = "attachments"  # upload and open chat attachments


ALL = frozenset(Permission)
# The defaults: the guardian of a minor, a private guardian and someone with a mandate act in
# the person's matters fully; a public guardian and an attorney under a continuing power of
# attorney (appointed for property and affairs more than for care) take part without opening the
# client's attachments. Configurable per deployment (``permissions``).
DEFAULT_PERMISSIONS: dict[Basis, frozenset[Permission]] = {
    Basis.GUARDIAN_OF_MINOR: ALL,
    Basis.MANDATE: ALL,
    Basis.PRIVATE_GUARDIAN: ALL,
    Basis.PUBLIC_GUARDIAN: ALL - {Permission.ATTACHMENTS},
    Basis.CONTINUING_POWER_OF_ATTORNEY: ALL - {Permission.ATTACHMENTS},
}


def parse_permissions(value: object) -> dict[Basis, frozenset[Permission]]:
    """The ``permissions`` setting: ``{basis: [permission, ...]}`` for some bases (the others
    keep their defaults); ValueError with the key and the problem."""
    if not isinstance(value, dict):
        raise ValueError("expected a table of basis = [permissions]")
    result = dict(DEFAULT_PERMISSIONS)
    for key, perms in value.items():
        if key not in Basis.__members__:
            raise ValueError(f"unknown basis {key!r} (known: {', '.join(Basis)})")
        if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
            raise ValueError(f"{key}: expected a list of permission names")
        unknown = [p for p in perms if p not in {m.value for m in Permission}]
        if unknown:
            raise ValueError(
                f"{key}: unknown permission {unknown[0]!r} (known: {', '.join(Permission)})"
            )
        result[Basis(key)] = frozenset(Permission(p) for p in perms)
    return result
