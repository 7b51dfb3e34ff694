"""mediasrv: an embeddable WebRTC selective forwarding unit for Python, with plugins.

The public API, importable from here (loaded on first use, so that ``import mediasrv._core``
or the recording tools do not load the server)::

    from mediasrv import MediaServer, HttpFrontend, ServerConfig, Plugin, Client
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from mediasrv.version import __version__

if TYPE_CHECKING:
    from mediasrv.client import Client
    from mediasrv.config import MediaConfig, PluginSpec, RecordingConfig, ServerConfig
    from mediasrv.denied import Denied
    from mediasrv.http.frontend import HttpFrontend
    from mediasrv.identity import Identity
    from mediasrv.media_server import MediaServer
    from mediasrv.plugin import JoinRequest, Plugin, PluginHost, Setting

# public name -> the module that holds it
_EXPORTS = {
    "Client": "mediasrv.client",
    "Denied": "mediasrv.denied",
    "HttpFrontend": "mediasrv.http.frontend",
    "Identity": "mediasrv.identity",
    "JoinRequest": "mediasrv.plugin",
    "MediaConfig": "mediasrv.config",
    "MediaServer": "mediasrv.media_server",
    "Plugin": "mediasrv.plugin",
    "PluginHost": "mediasrv.plugin",
    "PluginSpec": "mediasrv.config",
    "RecordingConfig": "mediasrv.config",
    "ServerConfig": "mediasrv.config",
    "Setting": "mediasrv.plugin",
}

__all__ = [
    "Client",
    "Denied",
    "HttpFrontend",
    "Identity",
    "JoinRequest",
    "MediaConfig",
    "MediaServer",
    "Plugin",
    "PluginHost",
    "PluginSpec",
    "RecordingConfig",
    "ServerConfig",
    "Setting",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mediasrv' has no attribute {name!r}")
    return getattr(import_module(module), name)
