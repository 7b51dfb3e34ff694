"""Sessions of signed-in people: an opaque random cookie, the strong identification behind it
kept on the server (never in the cookie), idle and absolute time limits, and a CSRF token for
every state-changing request."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from mediasrv.plugin import Identity

COOKIE = "visit_session"
IDLE_SECONDS = 30 * 60
MAX_SECONDS = 8 * 3600
MAX_SESSIONS = 10_000


@dataclass
class Session:
    id: str
    identity: Identity
    created: float
    seen: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def subject(self) -> str:
        return self.identity.subject

    @property
    def name(self) -> str:
        return self.identity.display_name

    @property
    def professional(self) -> bool:
        return "professional" in self.identity.roles


class Sessions:
    def __init__(self, *, secure: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.secure = secure
        self.clock = clock
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def _sweep(self, now: float) -> None:
        for sid, s in list(self._sessions.items()):
            if now - s.seen > IDLE_SECONDS or now - s.created > MAX_SECONDS:
                del self._sessions[sid]

    def create(self, response: web.StreamResponse, identity: Identity) -> Session:
        now = self.clock()
        self._sweep(now)
        if len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.seen)
            del self._sessions[oldest.id]
        session = Session(secrets.token_urlsafe(32), identity, now, now)
        self._sessions[session.id] = session
        response.set_cookie(
            COOKIE, session.id, httponly=True, samesite="Lax", secure=self.secure, path="/"
        )
        return session

    def get(self, request: web.Request) -> Session | None:
        sid = request.cookies.get(COOKIE, "")
        session = self._sessions.get(sid) if len(sid) <= 64 else None
        if session is None:
            return None
        now = self.clock()
        if now - session.seen > IDLE_SECONDS or now - session.created > MAX_SECONDS:
            del self._sessions[sid]
            return None
        session.seen = now
        return session

    def end(self, request: web.Request, response: web.StreamResponse) -> None:
        self._sessions.pop(request.cookies.get(COOKIE, ""), None)
        response.del_cookie(COOKIE, path="/")

    @staticmethod
    def csrf_ok(session: Session, value: str | None) -> bool:
        return isinstance(value, str) and hmac.compare_digest(value, session.csrf)
