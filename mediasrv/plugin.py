"""The plugin API (version 1): what a plugin is and what it may do.

A plugin is a subclass of :class:`Plugin` with a ``name``, an ``api_version`` and a declared
``config_schema``; it is found through the entry point group ``mediasrv.plugins`` (or added
directly with ``server.plugins.add``) and enabled and ordered by configuration. See
docs/plugins.md for a complete example.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from mediasrv.denied import Denied
from mediasrv.identity import Identity

if TYPE_CHECKING:
    from aiohttp import web
    from prometheus_client import CollectorRegistry

    from mediasrv.config import ServerConfig
    from mediasrv.peer import Peer
    from mediasrv.producer import Producer
    from mediasrv.room import Room

__all__ = [
    "API_VERSION",
    "Denied",
    "Identity",
    "JoinRequest",
    "Plugin",
    "PluginConfigError",
    "PluginHost",
    "PluginRegistry",
    "Setting",
    "long_secret",
    "non_empty",
    "string_list",
    "validate_config",
]

API_VERSION = 1


class PluginRegistry(Protocol):
    """The server's enabled plugins, as a plugin sees them (``server.plugins``)."""

    def get(self, name: str) -> Plugin | None:
        """The enabled plugin of that name, if any."""
        ...

    def listen(self, plugin: Plugin, event: str, listener: Callable[..., Any]) -> None:
        """A plugin's listener for a server event (see :meth:`Plugin.on`)."""
        ...

    async def gate(self, hook: str, *args: Any) -> None:
        """Run a gate hook of every plugin that has it; the first Denied propagates."""
        ...


class PluginHost(Protocol):
    """The server as its plugins see it: what a plugin may use of ``self.server``
    (:class:`~mediasrv.media_server.MediaServer` is one)."""

    @property
    def config(self) -> ServerConfig: ...

    @property
    def rooms(self) -> Mapping[str, Room]: ...

    @property
    def plugins(self) -> PluginRegistry: ...

    @property
    def closed(self) -> bool: ...

    @property
    def metrics(self) -> CollectorRegistry:
        """The server's Prometheus registry: a plugin's own metrics go here."""
        ...

    def get_or_create_room(self, room_id: str) -> Room: ...

    def count_rejected(self, reason: str) -> None: ...

    def on(self, event: str, f: Callable[..., Any]) -> Callable[..., Any]: ...


class PluginConfigError(ValueError):
    """A plugin's configuration does not match its schema (the message names the key)."""


@dataclass(frozen=True)
class Setting:
    """One key of a plugin's configuration."""

    type: type | tuple[type, ...]
    default: Any = None
    required: bool = False
    help: str = ""
    check: Callable[[Any], bool] | None = None  # an extra test of the value
    secret: bool = False  # never logged or shown


@dataclass
class JoinRequest:
    """What a client sent to join, and where it came from."""

    token: str
    room: str
    display_name: str
    params: Mapping[str, Any]  # the whole join params (plugins may read their own keys)
    remote: str  # client IP address
    headers: Mapping[str, str]
    session_id: str = ""  # the signaling connection (several joins may come over one)
    identity: Identity | None = None  # set by the first authenticate hook that returns one
    # authorize_join hooks may fill these in for the peer about to join:
    # facts shown to the other peers with the peer (Peer.attributes, JSON-serializable)
    attributes: dict[str, Any] = field(default_factory=dict)
    # server-side facts kept on the peer (Peer.app_data), never sent to clients
    app_data: dict[str, Any] = field(default_factory=dict)


class Plugin:
    """Base class. Override what you need; every hook is optional.

    Gate hooks (awaited in configuration order; the first :class:`Denied` wins):
    ``authenticate``, ``authorize_join``, ``authorize_publish``, ``authorize_subscribe``,
    ``authorize_recording``. Observers: use :meth:`on` for server events (``peerjoined``,
    ``peerleft``, ``producer``, ``producerclose``, ``roomclose``); a failing listener is
    logged and counted and never breaks media.
    """

    name: ClassVar[str] = ""
    api_version: ClassVar[int] = API_VERSION
    config_schema: ClassVar[dict[str, Setting]] = {}
    # signaling methods "<namespace>.<method>" go to handle_request
    namespace: ClassVar[str | None] = None
    # data channel labels this plugin owns (channels with them go to on_data_channel)
    data_labels: ClassVar[tuple[str, ...]] = ()

    def __init__(self, server: PluginHost, config: Mapping[str, Any]) -> None:
        self.server = server
        self.config: dict[str, Any] = dict(config)

    # ---- life ----

    async def setup(self) -> None:
        """Called once the server has started (HTTP routes are mounted before)."""

    async def close(self) -> None:
        """Called when the server closes."""

    # ---- gate hooks: return normally to allow, raise Denied to refuse ----

    async def authenticate(self, request: JoinRequest) -> Identity | None:
        """Establish who is joining; None leaves it to the next plugin."""
        return None

    async def authorize_join(self, request: JoinRequest, room: Room) -> None:
        """May this (authenticated) request join this room?"""

    async def authorize_publish(self, peer: Peer, kind: str) -> None:
        """May this peer publish a track of this kind ("audio" or "video")?"""

    async def authorize_subscribe(self, peer: Peer, producer: Producer) -> None:
        """May this peer receive this producer?"""

    async def authorize_recording(self, room: Room, producers: list[Producer]) -> None:
        """May these producers of this room be recorded?"""

    # ---- what a plugin owns ----

    async def handle_request(self, peer: Peer | None, method: str, params: dict[str, Any]) -> Any:
        """A signaling request "<namespace>.<method>"; the result is the response."""
        raise Denied("unknown_method", f"{self.namespace}.{method} is not handled")

    def on_data_channel(self, peer: Peer, channel: Any) -> None:
        """A data channel with one of data_labels, opened by a peer."""

    def routes(self) -> list[web.RouteDef]:
        """HTTP routes, mounted under /plugins/<name> (a route "/status" is served at
        /plugins/<name>/status)."""
        return []

    # ---- helpers ----

    def on(self, event: str, listener: Callable[..., Any]) -> None:
        """Listen to a server event (see the class docstring)."""
        self.server.plugins.listen(self, event, listener)

    @property
    def metric_prefix(self) -> str:
        """Prefix for this plugin's Prometheus metrics."""
        return f"mediasrv_plugin_{self.name}_"


# common checks for Setting(check=...)


def non_empty(value: object) -> bool:
    """A string with something in it."""
    return isinstance(value, str) and bool(value.strip())


def long_secret(value: object) -> bool:
    """A secret of at least 16 characters."""
    return isinstance(value, str) and len(value) >= 16


def string_list(value: object) -> bool:
    """A list of non-empty strings."""
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def validate_config(plugin: type[Plugin], config: Mapping[str, Any]) -> dict[str, Any]:
    """The plugin's configuration with defaults filled in, or PluginConfigError naming the key."""
    schema = plugin.config_schema
    unknown = sorted(set(config) - set(schema))
    if unknown:
        raise PluginConfigError(
            f"plugins.{plugin.name}: unknown setting {unknown[0]!r} "
            f"(known: {', '.join(sorted(schema)) or 'none'})"
        )
    result: dict[str, Any] = {}
    for key, setting in schema.items():
        if key not in config:
            if setting.required:
                raise PluginConfigError(f"plugins.{plugin.name}.{key}: required ({setting.help})")
            result[key] = setting.default
            continue
        value = config[key]
        if not isinstance(value, setting.type) or (setting.type is int and isinstance(value, bool)):
            expected = (
                setting.type.__name__
                if isinstance(setting.type, type)
                else " or ".join(t.__name__ for t in setting.type)
            )
            raise PluginConfigError(
                f"plugins.{plugin.name}.{key}: expected {expected}, got {type(value).__name__}"
            )
        if setting.check is not None and not setting.check(value):
            shown = "(secret)" if setting.secret else repr(value)
            raise PluginConfigError(
                f"plugins.{plugin.name}.{key}: {shown} is not valid ({setting.help})"
            )
        result[key] = value
    return result
