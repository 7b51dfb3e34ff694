"""The local grant store as a grant source."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar

from mediasrv.plugin import Identity
from mediasrv_proxy.grant_source import Found
from mediasrv_proxy.store import GrantStore

P = ParamSpec("P")
T = TypeVar("T")


class LocalGrantsHost(Protocol):
    """What the local grant source uses of its plugin (a ProxyPlugin is one): the grant store
    (None until set up) and the thread its work runs on."""

    @property
    def store(self) -> GrantStore | None: ...

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...


class LocalGrants:
    name = "local"

    def __init__(self, plugin: LocalGrantsHost) -> None:
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
