"""PluginManager: loads, orders and calls the server's plugins (``server.plugins``)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

from mediasrv.denied import Denied
from mediasrv.identity import Identity
from mediasrv.plugin import (
    API_VERSION,
    JoinRequest,
    Plugin,
    PluginConfigError,
    PluginHost,
    validate_config,
)

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("mediasrv.plugins")

ENTRY_POINT_GROUP = "mediasrv.plugins"
GATES = (
    "authenticate",
    "authorize_join",
    "authorize_publish",
    "authorize_subscribe",
    "authorize_recording",
)


def discover() -> dict[str, metadata.EntryPoint]:
    """Installed plugins, by entry point name."""
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


class PluginManager:
    """The enabled plugins, in order. Gate hooks are awaited in that order and the first
    :class:`Denied` wins; a hook that raises anything else refuses too (``plugin_error``), is
    logged and counted: a broken plugin fails closed."""

    def __init__(self, server: PluginHost) -> None:
        self.server = server
        self.plugins: list[Plugin] = []
        self.calls: Counter[tuple[str, str]] = Counter()  # (plugin, hook) -> calls
        self.errors: Counter[tuple[str, str]] = Counter()  # (plugin, hook or event) -> errors
        self.seconds: dict[tuple[str, str], float] = {}  # (plugin, hook) -> time spent
        self.denials: Counter[tuple[str, str]] = Counter()  # (plugin, code) -> refusals
        self._started = False

    def __iter__(self) -> Any:
        return iter(self.plugins)

    def __len__(self) -> int:
        return len(self.plugins)

    def get(self, name: str) -> Plugin | None:
        return next((p for p in self.plugins if p.name == name), None)

    # ---- loading ----

    def add(self, plugin: type[Plugin], config: Mapping[str, Any] | None = None) -> Plugin:
        """Enable a plugin class with its configuration (validated against its schema)."""
        if self._started:
            raise RuntimeError("plugins are added before the server starts")
        if not isinstance(plugin, type) or not issubclass(plugin, Plugin):
            raise TypeError(f"{plugin!r} is not a mediasrv Plugin class")
        if not plugin.name or not plugin.name.replace("_", "").isalnum():
            raise PluginConfigError(
                f"plugin {plugin.__name__}: name must be a word, got {plugin.name!r}"
            )
        if plugin.api_version != API_VERSION:
            raise PluginConfigError(
                f"plugins.{plugin.name}: written for plugin API {plugin.api_version}, "
                f"this server has {API_VERSION}"
            )
        if self.get(plugin.name) is not None:
            raise PluginConfigError(f"plugins.{plugin.name}: enabled twice")
        for other in self.plugins:
            if plugin.namespace and other.namespace == plugin.namespace:
                raise PluginConfigError(
                    f"plugins.{plugin.name}: signaling namespace {plugin.namespace!r} is "
                    f"already {other.name}'s"
                )
            clash = set(plugin.data_labels) & set(other.data_labels)
            if clash:
                raise PluginConfigError(
                    f"plugins.{plugin.name}: data channel label {sorted(clash)[0]!r} is "
                    f"already {other.name}'s"
                )
        instance = plugin(self.server, validate_config(plugin, config or {}))
        self.plugins.append(instance)
        log.info("plugin %s enabled", plugin.name)
        return instance

    def load(self, name: str, config: Mapping[str, Any] | None = None) -> Plugin:
        """Enable an installed plugin by its entry point name."""
        found = discover()
        entry = found.get(name)
        if entry is None:
            raise PluginConfigError(
                f"plugins.{name}: not installed (entry point group {ENTRY_POINT_GROUP!r} has: "
                f"{', '.join(sorted(found)) or 'nothing'})"
            )
        cls = entry.load()
        if cls.name != name:
            raise PluginConfigError(f"plugins.{name}: the entry point names plugin {cls.name!r}")
        return self.add(cls, config)

    def mount(self, app: web.Application) -> None:
        """Plugins' HTTP routes under /plugins/<name>/ (before the application starts)."""
        from aiohttp import web

        for plugin in self.plugins:
            routes = plugin.routes()
            if routes:
                sub = web.Application()
                sub.add_routes(routes)
                app.add_subapp(f"/plugins/{plugin.name}", sub)

    async def start(self) -> None:
        self._started = True
        for plugin in self.plugins:
            await plugin.setup()

    async def close(self) -> None:
        for plugin in reversed(self.plugins):
            try:
                await plugin.close()
            except Exception:
                log.exception("plugin %s failed to close", plugin.name)

    # ---- gates ----

    def overrides(self, hook: str) -> list[Plugin]:
        """The plugins that implement a hook (the others need not be awaited)."""
        base = getattr(Plugin, hook)
        return [p for p in self.plugins if getattr(type(p), hook) is not base]

    async def _call(self, plugin: Plugin, hook: str, *args: Any) -> Any:
        key = (plugin.name, hook)
        self.calls[key] += 1
        started = time.perf_counter()
        try:
            return await getattr(plugin, hook)(*args)
        except Denied as denied:
            self.denials[(plugin.name, denied.code)] += 1
            raise
        except Exception as exc:
            self.errors[key] += 1
            log.exception("plugin %s: %s failed", plugin.name, hook)
            raise Denied(
                "plugin_error", f"plugin {plugin.name} failed in {hook} ({type(exc).__name__})"
            ) from None
        finally:
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started

    async def authenticate(self, request: JoinRequest) -> Identity | None:
        """The first identity a plugin establishes (a Denied refuses the join)."""
        for plugin in self.overrides("authenticate"):
            identity = await self._call(plugin, "authenticate", request)
            if identity is not None:
                identity.plugin = plugin.name
                return identity  # type: ignore[no-any-return]
        return None

    async def gate(self, hook: str, *args: Any) -> None:
        """Await hook on every plugin that has it, in order; the first Denied propagates."""
        if hook not in GATES:
            raise ValueError(f"unknown gate hook {hook!r}")
        for plugin in self.overrides(hook):
            await self._call(plugin, hook, *args)

    # ---- events, signaling, data channels ----

    def listen(self, plugin: Plugin, event: str, listener: Callable[..., Any]) -> None:
        """A plugin's listener for a server event; its failures are counted per plugin."""

        def guarded(*args: Any) -> Any:
            try:
                return listener(*args)
            except Exception:
                self.errors[(plugin.name, f"event:{event}")] += 1
                log.exception("plugin %s: listener for %s failed", plugin.name, event)
                return None

        self.server.on(event, guarded)

    def for_namespace(self, namespace: str) -> Plugin | None:
        return next((p for p in self.plugins if p.namespace == namespace), None)

    def for_label(self, label: str) -> Plugin | None:
        return next((p for p in self.plugins if label in p.data_labels), None)

    def stats(self) -> dict[str, Any]:
        return {
            plugin.name: {
                "calls": {h: n for (p, h), n in self.calls.items() if p == plugin.name},
                "errors": {h: n for (p, h), n in self.errors.items() if p == plugin.name},
                "denials": {c: n for (p, c), n in self.denials.items() if p == plugin.name},
                "seconds": {
                    h: round(s, 6) for (p, h), s in self.seconds.items() if p == plugin.name
                },
            }
            for plugin in self.plugins
        }
