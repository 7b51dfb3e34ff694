"""AdminForward: the supervisor's ``/admin/...`` and ``/plugins/...`` routes, forwarded to the
worker processes. A request about a room goes to the worker of that room, and about a room
spread over several workers, to each of them with the answers merged (see
:meth:`AdminForward.spread`); ``GET /admin/rooms`` lists every worker's rooms; anything else
goes to a running worker. The workers see the caller's address (``X-Forwarded-For`` with the
supervisor's proof)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from mediasrv.cluster.worker_handle import WorkerHandle
from mediasrv.config import ServerConfig
from mediasrv.http.forwarded import PROXY_HEADER, client_address

PROXY_TIMEOUT = aiohttp.ClientTimeout(total=30)
HOP_HEADERS = {
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "te",
    "trailer",
    "proxy-authorization",
}


class ForwardHost(Protocol):
    """What the forwarding needs of the supervisor (a Supervisor): its workers and where
    the rooms are."""

    @property
    def config(self) -> ServerConfig: ...

    @property
    def token(self) -> str: ...

    @property
    def http(self) -> aiohttp.ClientSession: ...

    @property
    def workers(self) -> Sequence[WorkerHandle]: ...

    @property
    def rooms(self) -> Mapping[str, WorkerHandle]: ...

    @property
    def spans(self) -> Mapping[str, list[WorkerHandle]]: ...

    def place(self, room: str | None) -> WorkerHandle | None: ...

    def connections(self, room: str, worker: WorkerHandle) -> int: ...


class AdminForward:
    def __init__(self, supervisor: ForwardHost) -> None:
        self.supervisor = supervisor

    def _target(self, request: web.Request) -> WorkerHandle | None:
        parts = request.path.split("/")
        if len(parts) > 3 and parts[1] == "admin" and parts[2] == "rooms":
            found = self.supervisor.rooms.get(parts[3])
            return found if found is not None and found.ready else None
        return self.supervisor.place(None)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path == "/admin/rooms":
            return await self._all_rooms(request)
        parts = request.path.split("/")
        if len(parts) > 3 and parts[1] == "admin" and parts[2] == "rooms":
            spans = [w for w in self.supervisor.spans.get(parts[3], []) if w.ready]
            if len(spans) > 1:
                return await self.spread(request, parts[3], spans)
        worker = self._target(request)
        if worker is None:
            if request.path.startswith("/admin/rooms/"):
                return web.json_response(
                    {"error": "unknown_room", "message": "no such room"}, status=404
                )
            return web.json_response(
                {"error": "unavailable", "message": "no worker runs"}, status=503
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers["X-Forwarded-For"] = client_address(request, self.supervisor.config)
        headers[PROXY_HEADER] = self.supervisor.token
        body = await request.read()
        url = f"http://127.0.0.1:{worker.http_port}{request.path_qs}"
        try:
            async with self.supervisor.http.request(
                request.method,
                url,
                headers=headers,
                data=body,
                timeout=PROXY_TIMEOUT,
                allow_redirects=False,
            ) as answer:
                payload = await answer.read()
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
                return web.Response(status=answer.status, body=payload, headers=kept)
        except (aiohttp.ClientError, TimeoutError):
            return web.json_response(
                {"error": "unavailable", "message": "the worker did not answer"}, status=502
            )

    async def spread(
        self, request: web.Request, room: str, workers: list[WorkerHandle]
    ) -> web.Response:
        """An admin request about a room spread over several workers goes to each of them:
        a room's detail merges their peers; kicking a peer succeeds where the peer is, and so
        does reading or stopping the recording. Starting a recording goes to the share with
        the most connections only: every share holds every producer of the room (its own and
        those piped in), so one recording has them all. Other actions (closing, layers) act
        on every share, and the first refusal is the answer."""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        body = await request.read()
        about_recording = request.path == f"/admin/rooms/{room}/recording"
        if about_recording and request.method == "POST":
            workers = [max(workers, key=lambda w: (self.supervisor.connections(room, w), -w.index))]
        answers: list[tuple[WorkerHandle, int, Any]] = []
        for worker in workers:
            url = f"http://127.0.0.1:{worker.http_port}{request.path_qs}"
            try:
                async with self.supervisor.http.request(
                    request.method, url, headers=headers, data=body, timeout=PROXY_TIMEOUT
                ) as answer:
                    found = await answer.json(content_type=None)
                    if not isinstance(found, dict):
                        found = {"value": found}
                    answers.append((worker, answer.status, found))
            except (aiohttp.ClientError, TimeoutError, ValueError):
                answers.append(
                    (
                        worker,
                        502,
                        {
                            "error": "unavailable",
                            "message": f"worker {worker.index} did not answer",
                        },
                    )
                )
        ok = [(w, status, found) for w, status, found in answers if 200 <= status < 300]
        on_one_share = "/peers/" in request.path or about_recording
        if on_one_share and ok:
            return web.json_response(ok[0][2], status=ok[0][1])
        refused = [(status, found) for _, status, found in answers if not 200 <= status < 300]
        if refused and not on_one_share:
            return web.json_response(refused[0][1], status=refused[0][0])
        if on_one_share:
            return web.json_response(refused[-1][1], status=refused[-1][0])
        if request.method == "GET" and request.path == f"/admin/rooms/{room}":
            peers = [
                {**peer, "worker": w.index} for w, _, found in ok for peer in found.get("peers", [])
            ]
            recording = next((f.get("recording") for _, _, f in ok if f.get("recording")), None)
            return web.json_response(
                {
                    "id": room,
                    "workers": [w.index for w, _, _ in ok],
                    "peers": peers,
                    "recording": recording,
                }
            )
        return web.json_response(
            {"workers": [{"worker": w.index, **found} for w, _, found in ok]}, status=ok[0][1]
        )

    async def _all_rooms(self, request: web.Request) -> web.Response:
        auth = {"Authorization": request.headers.get("Authorization", "")}
        rooms: list[Any] = []
        for worker in [w for w in self.supervisor.workers if w.ready]:
            try:
                found = await self._rooms_of(worker, auth)
            except (aiohttp.ClientError, TimeoutError, ValueError):
                return web.json_response(
                    {"error": "unavailable", "message": f"worker {worker.index} did not answer"},
                    status=502,
                )
            if isinstance(found, web.Response):
                return found
            rooms += [{**room, "worker": worker.index} for room in found.get("rooms", [])]
        return web.json_response({"rooms": rooms})

    async def _rooms_of(
        self, worker: WorkerHandle, auth: dict[str, str]
    ) -> dict[str, Any] | web.Response:
        url = f"http://127.0.0.1:{worker.http_port}/admin/rooms"
        async with self.supervisor.http.get(url, headers=auth, timeout=PROXY_TIMEOUT) as answer:
            if answer.status != 200:
                return web.Response(
                    status=answer.status, body=await answer.read(), content_type=answer.content_type
                )
            found: dict[str, Any] = await answer.json()
        return found
