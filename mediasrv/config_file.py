"""ServerConfig from a TOML file; errors name the key and the problem.

host = "127.0.0.1"
port = 8080
tokens = ["a-long-random-token"]      # omit: any token (development only)

admin_token = "another-long-random-token"  # omit: no admin API

[media]
rtc_port = 40000
announced_ip = "203.0.113.7"

[recording]
directory = "/var/lib/mediasrv/recordings"
flush_interval = 0.5                   # seconds: what a killed server can lose

[metrics]
host = "10.0.0.5"                      # "" (default): /metrics on the main listener
port = 9464
token = "a-long-random-scrape-token"   # omit: no token needed

[turn]                                 # TURN for clients behind firewalls (docs/operations.md)
urls = ["turn:turn.example:3478?transport=udp", "turn:turn.example:3478?transport=tcp",
        "turns:turn.example:5349"]
secret = "coturn's static-auth-secret"  # or MEDIASRV_TURN_SECRET
ttl = 14400                            # seconds a handed-out credential is valid

[[plugins]]                            # in the order their gates run
name = "strongauth"
[plugins.config]
issuer = "https://broker.example"

Every key can also come from the environment, which wins over the file:
MEDIASRV_PORT=9000, MEDIASRV_MEDIA_RTC_PORT=40000, MEDIASRV_TOKENS=a,b,
MEDIASRV_RECORDING_DIRECTORY=/data (docs/operations.md).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mediasrv.config import (
    ClusterConfig,
    MediaConfig,
    MetricsConfig,
    PluginSpec,
    RecordingConfig,
    ServerConfig,
    TurnConfig,
)


class ConfigError(ValueError):
    """The configuration file is unusable; the message names the key."""


def _fields(cls: type) -> dict[str, Any]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _check(section: str, values: dict[str, Any], cls: type, skip: set[str]) -> dict[str, Any]:
    known = {name: f for name, f in _fields(cls).items() if name not in skip}
    out: dict[str, Any] = {}
    for key, value in values.items():
        where = f"{section}{key}"
        if key not in known:
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(known))})")
        default = known[key].default
        expected: tuple[type, ...]
        if isinstance(default, bool):
            expected = (bool,)
        elif isinstance(default, int):
            expected = (int,)
        elif isinstance(default, float):
            expected = (int, float)
        else:
            expected = (str,) if default is None or isinstance(default, str) else (type(default),)
        if not isinstance(value, expected) or (expected != (bool,) and isinstance(value, bool)):
            raise ConfigError(
                f"{where}: expected {expected[0].__name__}, got {type(value).__name__}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value}")
        out[key] = value
    return out


ENV_PREFIX = "MEDIASRV_"
SECTIONS = {
    "media": MediaConfig,
    "recording": RecordingConfig,
    "metrics": MetricsConfig,
    "cluster": ClusterConfig,
    "turn": TurnConfig,
}
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
# MEDIASRV_* variables that are not settings: the build's and the benchmarks' own
NOT_SETTINGS = ("MEDIASRV_LIBSRTP", "MEDIASRV_TRACE", "MEDIASRV_ANNOTATE", "MEDIASRV_BENCH_")
# what Kubernetes puts in the environment for a Service named "mediasrv" (service links):
# MEDIASRV_SERVICE_HOST, MEDIASRV_SERVICE_PORT[_NAME], MEDIASRV_PORT=tcp://10.0.0.1:8080,
# MEDIASRV_PORT_8080_TCP[_PROTO|_PORT|_ADDR]; never settings
SERVICE_LINK_NAME = re.compile(r"^MEDIASRV_(SERVICE_|PORT_\d+_(TCP|UDP|SCTP))")
SERVICE_LINK_VALUE = re.compile(r"^(tcp|udp|sctp)://")


def read_file(path: str | Path) -> dict[str, Any]:
    """A TOML configuration file as a table (not validated yet)."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> ServerConfig:
    """Read and validate a TOML configuration file, with environment overrides."""
    return config_from_dict(with_environment(read_file(path), environ))


def _env_value(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        if raw.strip().lower() in TRUE:
            return True
        if raw.strip().lower() in FALSE:
            return False
        raise ConfigError(f"{name}: expected true or false, got {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if isinstance(default, float):
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{name}: expected a finite number, got {raw!r}")
        return value
    return raw


def with_environment(
    data: dict[str, Any], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The table with ``MEDIASRV_*`` environment variables laid over it:
    ``MEDIASRV_PORT=9000``, ``MEDIASRV_MEDIA_RTC_PORT=40000``,
    ``MEDIASRV_RECORDING_DIRECTORY=/data``, ``MEDIASRV_TOKENS=a,b``. An unknown name or a
    value of the wrong type is an error naming the variable."""
    env = os.environ if environ is None else environ
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    top = {name: f for name, f in _fields(ServerConfig).items() if name not in SECTIONS}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name.startswith(NOT_SETTINGS):
            continue
        if SERVICE_LINK_NAME.match(name) or SERVICE_LINK_VALUE.match(env[name]):
            continue  # a Kubernetes service link, not a setting
        key = name[len(ENV_PREFIX) :].lower()
        raw = env[name]
        section = next((s for s in SECTIONS if key.startswith(s + "_")), None)
        if section is not None:
            fields = _fields(SECTIONS[section])
            sub = key[len(section) + 1 :]
            if sub not in fields:
                known = ", ".join(sorted(fields))
                raise ConfigError(f"{name}: unknown setting (known {section} keys: {known})")
            table = merged.setdefault(section, {})
            if not isinstance(table, dict):
                raise ConfigError(f"{section}: expected a table")
            table[sub] = _env_value(name, raw, fields[sub].default)
        elif key == "tokens":
            merged["tokens"] = [t.strip() for t in raw.split(",") if t.strip()]
        elif key in top and key != "plugins":
            merged[key] = _env_value(name, raw, top[key].default)
        else:
            raise ConfigError(f"{name}: unknown setting (see docs/operations.md)")
    return merged


def config_from_dict(data: dict[str, Any]) -> ServerConfig:
    data = dict(data)
    media_values = data.pop("media", {})
    recording_values = data.pop("recording", {})
    metrics_values = data.pop("metrics", {})
    cluster_values = data.pop("cluster", {})
    turn_values = data.pop("turn", {})
    for section, values in (
        ("recording", recording_values),
        ("metrics", metrics_values),
        ("cluster", cluster_values),
        ("turn", turn_values),
    ):
        if not isinstance(values, dict):
            raise ConfigError(f"{section}: expected a table")
    turn_values = dict(turn_values)
    turn_urls = turn_values.pop("urls", [])
    if isinstance(turn_urls, str):  # MEDIASRV_TURN_URLS=a,b
        turn_urls = [u.strip() for u in turn_urls.split(",") if u.strip()]
    if not isinstance(turn_urls, list) or not all(isinstance(u, str) for u in turn_urls):
        raise ConfigError("turn.urls: expected a list of strings")
    plugin_values = data.pop("plugins", [])
    tokens = data.pop("tokens", None)
    if not isinstance(media_values, dict):
        raise ConfigError("media: expected a table")
    if not isinstance(plugin_values, list):
        raise ConfigError("plugins: expected an array of tables ([[plugins]])")
    if tokens is not None and (
        not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens)
    ):
        raise ConfigError("tokens: expected a list of non-empty strings")
    top = _check(
        "",
        data,
        ServerConfig,
        {"media", "plugins", "tokens", "recording", "metrics", "cluster", "turn"},
    )
    media_kwargs = _check("media.", media_values, MediaConfig, set())
    recording_kwargs = _check("recording.", recording_values, RecordingConfig, set())
    metrics_kwargs = _check("metrics.", metrics_values, MetricsConfig, set())
    cluster_kwargs = _check("cluster.", cluster_values, ClusterConfig, set())
    turn_kwargs = _check("turn.", turn_values, TurnConfig, {"urls"})
    specs = []
    for index, entry in enumerate(plugin_values):
        where = f"plugins[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a table")
        unknown = sorted(set(entry) - {"name", "config"})
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key (known: config, name)")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}.name: required, a plugin's entry point name")
        config = entry.get("config", {})
        if not isinstance(config, dict):
            raise ConfigError(f"{where}.config: expected a table")
        specs.append(PluginSpec(name, config))
    try:
        media = MediaConfig(**media_kwargs)
        return ServerConfig(
            **top,
            media=media,
            recording=RecordingConfig(**recording_kwargs),
            metrics=MetricsConfig(**metrics_kwargs),
            cluster=ClusterConfig(**cluster_kwargs),
            turn=TurnConfig(urls=tuple(turn_urls), **turn_kwargs),
            tokens=frozenset(tokens) if tokens is not None else None,
            plugins=tuple(specs),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
