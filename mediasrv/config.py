"""Server configuration. The embedded default runs on 127.0.0.1 with no file at all."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MediaConfig:
    """The media side: the workers' UDP port, the address announced in ICE candidates, limits."""

    listen_ip: str = "127.0.0.1"
    announced_ip: str | None = None  # defaults to listen_ip
    rtc_port: int = 0  # UDP port of the first worker (0: any free port)
    # ICE-TCP (RFC 6544): each worker also offers a passive TCP candidate, for clients that
    # cannot send UDP; its port is rtc_tcp_port + the worker's index, or with 0 the same number
    # as the worker's UDP port (any free port when rtc_port is 0 and that number is taken)
    ice_tcp: bool = True
    rtc_tcp_port: int = 0
    max_tcp_connections: int = 2000  # per worker; more are refused at accept
    tcp_send_buffer: int = 256 * 1024  # bytes queued per connection; more are dropped
    workers: int = 1
    max_incoming_bitrate: int = 3_000_000  # REMB sent to publishers, bit/s
    ice_timeout: float = 30.0  # seconds from a transport's negotiation to its ICE connection
    consent_timeout: float = 30.0
    max_peers_per_room: int = 50
    max_rooms: int = 1000
    max_producers_per_peer: int = 8

    def __post_init__(self) -> None:
        if not 0 <= self.rtc_port <= 65535:
            raise ValueError(f"media.rtc_port: {self.rtc_port} is outside 0..65535")
        if not 0 <= self.rtc_tcp_port <= 65535:
            raise ValueError(f"media.rtc_tcp_port: {self.rtc_tcp_port} is outside 0..65535")
        if not 1 <= self.max_tcp_connections <= 1_000_000:
            raise ValueError(
                f"media.max_tcp_connections: {self.max_tcp_connections} is outside 1..1000000"
            )
        if not 16 * 1024 <= self.tcp_send_buffer <= 16 * 1024 * 1024:
            raise ValueError(
                f"media.tcp_send_buffer: {self.tcp_send_buffer} is outside 16 KiB..16 MiB"
            )
        if self.workers < 1:
            raise ValueError("media.workers: must be at least 1")
        if self.max_incoming_bitrate < 30_000:
            raise ValueError("media.max_incoming_bitrate: must be at least 30000 bit/s")
        try:
            ipaddress.ip_address(self.listen_ip)
        except ValueError:
            raise ValueError(f"media.listen_ip: {self.listen_ip!r} is not an IP address") from None

    @property
    def announced(self) -> str:
        return self.announced_ip or self.listen_ip


@dataclass(frozen=True)
class RecordingConfig:
    """Where recordings go and how their journals are written (docs/recording.md)."""

    directory: str = "recordings"
    # how often journals are handed to the OS: a killed server loses at most this much
    flush_interval: float = 0.5
    # also fsync journals this often (from a thread): what survives a power loss; 0: never
    fsync_interval: float = 1.0
    # records of one journal waiting for a flush; past it records are dropped and counted
    max_pending_bytes: int = 32 * 1024 * 1024
    # a recording stops when a journal would grow past this (bytes; 0: no limit)
    max_journal_bytes: int = 8 * 1024 * 1024 * 1024
    # peers may start and stop recordings over signaling (authorize_recording hooks decide)
    signaling: bool = True

    def __post_init__(self) -> None:
        if not self.directory:
            raise ValueError("recording.directory: must not be empty")
        if not 0.05 <= self.flush_interval <= 1.0:
            raise ValueError(
                f"recording.flush_interval: {self.flush_interval} is outside 0.05..1.0 seconds"
            )
        if self.fsync_interval < 0:
            raise ValueError("recording.fsync_interval: must be 0 (never) or more seconds")
        if self.max_pending_bytes < 1 << 16:
            raise ValueError("recording.max_pending_bytes: must be at least 65536")
        if self.max_journal_bytes < 0:
            raise ValueError("recording.max_journal_bytes: must be 0 (no limit) or more")


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus endpoint ``/metrics`` (docs/operations.md)."""

    enabled: bool = True
    # "" serves /metrics on the main HTTP listener; an address gives it a listener of its own
    host: str = ""
    port: int = 9464
    token: str | None = None  # a bearer token scrapers must present (None: none needed)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"metrics.port: {self.port} is outside 0..65535")
        if self.host:
            try:
                ipaddress.ip_address(self.host)
            except ValueError:
                raise ValueError(f"metrics.host: {self.host!r} is not an IP address") from None
        if self.token is not None and len(self.token) < 16:
            raise ValueError("metrics.token: at least 16 characters (or leave it out)")


@dataclass(frozen=True)
class ClusterConfig:
    """Several nodes (servers) sharing one room directory in Redis: a room lives on one node
    and a peer connecting to any node is relayed there."""

    redis_url: str = ""  # "" : no cluster (redis://host:port/db or unix:///path)
    node_id: str = ""  # this node's name in the directory ("": the host name and port)
    # the signaling URL other nodes relay to ("": ws://<host>:<port>/ws of this listener)
    public_url: str = ""
    node_ttl: float = 3.0  # seconds a node counts as alive after its last heartbeat
    key_prefix: str = "mediasrv:"
    # shared by every node: proves a relayed connection comes from a node (relay_proof.py)
    secret: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("cluster.redis_url: a redis://, rediss:// or unix:// URL")
        if not 1.0 <= self.node_ttl <= 60.0:
            raise ValueError(f"cluster.node_ttl: {self.node_ttl} is outside 1..60 seconds")
        if self.public_url and not self.public_url.startswith(("ws://", "wss://")):
            raise ValueError("cluster.public_url: a ws:// or wss:// URL of /ws")
        if (
            len(self.node_id) > 64
            or not self.node_id.isascii()
            or any(c.isspace() for c in self.node_id)
        ):
            raise ValueError("cluster.node_id: at most 64 ASCII characters, no spaces")
        if self.redis_url and len(self.secret) < 16:
            raise ValueError(
                "cluster.secret: at least 16 characters, the same on every node (it proves "
                "that a relayed connection comes from a node)"
            )

    @property
    def enabled(self) -> bool:
        return bool(self.redis_url)


TURN_URL = re.compile(r"^(stun|turns?):[A-Za-z0-9.\-]+(:\d{1,5})?(\?transport=(udp|tcp))?$")
TURN_URL_V6 = re.compile(r"^(stun|turns?):\[[0-9A-Fa-f:.]+\](:\d{1,5})?(\?transport=(udp|tcp))?$")


@dataclass(frozen=True)
class TurnConfig:
    """TURN servers handed to clients in the join result, with short-lived credentials of the
    TURN REST API scheme (coturn's ``use-auth-secret`` / ``static-auth-secret``): username
    ``<expiry>:<peer id>``, password base64(HMAC-SHA1(secret, username))."""

    # turn:host:port?transport=udp|tcp, turns:host:port (TLS), stun:host:port; () : none
    urls: tuple[str, ...] = ()
    secret: str = field(default="", repr=False)  # the TURN server's static-auth-secret
    ttl: int = 4 * 3600  # seconds a credential is valid (it must outlast an allocation)

    def __post_init__(self) -> None:
        for url in self.urls:
            if not isinstance(url, str) or not (TURN_URL.match(url) or TURN_URL_V6.match(url)):
                raise ValueError(
                    f"turn.urls: {url!r} is not turn:host[:port][?transport=udp|tcp], "
                    "turns:host[:port] or stun:host[:port]"
                )
            if url.startswith("stun:") and "?" in url:
                raise ValueError(f"turn.urls: {url!r}: a STUN URL takes no transport")
        if self.relays and len(self.secret) < 16:
            raise ValueError(
                "turn.secret: at least 16 characters, the TURN server's static-auth-secret"
            )
        if not 60 <= self.ttl <= 7 * 86400:
            raise ValueError(f"turn.ttl: {self.ttl} is outside 60..604800 seconds")

    @property
    def relays(self) -> tuple[str, ...]:
        """The turn: and turns: URLs (those that need credentials)."""
        return tuple(u for u in self.urls if u.startswith(("turn:", "turns:")))


@dataclass(frozen=True)
class PluginSpec:
    """One enabled plugin: its entry point name and its configuration."""

    name: str
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerConfig:
    """Where the HTTP server (signaling, client SDK, HTTP API) listens, and the media config."""

    host: str = "127.0.0.1"
    port: int = 8080
    media: MediaConfig = field(default_factory=MediaConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    turn: TurnConfig = field(default_factory=TurnConfig)
    # bearer token of the admin API under /admin (None: the admin API is off)
    admin_token: str | None = None
    # on SIGTERM: stop taking joins, tell the peers, wait this long for them to leave, then stop
    drain_timeout: float = 30.0
    log_format: str = "text"  # "text" or "json" (one JSON object a line)
    log_level: str = "info"
    # accepted signaling tokens; None: any token is accepted (development default, with a warning)
    tokens: frozenset[str] | None = None
    max_message_size: int = 256 * 1024  # WebSocket messages
    max_requests_per_second: float = 50.0
    # plugins from the entry point group "mediasrv.plugins", in the order their gates run
    plugins: tuple[PluginSpec, ...] = ()
    # worker processes (each its own event loop, UDP port and rooms) behind one supervisor that
    # relays signaling; 1: everything in this process; 0: one per CPU core
    processes: int = 1
    # with worker processes: a room's peers per worker before its later peers go to another
    # worker, its producers piped both ways (0: a room stays on one worker)
    room_spread_at: int = 0
    # the supervisor's per-run token of a worker process's internal API (never configured)
    internal_token: str | None = field(default=None, repr=False)
    # take the client's address from X-Forwarded-For when the connection comes from loopback
    # (set for the supervisor's worker processes; never on a listener clients reach directly)
    trust_forwarded: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: {self.port} is outside 0..65535")
        if not self.host:
            raise ValueError("host: must not be empty")
        if self.admin_token is not None and len(self.admin_token) < 16:
            raise ValueError("admin_token: at least 16 characters (or leave it out: no admin API)")
        if not 0 <= self.room_spread_at <= 10_000:
            raise ValueError(f"room_spread_at: {self.room_spread_at} is outside 0..10000")
        if not 0 <= self.processes <= 256:
            raise ValueError(f"processes: {self.processes} is outside 0..256 (0: one per core)")
        if not 0 <= self.drain_timeout <= 3600:
            raise ValueError(f"drain_timeout: {self.drain_timeout} is outside 0..3600 seconds")
        if self.log_format not in ("text", "json"):
            raise ValueError(f"log_format: {self.log_format!r} is not 'text' or 'json'")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ValueError(f"log_level: {self.log_level!r} is not debug, info, warning or error")

    @property
    def is_loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


DEFAULT_CONFIG = ServerConfig()
