"""Server configuration. The embedded default runs on 127.0.0.1 with no file at all."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerConfig:
    """Where the HTTP server (signaling, client SDK, HTTP API) listens."""

    host: str = "127.0.0.1"
    port: int = 8080

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: {self.port} is outside 0..65535")
        if not self.host:
            raise ValueError("host: must not be empty")

    @property
    def is_loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


DEFAULT_CONFIG = ServerConfig()
