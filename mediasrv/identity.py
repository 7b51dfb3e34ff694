"""Identity: who a peer is, as an authenticate hook established it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Identity:
    """Who a peer is, as an authenticate hook established it."""

    subject: str  # a stable, pseudonymous id (never a national identity code in clear)
    display_name: str = ""
    roles: frozenset[str] = frozenset()
    method: str = ""  # how the person was identified (e.g. the acr of an OIDC token)
    claims: dict[str, Any] = field(default_factory=dict)  # safe-to-log extra facts
    plugin: str = ""  # the plugin that established it
    # personal data other plugins may need for their decisions (e.g. "identity_code",
    # "birthdate"): never logged, never sent to clients, never in repr()
    private: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
