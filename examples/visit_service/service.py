"""VisitService: the video visit service composed from mediasrv and its plugins.

One process serves everything on one HTTP listener: the media server (signaling at ``/ws``,
the browser SDK), the strongauth, proxy and chat plugins (``/plugins/...``), and the visit
service's pages and JSON API under ``/visit``. In development it also starts the local test
identity provider (``dev_idp.py``) on its own port.

    service = VisitService(config.load())
    await service.start()
    ...
    await service.close()
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from mediasrv_strongauth.audit import AuditEntry

from examples.visit_service.appointments import AppointmentBook, Status
from examples.visit_service.config import VisitConfig, load_secrets
from examples.visit_service.demo import seed
from examples.visit_service.dev_idp import DevIdentityProvider
from examples.visit_service.directory import PersonDirectory
from examples.visit_service.feedback import FeedbackBook
from examples.visit_service.lobby import Lobbies
from examples.visit_service.oidc_login import OidcLogin
from examples.visit_service.routes import visit_app
from examples.visit_service.sessions import Sessions
from examples.visit_service.visit_plugin import VisitPlugin
from mediasrv.blocking_thread import BlockingThread
from mediasrv.config import MediaConfig, PluginSpec, RecordingConfig, ServerConfig, TurnConfig
from mediasrv.http.frontend import HttpFrontend
from mediasrv.media_server import MediaServer
from mediasrv.plugin import Identity

log = logging.getLogger("visit")
P = ParamSpec("P")
T = TypeVar("T")
END_GRACE_SECONDS = 3.0  # peers read the feedback link before the room closes


class VisitService:
    def __init__(self, config: VisitConfig, *, server_config: dict[str, Any] | None = None) -> None:
        self.config = config
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
        self.secrets = load_secrets(config.data_dir)
        self._thread = BlockingThread("visit-db")
        self.book = AppointmentBook(config.path("appointments.sqlite3"), self.secrets["invitation"])
        self.feedback = FeedbackBook(config.path("feedback.sqlite3"))
        self.people = PersonDirectory(config.path("people.sqlite3"))
        self.sessions = Sessions(secure=config.secure_cookies)
        self.lobbies = Lobbies()
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.idp: DevIdentityProvider | None = None
        self.login: OidcLogin | None = None
        self._server_config = server_config or {}
        self.server: MediaServer | None = None
        self.visit_plugin: VisitPlugin | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def now(self) -> datetime:
        return self.clock()

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Blocking SQLite work of the service's own books, in order, off the event loop."""
        return await self._thread.call(fn, *args, **kwargs)

    @property
    def url(self) -> str:
        if self.server is not None and self.server.http_address and not self.config.public_url:
            host, port = self.server.http_address
            return f"http://{host}:{port}"
        return self.config.url

    # ---- life ----

    async def start(self) -> None:
        cfg = self.config
        self._thread.start()
        if cfg.identity_provider == "dev":
            self.idp = DevIdentityProvider(client_id=cfg.oidc_client_id, redirect_uris=[],
                                           host=cfg.host)  # fmt: skip
            await self.idp.start(cfg.dev_idp_port)
            issuer, jwks_uri = self.idp.issuer, self.idp.jwks_uri
        else:
            meta = await OidcLogin(cfg.oidc_issuer, cfg.oidc_client_id, "").metadata()
            issuer, jwks_uri = str(meta["issuer"]), str(meta.get("jwks_uri", ""))
        s = self.secrets
        settings: dict[str, Any] = {
            "host": cfg.host,
            "port": cfg.port,
            # no shared tokens: every join is identified by strongauth (a join ticket)
            "tokens": frozenset({secrets.token_urlsafe(32)}),
            "media": MediaConfig(rtc_port=cfg.rtc_port),
            "turn": TurnConfig(urls=cfg.turn_urls, secret=cfg.turn_secret, ttl=cfg.turn_ttl),
            # recordings start through the visit plugin (a professional, every client's
            # consent), never through the media server's own signaling methods
            "recording": RecordingConfig(directory=cfg.path("recordings"), signaling=False),
            "plugins": (
                PluginSpec(
                    "strongauth",
                    {
                        "issuer": issuer,
                        "audience": cfg.oidc_client_id,
                        "jwks_uri": jwks_uri,
                        "min_acr": cfg.min_acr,
                        "audit_db": cfg.path("audit.sqlite3"),
                        "admin_token": s["audit_admin"],
                        "subject_salt": s["subject_salt"],
                    },
                ),
                PluginSpec(
                    "proxy",
                    {
                        "database": cfg.path("grants.sqlite3"),
                        "admin_token": s["proxy_admin"],
                        "public_url": cfg.url,
                    },
                ),
                PluginSpec(
                    "chat",
                    {
                        "database": cfg.path("chat.sqlite3"),
                        "attachments_dir": cfg.path("attachments"),
                        "url_secret": s["chat_url"],
                    },
                ),
            ),
            **self._server_config,
        }
        self.server = MediaServer(ServerConfig(**settings))
        plugin = self.server.plugins.add(VisitPlugin, {})
        assert isinstance(plugin, VisitPlugin)
        plugin.service = self
        self.visit_plugin = plugin
        HttpFrontend(self.server).app.add_subapp("/visit", visit_app(self))
        await self.server.start()
        redirect = f"{self.url}/visit/callback"  # the bound port when configured as 0
        if self.idp is not None:
            self.idp.redirect_uris = {redirect}
            self.login = OidcLogin(self.idp.url, cfg.oidc_client_id, redirect)
        else:
            self.login = OidcLogin(
                cfg.oidc_issuer,
                cfg.oidc_client_id,
                redirect,
                client_secret=cfg.oidc_client_secret,
                acr_values=cfg.min_acr,
            )
        if cfg.demo_data:
            await seed(self)
        log.info("visit service at %s/visit/", self.url)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.lobbies.hang_up()  # waiting-room streams end, so the HTTP server can stop
        if self.server is not None:
            await self.server.close()
        if self.idp is not None:
            await self.idp.close()
        await self.db(self.book.close)
        await self.db(self.feedback.close)
        await self.db(self.people.close)
        self._thread.shutdown()

    # ---- plugins ----

    @property
    def strongauth(self) -> Any:
        assert self.server is not None
        found = self.server.plugins.get("strongauth")
        assert found is not None
        return found

    @property
    def proxy(self) -> Any:
        assert self.server is not None
        return self.server.plugins.get("proxy")

    @property
    def chat(self) -> Any:
        assert self.server is not None
        return self.server.plugins.get("chat")

    async def audit(self, decision: str, **fields: Any) -> int:
        """A record in the strongauth audit trail (fsynced when this returns)."""
        return int(await self.strongauth.record(AuditEntry(decision=decision, **fields)))

    async def identify(self, id_token: str, remote: str, nonce: str) -> Identity:
        """A sign-in's ID token verified (and audited) by strongauth; its nonce checked."""
        identity: Identity = await self.strongauth.verify_person(id_token, remote, "visit: sign-in")
        if identity.claims.get("nonce") != nonce:
            raise PermissionError("the sign-in does not belong to this browser (nonce)")
        await self.db(
            self.people.remember,
            identity.subject,
            identity.display_name,
            professional="professional" in identity.roles,
        )
        return identity

    # ---- ending a visit ----

    async def end_visit(self, room_id: str, by: str) -> None:
        """End the visit: every client gets the feedback link in the chat and a ``visit.ended``
        notification, then the room closes."""
        appointment = await self.db(self.book.by_room, room_id)
        if appointment is None:
            return
        if appointment.status is Status.SCHEDULED:
            appointment = await self.db(self.book.start, appointment.id, self.now())
        if appointment.status is Status.IN_PROGRESS:
            appointment = await self.db(self.book.end, appointment.id, self.now())
        self.lobbies.drop(appointment.id)
        assert self.server is not None
        room = self.server.rooms.get(room_id)
        if room is None:
            return
        room.stop_recording("the visit ended")
        survey = f"/visit/survey/{self.survey_token(appointment.id)}"
        for peer in list(room.peers.values()):
            peer.notify("visit.ended", {"by": by, "survey": survey})
        chat = self.chat
        if chat is not None:  # the link stays in the visit's chat history too
            await chat.post_system(room_id, "visit_ended", kind="visit_ended", survey=survey,
                                   endedBy=by)  # fmt: skip
        task = asyncio.get_running_loop().create_task(self._close_room_later(room_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_room_later(self, room_id: str) -> None:
        await asyncio.sleep(END_GRACE_SECONDS)
        assert self.server is not None
        room = self.server.rooms.get(room_id)
        if room is not None:
            for peer in list(room.peers.values()):
                peer.notify("removed", {"reason": "visit_ended"})
            room.close()

    def survey_token(self, appointment_id: str) -> str:
        return self.book.sign_parts("survey", appointment_id)
