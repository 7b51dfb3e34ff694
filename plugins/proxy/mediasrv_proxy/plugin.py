"""ProxyPlugin: joining a visit on behalf of another person.

A client joins with ``"onBehalfOf": {"principal": ..., "issue"?: ..., "mandateSession"?: ...}``
in the join params. The person joining (the delegate) must have been identified strongly (the
strongauth plugin); the principal is named by a pseudonymous subject or a national identity code
(hashed at once, never kept or logged). The plugin finds the delegate's grants for the principal
— in its local grant store, and through the mandate service when the join carries a
``mandateSession`` from the e-Authorizations selection (:mod:`mediasrv_proxy.hpa_flow`) — and
decides by the national rules (:mod:`mediasrv_proxy.rules`). Every decision goes to the
strongauth audit trail (who, for whom, on what basis, the result and its reasons) before it takes
effect: when the trail cannot take it, the join is refused.

An allowed peer is shown to the others as "<delegate> for <principal>" with an ``onBehalfOf``
attribute, and what it may do follows its basis (``permissions``): publishing audio ("speak")
and video, chat and attachments (through the chat plugin's policy hook). Each join decides
afresh, so a reconnect is checked again; revoking a grant or a professional's assessment that a
minor decides for themselves removes the peers acting on it at once.
"""

from __future__ import annotations

import contextlib
import logging
import re
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mediasrv_strongauth.audit import AuditEntry
from mediasrv_strongauth.identity_code import is_identity_code
from mediasrv_strongauth.plugin import StrongAuthPlugin

from mediasrv.blocking_thread import BlockingThread
from mediasrv.plugin import (
    Denied,
    Identity,
    JoinRequest,
    Plugin,
    PluginConfigError,
    Setting,
    long_secret,
    non_empty,
    string_list,
    validate_config,
)
from mediasrv_proxy.admin import admin_routes
from mediasrv_proxy.basis import Basis, Permission, parse_permissions
from mediasrv_proxy.decision import Decision, explain
from mediasrv_proxy.grant import Grant
from mediasrv_proxy.grant_source import GrantSource
from mediasrv_proxy.hpa_flow import HpaFlow
from mediasrv_proxy.local_grants import LocalGrants
from mediasrv_proxy.principals import principal_routes
from mediasrv_proxy.rules import decide
from mediasrv_proxy.store import GrantStore

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from aiohttp import web

    from mediasrv.media_server import MediaServer
    from mediasrv.peer import Peer
    from mediasrv.room import Room

log = logging.getLogger("mediasrv.plugins.proxy")

P = ParamSpec("P")
T = TypeVar("T")

PSEUDONYM = re.compile(r"^[0-9a-f]{32}$")
MAX_ISSUE = 100
MAX_REF = 64
WHAT = {Permission.SPEAK: "speak", Permission.VIDEO: "send video"}


def _zone(value: object) -> bool:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _format(value: object) -> bool:
    try:
        str(value).format(delegate="d", principal="p")
    except (KeyError, IndexError, ValueError):
        return False
    return True


def _permissions(value: object) -> bool:
    try:
        parse_permissions(value)
    except ValueError:
        return False
    return True


def _optional_url(value: object) -> bool:
    return isinstance(value, str) and (
        value == "" or value.startswith("https://") or value.startswith("http://127.0.0.1")
    )


class ProxyPlugin(Plugin):
    name = "proxy"
    namespace = "proxy"
    config_schema = {
        "database": Setting(
            str, default="proxy-grants.sqlite3", check=non_empty, help="SQLite file of grants"
        ),
        "admin_token": Setting(
            str,
            required=True,
            secret=True,
            check=long_secret,
            help="bearer token of the grant admin API (16+ characters)",
        ),
        "permissions": Setting(
            dict,
            default={},
            check=_permissions,
            help="basis = [join, speak, video, chat, attachments] (overrides the defaults)",
        ),
        "display_format": Setting(
            str,
            default="{delegate} for {principal}",
            check=_format,
            help="how an acting peer is shown ({delegate} and {principal})",
        ),
        "default_issue": Setting(
            str, default="", help="the matter a join concerns when it names none ('' any)"
        ),
        "timezone": Setting(str, default="Europe/Helsinki", check=_zone, help="for ages"),
        "professional_roles": Setting(
            list,
            default=["professional"],
            check=string_list,
            help="identity roles that may record a minor's assessment",
        ),
        "assessment_hours": Setting(
            int, default=12, check=lambda n: 1 <= n <= 24 * 30, help="how long an assessment holds"
        ),
        "hpa_url": Setting(
            str,
            default="",
            check=_optional_url,
            help="the mandate service (https; '' for none)",
        ),
        "hpa_client_id": Setting(str, default="", help="this service's client id there"),
        "hpa_api_key": Setting(str, default="", secret=True, help="the HMAC key of requests"),
        "hpa_oauth_secret": Setting(str, default="", secret=True, help="the OAuth secret"),
        "hpa_timeout": Setting(
            (int, float),
            default=5,
            check=lambda n: 0.1 <= n <= 30,
            help="seconds per mandate service call, 0.1..30",
        ),
        "public_url": Setting(
            str,
            default="",
            help="this server's URL as browsers see it (the mandate service redirects there)",
        ),
    }

    def __init__(self, server: MediaServer, config: Mapping[str, Any]) -> None:
        super().__init__(server, validate_config(type(self), config))
        cfg = self.config
        self.permissions = parse_permissions(cfg["permissions"])
        self.zone = ZoneInfo(cfg["timezone"])
        self.professional_roles = frozenset(cfg["professional_roles"])
        if cfg["hpa_url"]:
            for key in ("hpa_client_id", "hpa_api_key", "hpa_oauth_secret", "public_url"):
                if not cfg[key]:
                    raise PluginConfigError(f"plugins.proxy.{key}: required with hpa_url")
        self.clock: Callable[[], float] = lambda: datetime.now(UTC).timestamp()
        self.store: GrantStore | None = None
        self.strongauth: StrongAuthPlugin | None = None
        self.hpa: HpaFlow | None = None
        self.sources: list[GrantSource] = [LocalGrants(self)]
        if cfg["hpa_url"]:
            self.hpa = HpaFlow(self)
            self.sources.append(self.hpa)
        self._thread = BlockingThread("proxy-store")
        self.counts: dict[str, int] = {}

    # ---- life ----

    async def setup(self) -> None:
        strongauth = self.server.plugins.get("strongauth")
        if not isinstance(strongauth, StrongAuthPlugin):
            raise PluginConfigError(
                "plugins.proxy: needs the strongauth plugin enabled (delegates are identified "
                "strongly, and every decision goes to its audit trail)"
            )
        self.strongauth = strongauth
        self._thread.start()
        path = self.config["database"]
        try:
            self.store = await self.db(GrantStore, path)
        except Exception as exc:
            raise PluginConfigError(
                f"plugins.proxy.database: cannot open {path!r}: {exc}"
            ) from None
        chat = self.server.plugins.get("chat")
        add_policy = getattr(chat, "add_policy", None)
        if callable(add_policy):
            add_policy(self._chat_policy)

    async def close(self) -> None:
        for source in self.sources:
            await source.close()
        if self.store is not None:
            await self.db(self.store.close)
            self.store = None
        self._thread.shutdown()

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run grant store work (SQLite, fsync) on the store's thread."""
        return await self._thread.call(fn, *args, **kwargs)

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def today(self) -> date:
        return self.now().astimezone(self.zone).date()

    # ---- principals ----

    def subject_of(self, ref: object, what: str = "onBehalfOf.principal") -> str:
        """A principal reference (pseudonymous subject, or identity code hashed here) as a
        subject; Denied ``invalid_params`` otherwise."""
        if isinstance(ref, str) and PSEUDONYM.match(ref):
            return ref
        if isinstance(ref, str) and len(ref) <= MAX_REF and self.strongauth is not None:
            code = ref.strip().upper()
            if is_identity_code(code):
                return self.strongauth.subject_of(code)
        raise Denied(
            "invalid_params",
            f"{what} must be a pseudonymous subject (32 hex digits) or a Finnish identity code",
        )

    # ---- deciding ----

    async def _assessment(self, room: str, principal: str) -> bool | None:
        assert self.store is not None
        since = self.clock() - self.config["assessment_hours"] * 3600
        return await self.db(self.store.assessment, room, principal, since)

    def rules(
        self, grant: Grant | None, identity: Identity, issue: str, assessment: bool | None
    ) -> Decision:
        born = identity.private.get("birthdate")
        return decide(
            grant,
            now=self.now(),
            today=self.today(),
            delegate_birthdate=date.fromisoformat(born) if isinstance(born, str) else None,
            issue=issue,
            assessment=assessment,
            permissions=self.permissions,
        )

    async def decide(
        self,
        identity: Identity,
        principal: str,
        room: str,
        issue: str,
        on_behalf: Mapping[str, Any],
    ) -> tuple[Decision, Grant | None, dict[str, Any]]:
        """The decision for a delegate acting for a principal in a room: the first grant of any
        source that the rules allow, or every reason against; with the grant decided on and
        the sources' details for the audit record."""
        adult = self.rules(None, identity, issue, None)  # the delegate's age alone
        if "no_grant" not in adult.reasons:
            return adult, None, {}
        assessment = await self._assessment(room, principal)
        reasons: list[str] = []
        first: Grant | None = None
        details: dict[str, Any] = {}
        if "mandateSession" in on_behalf and self.hpa is None:
            reasons.append("mandate_session_unknown")
        for source in self.sources:
            found = await source.find(identity, principal, issue, on_behalf)
            if found.detail:
                details[source.name] = found.detail
            for grant in found.grants:
                decision = self.rules(grant, identity, issue, assessment)
                if decision.allowed:
                    return decision, grant, {"source": source.name, **details}
                first = first or grant
                reasons.extend(r for r in decision.reasons if r not in reasons)
            reasons.extend(r for r in found.reasons if r not in reasons)
        if not reasons:
            reasons.append("no_grant")
        basis = first.basis if first is not None else None
        refused = Decision(False, tuple(reasons), basis, first.id if first else None)
        return refused, first, details

    async def audit(
        self,
        decision: str,
        *,
        identity: Identity | None,
        principal: str | None,
        basis: Basis | str | None,
        room: str = "",
        remote: str = "",
        peer: str | None = None,
        reason: str = "",
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Write a record to the strongauth audit trail; Denied when it cannot be written."""
        if self.strongauth is None:
            raise Denied("audit_unavailable", "the audit trail is not open")
        entry = AuditEntry(
            decision=decision,
            reason=reason,
            room=room,
            peer=peer,
            remote=remote,
            acr=str(identity.claims["acr"]) if identity and "acr" in identity.claims else None,
            subject=identity.subject if identity is not None else None,
            ref=identity.claims.get("audit_record") if identity is not None else None,
            principal=principal,
            basis=str(basis) if basis is not None else None,
            detail=detail,
        )
        try:
            return await self.strongauth.record(entry)
        except Exception as exc:
            log.error("proxy: the audit trail refused a record: %s", type(exc).__name__)
            raise Denied(
                "audit_unavailable",
                "the decision could not be recorded in the audit trail; try again later",
            ) from None

    # ---- the join gate ----

    def _spec(self, raw: object) -> tuple[str, str, dict[str, Any]]:
        if not isinstance(raw, dict):
            raise Denied("invalid_params", "onBehalfOf must be an object")
        unknown = sorted(set(raw) - {"principal", "issue", "mandateSession"})
        if unknown:
            raise Denied("invalid_params", f"onBehalfOf.{unknown[0]} is not known")
        principal = self.subject_of(raw.get("principal"))
        issue = raw.get("issue", self.config["default_issue"])
        if not isinstance(issue, str) or len(issue) > MAX_ISSUE:
            raise Denied("invalid_params", f"onBehalfOf.issue must be a string (≤{MAX_ISSUE})")
        session = raw.get("mandateSession")
        if session is not None and (not isinstance(session, str) or not 0 < len(session) <= 128):
            raise Denied("invalid_params", "onBehalfOf.mandateSession must be a string (1..128)")
        return principal, issue, raw

    async def authorize_join(self, request: JoinRequest, room: Room) -> None:
        raw = request.params.get("onBehalfOf")
        if raw is None:
            return
        principal, issue, on_behalf = self._spec(raw)
        identity = request.identity
        if identity is None or identity.plugin != "strongauth":
            raise Denied(
                "identification_required",
                "acting on behalf of someone requires strong identification",
            )
        decision, grant, sources = await self.decide(identity, principal, room.id, issue, on_behalf)
        record = await self.audit(
            "proxy_allowed" if decision.allowed else "proxy_refused",
            identity=identity,
            principal=principal,
            basis=decision.basis,
            room=room.id,
            remote=request.remote,
            reason="" if decision.allowed else decision.reasons[0],
            detail={
                "result": decision.result,
                "reasons": list(decision.reasons),
                "issue": issue,
                "grant": decision.grant,
                "permissions": sorted(decision.permissions),
                **sources,
            },
        )
        self._count(decision.result)
        log.info(
            "proxy: %s subject %s for %s in room %r (%s; record %d)",
            decision.result,
            identity.subject,
            principal,
            room.id,
            ", ".join(decision.reasons) or decision.basis,
            record,
        )
        if not decision.allowed or grant is None:
            raise Denied("proxy_disallowed", f"you may not act for this person: {decision.message}")
        delegate_name = identity.display_name or request.display_name or "?"
        request.display_name = self.config["display_format"].format(
            delegate=delegate_name, principal=grant.principal_name
        )
        request.attributes["onBehalfOf"] = {
            "delegate": delegate_name,
            "principal": grant.principal_name,
            "basis": str(grant.basis),
        }
        request.app_data["on_behalf"] = {
            "principal": principal,
            "basis": str(grant.basis),
            "grant": grant.id,
            "record": record,
            "issue": issue,
            "source": grant.source,
            "permissions": sorted(decision.permissions),
        }
        request.app_data["proxy_grant"] = grant

    # ---- what an acting peer may do ----

    @staticmethod
    def acting(peer: Any) -> dict[str, Any] | None:
        """The on-behalf facts of a peer (None for a peer acting for itself)."""
        found = getattr(peer, "app_data", {}).get("on_behalf")
        return found if isinstance(found, dict) else None

    def may(self, peer: Any, permission: Permission) -> bool:
        acting = self.acting(peer)
        return acting is None or permission.value in acting.get("permissions", ())

    async def authorize_publish(self, peer: Peer, kind: str) -> None:
        permission = Permission.SPEAK if kind == "audio" else Permission.VIDEO
        if not self.may(peer, permission):
            acting = self.acting(peer) or {}
            raise Denied(
                "not_permitted",
                f"acting for someone as {acting.get('basis')}, you may not {WHAT[permission]}",
            )

    def _chat_policy(self, peer: Any, action: str, room_id: str) -> None:
        needed = {
            "post": Permission.CHAT,
            "read": Permission.CHAT,
            "upload": Permission.ATTACHMENTS,
            "download": Permission.ATTACHMENTS,
        }.get(action)
        if needed is not None and not self.may(peer, needed):
            acting = self.acting(peer) or {}
            what = "chat" if needed is Permission.CHAT else "attachments"
            raise Denied(
                "not_permitted",
                f"acting for someone as {acting.get('basis')}, you may not use {what}",
            )

    # ---- checking again ----

    def acting_peers(self, principal: str | None = None, grant: str | None = None) -> list[Peer]:
        found = []
        for room in list(self.server.rooms.values()):
            for peer in list(room.peers.values()):
                acting = self.acting(peer)
                if acting is None or peer.closed:
                    continue
                if principal is not None and acting.get("principal") != principal:
                    continue
                if grant is not None and acting.get("grant") != grant:
                    continue
                found.append(peer)
        return found

    async def recheck(self, peers: list[Peer], why: str) -> int:
        """Decide again for peers acting for someone; remove those no longer allowed (they are
        told why first). The number removed."""
        assert self.store is not None
        removed = 0
        for peer in peers:
            acting = self.acting(peer)
            identity = peer.identity
            held = peer.app_data.get("proxy_grant")
            if acting is None or identity is None or not isinstance(held, Grant):
                continue
            grant = held
            if held.source == "local":
                fresh = await self.db(self.store.get, held.id)
                grant = fresh if fresh is not None else held
            assessment = await self._assessment(peer.room.id, acting["principal"])
            decision = self.rules(grant, identity, acting.get("issue", ""), assessment)
            if decision.allowed:
                continue
            with contextlib.suppress(Denied):  # removing the peer is the safe side either way
                await self.audit(
                    "proxy_refused",
                    identity=identity,
                    principal=acting["principal"],
                    basis=grant.basis,
                    room=peer.room.id,
                    peer=peer.id,
                    reason=decision.reasons[0],
                    detail={
                        "result": decision.result,
                        "reasons": list(decision.reasons),
                        "grant": grant.id,
                        "recheck": why,
                    },
                )
            self._count("removed")
            log.info("proxy: removed peer %s from room %r (%s)", peer.id, peer.room.id, why)
            peer.notify(
                "proxyEnded",
                {"reasons": list(decision.reasons), "message": explain(decision.reasons)},
            )
            peer.close()
            removed += 1
        return removed

    async def assess(
        self, room: str, principal: str, decides_self: bool, by: Identity, remote: str = ""
    ) -> int:
        """Record a professional's assessment of a minor (12-17) in a visit: True when the minor
        decides on their own matters. Audited; peers no longer allowed are removed."""
        assert self.store is not None
        await self.audit(
            "proxy_assessed",
            identity=by,
            principal=principal,
            basis=None,
            room=room,
            remote=remote,
            detail={"decides_self": decides_self},
        )
        await self.db(self.store.assess, room, principal, decides_self, by.subject, self.clock())
        peers = [p for p in self.acting_peers(principal=principal) if p.room.id == room]
        return await self.recheck(peers, "assessment")

    # ---- signaling: proxy.assess ----

    async def handle_request(self, peer: Peer | None, method: str, params: dict[str, Any]) -> Any:
        if method != "assess":
            raise Denied("unknown_method", f"proxy.{method} is not handled")
        if peer is None:
            raise Denied("not_joined", "join a room first")
        identity = peer.identity
        if identity is None or not (identity.roles & self.professional_roles):
            raise Denied("not_permitted", "only a professional records this assessment")
        decides = params.get("decidesSelf")
        if not isinstance(decides, bool):
            raise Denied("invalid_params", "params.decidesSelf must be true or false")
        if "peerId" in params:
            other = peer.room.peers.get(str(params["peerId"]))
            acting = self.acting(other) if other is not None else None
            if acting is None:
                raise Denied("invalid_params", "params.peerId is not a peer acting for someone")
            principal = acting["principal"]
        else:
            principal = self.subject_of(params.get("principal"), "params.principal")
        removed = await self.assess(peer.room.id, principal, decides, identity)
        return {"principal": principal, "decidesSelf": decides, "removed": removed}

    # ---- HTTP ----

    def routes(self) -> list[web.RouteDef]:
        return admin_routes(self) + principal_routes(self)
