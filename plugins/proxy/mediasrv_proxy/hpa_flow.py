"""Grants from the mandate service (Suomi.fi e-Authorizations shape, person for person).

The person chooses whom they act for in the mandate service's own pages, so the flow goes
through the browser before the join:

1. ``POST /plugins/proxy/hpa/start`` with the person's ID token: the token is verified (its
   nonce stays unused, so the same token joins afterwards), the delegate is registered with the
   service (``register``) and the answer names the service's authorize URL to open.
2. The service sends the browser back to ``/plugins/proxy/hpa/callback?code=...&state=...``;
   the code is exchanged for an access token and the list of principals chosen is fetched
   (``delegate``). The browser goes on to the ``returnTo`` address given at the start, with
   ``#mandateSession=<handle>`` (in the fragment, so that it is not sent on to any server).
3. The join carries ``onBehalfOf.mandateSession``: the plugin asks the service for the decision
   on that principal and the visit's issue (``authorization``) at every join, then applies the
   national rules that only the service cannot know (the visit's assessment of a minor aged 12
   to 17; the delegate's age from the identification).

Selections live in memory for an hour (a restart asks the person to choose again), bound to
the delegate's pseudonymous subject: a handle is useless to anyone else.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mediasrv_strongauth.identity_code import birthdate_of

from mediasrv.plugin import Denied, Identity
from mediasrv_proxy.basis import Basis
from mediasrv_proxy.grant import Grant
from mediasrv_proxy.grant_source import Found
from mediasrv_proxy.hpa_client import (
    HpaPrincipal,
    HpaSession,
    MandateServiceClient,
    MandateServiceError,
)

PENDING_SECONDS = 900.0
SELECTION_SECONDS = 3600.0
MAX_PENDING = 10_000
MAX_SELECTIONS = 10_000
SAFE_REASON = 64  # characters of a reason code from the service kept


class SubjectOf(Protocol):
    """The pseudonymous subjects of people (a StrongAuthPlugin is one)."""

    def subject_of(self, identity_code: str) -> str: ...


class HpaFlowHost(Protocol):
    """What the mandate service flow uses of its plugin (a ProxyPlugin is one): the ``hpa_*``
    and ``public_url`` settings, and the strongauth plugin (None until set up) for the
    subjects of the principals chosen."""

    @property
    def config(self) -> Mapping[str, Any]: ...

    @property
    def strongauth(self) -> SubjectOf | None: ...


@dataclass
class Pending:
    delegate: str
    session: HpaSession
    return_to: str
    expires: float


@dataclass
class Selection:
    delegate: str
    session: HpaSession
    access_token: str
    principals: dict[str, HpaPrincipal]  # by pseudonymous subject
    expires: float


class HpaFlow:
    """The mandate service as a grant source, with the browser flow that selects principals."""

    name = "hpa"

    def __init__(self, plugin: HpaFlowHost) -> None:
        cfg = plugin.config
        self.plugin = plugin
        self.client = MandateServiceClient(
            cfg["hpa_url"],
            cfg["hpa_client_id"],
            cfg["hpa_api_key"],
            cfg["hpa_oauth_secret"],
            timeout=float(cfg["hpa_timeout"]),
        )
        self.redirect_uri = cfg["public_url"].rstrip("/") + "/plugins/proxy/hpa/callback"
        self.pending: dict[str, Pending] = {}
        self.selections: dict[str, Selection] = {}

    async def close(self) -> None:
        await self.client.close()

    def _sweep(self) -> None:
        now = time.monotonic()
        for table in (self.pending, self.selections):
            for key in [k for k, v in table.items() if v.expires <= now]:
                del table[key]

    async def begin(self, identity: Identity, return_to: str, lang: str) -> str:
        """Register the delegate with the service; the authorize URL the browser opens."""
        self._sweep()
        if len(self.pending) >= MAX_PENDING:
            raise Denied("busy", "too many mandate selections in progress; try again later")
        code = identity.private.get("identity_code")
        if not isinstance(code, str):
            raise Denied("identification_required", "the identification carries no person id")
        try:
            session = await self.client.register(code)
        except MandateServiceError as exc:
            raise Denied(exc.code, exc.message) from None
        except ValueError:  # a foreign person id: the service knows Finnish codes only
            raise Denied(
                "mandate_service_error", "the mandate service serves Finnish identity codes only"
            ) from None
        state = secrets.token_urlsafe(24)
        self.pending[state] = Pending(
            identity.subject, session, return_to, time.monotonic() + PENDING_SECONDS
        )
        return self.client.authorize_url(session.user_id, self.redirect_uri, lang, state=state)

    async def complete(self, state: str, code: str) -> tuple[str, str]:
        """The service's redirect back: the return address and the new selection's handle."""
        self._sweep()
        pending = self.pending.pop(state, None)
        if pending is None:
            raise Denied("mandate_session_unknown", "the selection has expired; start again")
        if len(self.selections) >= MAX_SELECTIONS:
            raise Denied("busy", "too many mandate selections; try again later")
        try:
            token = await self.client.token(code, self.redirect_uri)
            chosen = await self.client.delegates(pending.session, token)
        except MandateServiceError as exc:
            raise Denied(exc.code, exc.message) from None
        assert self.plugin.strongauth is not None
        principals = {self.plugin.strongauth.subject_of(p.person_id): p for p in chosen}
        handle = secrets.token_urlsafe(24)
        self.selections[handle] = Selection(
            pending.delegate,
            pending.session,
            token,
            principals,
            time.monotonic() + SELECTION_SECONDS,
        )
        return pending.return_to, handle

    def selection(self, handle: str, delegate: str) -> Selection | None:
        self._sweep()
        found = self.selections.get(handle)
        return found if found is not None and found.delegate == delegate else None

    async def find(
        self, delegate: Identity, principal: str, issue: str, on_behalf: Mapping[str, Any]
    ) -> Found:
        """The grant the service allows for the join's selection (``mandateSession``), or
        why there is none; the visit's own rules are applied to it afterwards."""
        handle = on_behalf.get("mandateSession")
        if not isinstance(handle, str):
            return Found()  # the join does not use the mandate service
        selection = self.selection(handle, delegate.subject)
        if selection is None:
            return Found(reasons=["mandate_session_unknown"])
        chosen = selection.principals.get(principal)
        if chosen is None:
            return Found(reasons=["principal_not_selected"])
        if not issue:
            return Found(reasons=["issue_missing"])
        detail: dict[str, Any] = {}
        try:
            answer = await self.client.authorization(
                selection.session, selection.access_token, chosen.person_id, [issue]
            )
        except ValueError:  # the service listed a principal it cannot decide on
            return Found(reasons=["principal_not_selected"])
        except MandateServiceError as exc:
            detail.update(error=exc.code, message=exc.message)
            return Found(reasons=[f"mandate_service_unavailable:{exc.message}"], detail=detail)
        detail["result"] = "ALLOWED" if answer.allowed else "DISALLOWED"
        detail["reasons"] = [r[:SAFE_REASON] for r in answer.reasons]
        if not answer.allowed:
            theirs = [f"mandate_service_disallowed:{r[:SAFE_REASON]}" for r in answer.reasons]
            return Found(reasons=theirs or ["mandate_service_disallowed"], detail=detail)
        grant = Grant(
            id=f"hpa:{selection.session.session_id[:16]}",
            principal=principal,
            principal_name=chosen.name,
            principal_birthdate=birthdate_of(chosen.person_id),
            delegate=delegate.subject,
            delegate_name=delegate.display_name,
            basis=Basis.MANDATE,
            issues=(issue,),
            source=self.name,
        )
        return Found(grants=[grant], detail=detail)
