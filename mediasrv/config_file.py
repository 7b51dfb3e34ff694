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

[[plugins]]                            # in the order their gates run
name = "strongauth"
[plugins.config]
issuer = "https://broker.example"
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from mediasrv.config import MediaConfig, PluginSpec, RecordingConfig, ServerConfig


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
        out[key] = value
    return out


def load_config(path: str | Path) -> ServerConfig:
    """Read and validate a TOML configuration file."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return config_from_dict(data)


def config_from_dict(data: dict[str, Any]) -> ServerConfig:
    data = dict(data)
    media_values = data.pop("media", {})
    recording_values = data.pop("recording", {})
    if not isinstance(recording_values, dict):
        raise ConfigError("recording: expected a table")
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
    top = _check("", data, ServerConfig, {"media", "plugins", "tokens", "recording"})
    media_kwargs = _check("media.", media_values, MediaConfig, set())
    recording_kwargs = _check("recording.", recording_values, RecordingConfig, set())
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
            tokens=frozenset(tokens) if tokens is not None else None,
            plugins=tuple(specs),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
