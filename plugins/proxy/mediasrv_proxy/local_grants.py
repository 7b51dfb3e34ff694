"""The local grant store as a grant source."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mediasrv.plugin import Identity
from mediasrv_proxy.grant_source import Found

if TYPE_CHECKING:
    from mediasrv_proxy.plugin import ProxyPlugin


class LocalGrants:
    name = "local"

    def __init__(self, plugin: ProxyPlugin) -> None:
        self.plugin = plugin

    async def find(
        self, delegate: Identity, principal: str, issue: str, on_behalf: Mapping[str, Any]
    ) -> Found:
        store = self.plugin.store
        if store is None:
            raise RuntimeError("the grant store is not open")
        return Found(grants=await self.plugin.db(store.between, principal, delegate.subject))

    async def close(self) -> None:
        pass
