"""Where grants come from: one interface for the local store and the mandate service."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mediasrv.plugin import Identity
from mediasrv_proxy.grant import Grant


@dataclass
class Found:
    """A source's answer for one delegate, principal and issue."""

    grants: list[Grant] = field(default_factory=list)  # the rules decide on each
    reasons: list[str] = field(default_factory=list)  # why the source has none to offer
    detail: dict[str, Any] = field(default_factory=dict)  # kept in the audit record


class GrantSource(Protocol):
    name: str

    async def find(
        self, delegate: Identity, principal: str, issue: str, on_behalf: Mapping[str, Any]
    ) -> Found:
        """The grants this source has between the two people (``on_behalf``: the join's
        ``onBehalfOf`` object, already checked)."""
        ...

    async def close(self) -> None: ...
