"""Routes for the person acting: whom may I act for, and the mandate service's selection.

``POST /plugins/proxy/principals`` ``{"token", "mandateSession"?}``
    The people the holder of the ID token may act for: their grants in the local store (each
    with ``"allowedNow"`` by the rules that do not depend on the visit) and, with a
    ``mandateSession``, the principals chosen in the mandate service. Each has ``principal``: the
    reference to put in ``onBehalfOf.principal``.
``POST /plugins/proxy/hpa/start`` ``{"token", "returnTo", "lang"?}`` → ``{"authorizeUrl"}``
``GET /plugins/proxy/hpa/callback?code=&state=`` → 302 to ``returnTo#mandateSession=<handle>``
    (or ``#mandateError=<code>``); see :mod:`mediasrv_proxy.hpa_flow`.

The token is verified by the strongauth plugin without using up its nonce (audited as
``verified``), so the same token can join afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar
from urllib.parse import quote, urlsplit

from aiohttp import web

from mediasrv.http.json_body import BadRequest, error, read_object
from mediasrv.plugin import Denied, Identity
from mediasrv_proxy.decision import Decision
from mediasrv_proxy.grant import Grant
from mediasrv_proxy.hpa_flow import HpaFlow
from mediasrv_proxy.store import GrantStore, grant_fields

log = logging.getLogger("mediasrv.plugins.proxy")

P = ParamSpec("P")
T = TypeVar("T")

LANGS = ("fi", "sv", "en")


class PersonVerifier(Protocol):
    """Identification by an ID token outside a join (a StrongAuthPlugin is one)."""

    async def verify_person(self, token: object, remote: str, purpose: str) -> Identity: ...


class PrincipalRoutesHost(Protocol):
    """What these routes use of their plugin (a ProxyPlugin is one): ``public_url`` in its
    configuration, the strongauth plugin, the grant store and the thread its work runs on,
    the rules, and the mandate service flow (None when none is configured)."""

    @property
    def config(self) -> Mapping[str, Any]: ...

    @property
    def strongauth(self) -> PersonVerifier | None: ...

    @property
    def store(self) -> GrantStore | None: ...

    @property
    def hpa(self) -> HpaFlow | None: ...

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...

    def rules(
        self, grant: Grant | None, identity: Identity, issue: str, assessment: bool | None
    ) -> Decision: ...


def _status(denied: Denied) -> int:
    if denied.code in ("mandate_service_unavailable", "audit_unavailable", "busy"):
        return 503
    if denied.code.startswith("mandate_service"):
        return 502
    return 403


def principal_routes(plugin: PrincipalRoutesHost) -> list[web.RouteDef]:
    async def person(request: web.Request, body: dict[str, Any], purpose: str) -> Identity:
        if plugin.strongauth is None:
            raise Denied("not_ready", "the server has not started")
        remote = request.remote or ""
        return await plugin.strongauth.verify_person(body.get("token"), remote, purpose)

    def safe_return(value: object) -> str:
        if not isinstance(value, str) or not value or len(value) > 2048 or "#" in value:
            raise BadRequest("returnTo must be a URL of this service without a fragment")
        parts = urlsplit(value)
        own = urlsplit(plugin.config["public_url"])
        relative = not parts.scheme and not parts.netloc and value.startswith("/")
        same_origin = (parts.scheme, parts.netloc) == (own.scheme, own.netloc)
        if not (relative or (own.netloc and same_origin)) or value.startswith("//"):
            raise BadRequest("returnTo must be a path or a URL of this service (public_url)")
        return value

    async def principals(request: web.Request) -> web.Response:
        try:
            body = await read_object(request)
            identity = await person(request, body, "proxy: principals")
        except BadRequest as bad:
            return error(bad.status, bad.code, bad.message)
        except Denied as denied:
            return error(401, denied.code, denied.message)
        assert plugin.store is not None
        grants = await plugin.db(plugin.store.of_delegate, identity.subject)
        found: list[dict[str, Any]] = []
        for grant in grants:
            if grant.revoked:
                continue
            preview = plugin.rules(grant, identity, "", False)
            shown = grant_fields(grant)
            shown.pop("delegate")
            found.append(
                {
                    **shown,
                    "allowedNow": preview.allowed,
                    "reasons": list(preview.reasons),
                }
            )
        handle = body.get("mandateSession")
        if isinstance(handle, str) and plugin.hpa is not None:
            selection = plugin.hpa.selection(handle, identity.subject)
            for subject, chosen in selection.principals.items() if selection else ():
                found.append({"principal": subject, "principalName": chosen.name, "source": "hpa"})
        log.info("proxy: principals of subject %s: %d", identity.subject, len(found))
        return web.json_response({"principals": found})

    async def hpa_start(request: web.Request) -> web.Response:
        if plugin.hpa is None:
            return error(404, "not_configured", "no mandate service is configured (hpa_url)")
        try:
            body = await read_object(request)
            return_to = safe_return(body.get("returnTo"))
            lang = body.get("lang", "fi")
            if lang not in LANGS:
                raise BadRequest(f"lang must be one of {', '.join(LANGS)}")
            identity = await person(request, body, "proxy: mandate selection")
            url = await plugin.hpa.begin(identity, return_to, str(lang))
        except BadRequest as bad:
            return error(bad.status, bad.code, bad.message)
        except Denied as denied:
            status = 401 if denied.code.startswith(("token_", "loa_", "identity")) else None
            return error(status or _status(denied), denied.code, denied.message)
        return web.json_response({"authorizeUrl": url})

    async def hpa_callback(request: web.Request) -> web.StreamResponse:
        if plugin.hpa is None:
            return error(404, "not_configured", "no mandate service is configured (hpa_url)")
        state = request.query.get("state", "")
        pending = plugin.hpa.pending.get(state)
        if pending is None:
            return error(400, "mandate_session_unknown", "the selection has expired; start again")
        if "error" in request.query or not request.query.get("code"):
            plugin.hpa.pending.pop(state, None)
            problem = quote(request.query.get("error", "no_code")[:64], safe="")
            raise web.HTTPFound(f"{pending.return_to}#mandateError={problem}")
        try:
            return_to, handle = await plugin.hpa.complete(state, request.query["code"])
        except Denied as denied:
            raise web.HTTPFound(
                f"{pending.return_to}#mandateError={quote(denied.code, safe='')}"
            ) from None
        raise web.HTTPFound(f"{return_to}#mandateSession={handle}")

    return [
        web.post("/principals", principals),
        web.post("/hpa/start", hpa_start),
        web.get("/hpa/callback", hpa_callback),
    ]
