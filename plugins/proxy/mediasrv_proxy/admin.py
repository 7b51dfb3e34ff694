"""The grant admin API under /plugins/proxy/ (``Authorization: Bearer <admin_token>``).

``POST grants``
    ``{"principal", "principalName", "delegate", "delegateName", "basis", "issues"?,
    "validFrom"?, "validUntil"?, "guardiansRequired"?, "principalBirthdate"?}`` → 201 the grant.
    ``principal`` and ``delegate`` are national identity codes (hashed at once; never stored)
    or pseudonymous subjects; a principal given as a subject needs ``principalBirthdate``. Times
    are ISO 8601 (UTC when no offset is given). A delegate under 18 is refused, and a mandate
    for a minor needs ``guardiansRequired`` ≥ 1 (all guardians confirm it).
``GET grants?principal=&delegate=`` (at least one) → ``{"grants": [...]}``
``GET grants/{id}`` → the grant
``DELETE grants/{id}`` → ``{"grant", "removed"}``: revoked (kept, marked); peers acting on it
    are removed from their visits at once
``POST grants/{id}/confirmations`` ``{"guardian"}`` → the grant: one guardian's confirmation
``POST assessments`` ``{"room", "principal", "decidesSelf"}`` → ``{"removed"}``: a
    professional's assessment of a minor aged 12 to 17 for a visit (also possible over
    signaling, ``proxy.assess``)

Every change is written to the strongauth audit trail before it is answered. A public
guardian's person is never shown: such grants list ``"delegate": null``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, ParamSpec, Protocol, TypeVar

from aiohttp import web
from mediasrv_strongauth.identity_code import age_on, birthdate_of, is_identity_code

from mediasrv.http.json_body import BadRequest, bearer_ok, error, read_object, unauthorized
from mediasrv.plugin import Denied, Identity
from mediasrv_proxy.basis import Basis
from mediasrv_proxy.grant import Grant
from mediasrv_proxy.rules import ADULT_AGE
from mediasrv_proxy.store import GrantStore, grant_fields

log = logging.getLogger("mediasrv.plugins.proxy")

P = ParamSpec("P")
T = TypeVar("T")
PeerT = TypeVar("PeerT")  # the plugin's peers: found acting on a grant, then checked again

MAX_NAME = 200
MAX_ISSUES = 50
MAX_ISSUE = 100
ADMIN = Identity(subject="admin", display_name="admin API", roles=frozenset({"admin"}))
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GrantAdminHost(Protocol[PeerT]):
    """What the grant admin API uses of its plugin (a ProxyPlugin is one): ``admin_token`` in
    its configuration, the grant store (None until set up) and the thread its work runs on,
    principal references as subjects, today's date, the audit trail, the peers acting on a
    grant and checking them again, and professionals' assessments."""

    @property
    def config(self) -> Mapping[str, Any]: ...

    @property
    def store(self) -> GrantStore | None: ...

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...

    def subject_of(self, ref: object, what: str = ...) -> str: ...

    def today(self) -> date: ...

    async def audit(
        self,
        decision: str,
        *,
        identity: Identity | None,
        principal: str | None,
        basis: Basis | str | None,
        room: str = ...,
        remote: str = ...,
        peer: str | None = ...,
        reason: str = ...,
        detail: dict[str, Any] | None = ...,
    ) -> int: ...

    def acting_peers(self, principal: str | None = ..., grant: str | None = ...) -> list[PeerT]: ...

    async def recheck(self, peers: list[PeerT], why: str) -> int: ...

    async def assess(
        self, room: str, principal: str, decides_self: bool, by: Identity, remote: str = ...
    ) -> int: ...


def _text(body: dict[str, Any], key: str, limit: int = MAX_NAME, required: bool = True) -> str:
    value = body.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise BadRequest(f"{key} must be a non-empty string of at most {limit} characters")
    return value.strip()


def _time(body: dict[str, Any], key: str) -> datetime | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be an ISO 8601 time")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{key}: {value[:40]!r} is not an ISO 8601 time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _day(body: dict[str, Any], key: str) -> date | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise BadRequest(f"{key} must be a date (YYYY-MM-DD)") from None


def admin_routes(plugin: GrantAdminHost[PeerT]) -> list[web.RouteDef]:
    def guarded(handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            if not bearer_ok(request, plugin.config["admin_token"]):
                return unauthorized("proxy-admin")
            if plugin.store is None:
                return error(503, "not_ready", "the grant store is not open")
            try:
                return await handler(request)
            except BadRequest as bad:
                return error(bad.status, bad.code, bad.message)
            except Denied as denied:
                status = 400 if denied.code == "invalid_params" else 503
                return error(status, denied.code, denied.message)

        return run

    def person(body: dict[str, Any], key: str) -> tuple[str, date | None]:
        """A subject and, from an identity code, the birth date."""
        value = _text(body, key, 64)
        if is_identity_code(value.upper()):
            return plugin.subject_of(value.upper(), key), birthdate_of(value.upper())
        return plugin.subject_of(value, key), None

    async def add_grant(request: web.Request) -> web.Response:
        body = await read_object(request)
        principal, principal_born = person(body, "principal")
        delegate, delegate_born = person(body, "delegate")
        if principal == delegate:
            raise BadRequest("principal and delegate are the same person")
        basis_text = body.get("basis")
        if not isinstance(basis_text, str) or basis_text not in Basis.__members__:
            raise BadRequest(f"basis must be one of {', '.join(Basis)}")
        basis = Basis(basis_text)
        principal_born = principal_born or _day(body, "principalBirthdate")
        if principal_born is None:
            raise BadRequest(
                "principalBirthdate is required when principal is not an identity code"
            )
        today = plugin.today()
        if delegate_born is not None and age_on(delegate_born, today) < ADULT_AGE:
            raise BadRequest("the delegate is under 18: minors cannot act on behalf of others")
        issues = body.get("issues", [])
        if (
            not isinstance(issues, list)
            or len(issues) > MAX_ISSUES
            or not all(isinstance(i, str) and 0 < len(i) <= MAX_ISSUE for i in issues)
        ):
            raise BadRequest(
                f"issues must be a list of at most {MAX_ISSUES} strings (≤{MAX_ISSUE})"
            )
        valid_from, valid_until = _time(body, "validFrom"), _time(body, "validUntil")
        if valid_from and valid_until and valid_until <= valid_from:
            raise BadRequest("validUntil must be after validFrom")
        required = body.get("guardiansRequired", 0)
        if not isinstance(required, int) or isinstance(required, bool) or not 0 <= required <= 4:
            raise BadRequest("guardiansRequired must be an integer 0..4")
        minor = age_on(principal_born, today) < ADULT_AGE
        if basis is Basis.MANDATE and minor and required < 1:
            raise BadRequest(
                "a mandate for a minor is given by the guardians: guardiansRequired must be ≥ 1"
            )
        grant = Grant(
            id="",
            principal=principal,
            principal_name=_text(body, "principalName"),
            principal_birthdate=principal_born,
            delegate=delegate,
            delegate_name=_text(body, "delegateName"),
            basis=basis,
            issues=tuple(issues),
            valid_from=valid_from,
            valid_until=valid_until,
            guardians_required=required,
        )
        assert plugin.store is not None
        grant = await plugin.db(plugin.store.add, grant)
        await plugin.audit(
            "proxy_grant_added",
            identity=None,
            principal=principal,
            basis=basis,
            remote=request.remote or "",
            detail={"grant": grant.id, "delegate": delegate, "issues": list(grant.issues)},
        )
        log.info("proxy: grant %s added (%s) from %s", grant.id, basis, request.remote)
        return web.json_response(grant_fields(grant), status=201)

    async def list_grants(request: web.Request) -> web.Response:
        assert plugin.store is not None
        principal = request.query.get("principal")
        delegate = request.query.get("delegate")
        if not principal and not delegate:
            raise BadRequest("give principal, delegate or both")
        p = plugin.subject_of(principal, "principal") if principal else None
        d = plugin.subject_of(delegate, "delegate") if delegate else None
        if p is not None and d is not None:
            grants = await plugin.db(plugin.store.between, p, d)
        elif p is not None:
            grants = await plugin.db(plugin.store.of_principal, p)
        else:
            assert d is not None
            grants = await plugin.db(plugin.store.of_delegate, d)
        return web.json_response({"grants": [grant_fields(g) for g in grants]})

    async def one(request: web.Request) -> Grant:
        assert plugin.store is not None
        grant = await plugin.db(plugin.store.get, request.match_info["grant"])
        if grant is None:
            raise BadRequest("no such grant", 404, "not_found")
        return grant

    async def get_grant(request: web.Request) -> web.Response:
        return web.json_response(grant_fields(await one(request)))

    async def revoke(request: web.Request) -> web.Response:
        assert plugin.store is not None
        grant = await one(request)
        await plugin.audit(
            "proxy_grant_revoked",
            identity=None,
            principal=grant.principal,
            basis=grant.basis,
            remote=request.remote or "",
            detail={"grant": grant.id},
        )
        revoked = await plugin.db(plugin.store.revoke, grant.id)
        assert revoked is not None
        removed = await plugin.recheck(plugin.acting_peers(grant=grant.id), "grant revoked")
        log.info("proxy: grant %s revoked from %s; %d removed", grant.id, request.remote, removed)
        return web.json_response({"grant": grant_fields(revoked), "removed": removed})

    async def confirm(request: web.Request) -> web.Response:
        assert plugin.store is not None
        grant = await one(request)
        guardian, _ = person(await read_object(request), "guardian")
        await plugin.audit(
            "proxy_guardian_confirmed",
            identity=None,
            principal=grant.principal,
            basis=grant.basis,
            remote=request.remote or "",
            detail={"grant": grant.id, "guardian": guardian},
        )
        confirmed = await plugin.db(plugin.store.confirm, grant.id, guardian)
        assert confirmed is not None
        return web.json_response(grant_fields(confirmed))

    async def assess(request: web.Request) -> web.Response:
        body = await read_object(request)
        room = _text(body, "room", 128)
        principal, _ = person(body, "principal")
        decides = body.get("decidesSelf")
        if not isinstance(decides, bool):
            raise BadRequest("decidesSelf must be true or false")
        removed = await plugin.assess(room, principal, decides, ADMIN, request.remote or "")
        return web.json_response(
            {"principal": principal, "decidesSelf": decides, "removed": removed}
        )

    return [
        web.post("/grants", guarded(add_grant)),
        web.get("/grants", guarded(list_grants)),
        web.get("/grants/{grant}", guarded(get_grant)),
        web.delete("/grants/{grant}", guarded(revoke)),
        web.post("/grants/{grant}/confirmations", guarded(confirm)),
        web.post("/assessments", guarded(assess)),
    ]
