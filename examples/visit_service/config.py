"""The visit service's settings: an embedded default that runs on one machine (SQLite files in
``data_dir``, the development identity provider on ``dev_idp_port``), or a TOML file's
``[visit]`` table for a real deployment (an OIDC broker, a public URL).

Secrets (session, invitation and audit keys, the admin tokens) are generated on first start
and kept in ``<data_dir>/secrets.json`` (mode 0600), so links and subjects survive restarts.
"""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mediasrv_strongauth import loa

from mediasrv.config import TurnConfig

SECRET_NAMES = ("session", "invitation", "subject_salt", "audit_admin", "proxy_admin", "chat_url")
DEFAULT_UNITS = (
    "Lastenneuvola, Lahti",
    "Kotihoito, Heinola",
    "Aikuissosiaalityö, Lahti",
    "Terveysasema, Orimattila",
)


class VisitConfigError(ValueError):
    """A setting is wrong; the message names the key."""


@dataclass(frozen=True)
class VisitConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    # how browsers reach the service ("" = http://host:port); https in production
    public_url: str = ""
    data_dir: str = ".visit-demo"
    language: str = "fi"  # default UI language: fi or en
    units: tuple[str, ...] = DEFAULT_UNITS
    # "dev": start the development identity provider (examples/visit_service/dev_idp.py)
    # "oidc": a real broker at oidc_issuer (discovery, code flow, client_secret_post)
    identity_provider: str = "dev"
    dev_idp_port: int = 8081
    oidc_issuer: str = ""
    oidc_client_id: str = "visit-service"
    oidc_client_secret: str = field(default="", repr=False)
    min_acr: str = loa.FTN_LOA2  # substantial
    # the camera asked for (simulcast sends up to three layers at 1280x720)
    video_width: int = 1280
    video_height: int = 720
    rtc_port: int = 0  # UDP port of the media worker (0: any free port)
    # TURN relays for clients behind firewalls (the server's [turn]: coturn's
    # static-auth-secret; docs/operations.md "NAT and firewalls"); () : none
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = field(default="", repr=False)
    turn_ttl: int = 4 * 3600
    # seed the demo: grants for the test people, a few appointments and ended visits
    demo_data: bool = True

    @property
    def url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        return self.url.startswith("https://")

    def path(self, name: str) -> str:
        return str(Path(self.data_dir) / name)


def _check(cfg: VisitConfig) -> VisitConfig:
    if not 0 <= cfg.port <= 65535:
        raise VisitConfigError(f"visit.port: expected 0..65535, got {cfg.port}")
    if not 0 <= cfg.dev_idp_port <= 65535:
        raise VisitConfigError(f"visit.dev_idp_port: expected 0..65535, got {cfg.dev_idp_port}")
    if cfg.language not in ("fi", "en"):
        raise VisitConfigError(f"visit.language: expected 'fi' or 'en', got {cfg.language!r}")
    if cfg.identity_provider not in ("dev", "oidc"):
        raise VisitConfigError(
            f"visit.identity_provider: expected 'dev' or 'oidc', got {cfg.identity_provider!r}"
        )
    if cfg.identity_provider == "dev" and cfg.host not in ("127.0.0.1", "::1", "localhost"):
        raise VisitConfigError(
            "visit.identity_provider: the development identity provider lets anyone sign in as "
            "a test person; it runs on a loopback host only (use 'oidc' with a real broker)"
        )
    if cfg.identity_provider == "oidc" and not cfg.oidc_issuer.startswith("https://"):
        raise VisitConfigError("visit.oidc_issuer: an https URL is required with 'oidc'")
    if not loa.is_known(cfg.min_acr):
        raise VisitConfigError(f"visit.min_acr: not a known level of assurance: {cfg.min_acr!r}")
    if not cfg.units or not all(isinstance(u, str) and u.strip() for u in cfg.units):
        raise VisitConfigError("visit.units: a list of one or more unit names")
    for name in ("video_width", "video_height"):
        if not 120 <= getattr(cfg, name) <= 1920:
            raise VisitConfigError(f"visit.{name}: expected 120..1920")
    if cfg.public_url and not cfg.public_url.startswith(("http://", "https://")):
        raise VisitConfigError("visit.public_url: an http(s) URL")
    try:
        TurnConfig(urls=cfg.turn_urls, secret=cfg.turn_secret, ttl=cfg.turn_ttl)
    except ValueError as exc:
        raise VisitConfigError("visit." + str(exc).replace("turn.", "turn_", 1)) from None
    return cfg


def load(path: str | None = None, **overrides: Any) -> VisitConfig:
    """The embedded default, the ``[visit]`` table of a TOML file over it, then ``overrides``."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                table = tomllib.load(f).get("visit", {})
        except OSError as exc:
            raise VisitConfigError(f"{path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise VisitConfigError(f"{path}: {exc}") from None
        if not isinstance(table, dict):
            raise VisitConfigError(f"{path}: [visit] must be a table")
        values.update(table)
    values.update(overrides)
    known = {f.name: f for f in fields(VisitConfig)}
    for key, value in values.items():
        if key not in known:
            raise VisitConfigError(f"visit.{key}: not a setting ({', '.join(sorted(known))})")
        default = getattr(VisitConfig(), key)
        if isinstance(default, tuple):
            if not isinstance(value, list | tuple):
                raise VisitConfigError(f"visit.{key}: expected a list")
            values[key] = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise VisitConfigError(f"visit.{key}: expected true or false")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise VisitConfigError(f"visit.{key}: expected an integer, got {value!r}")
        elif not isinstance(value, str):
            raise VisitConfigError(f"visit.{key}: expected a string, got {value!r}")
    return _check(replace(VisitConfig(), **values))


def load_secrets(data_dir: str) -> dict[str, str]:
    """The service's secrets, generated on first use and kept in ``secrets.json`` (0600)."""
    path = Path(data_dir) / "secrets.json"
    found: dict[str, str] = {}
    if path.exists():
        try:
            found = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise VisitConfigError(f"{path}: unreadable secrets file ({exc})") from None
        if not isinstance(found, dict):
            raise VisitConfigError(f"{path}: expected a JSON object")
    missing = [n for n in SECRET_NAMES if not isinstance(found.get(n), str) or len(found[n]) < 32]
    if missing:
        for name in missing:
            found[name] = secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(found, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    return found
