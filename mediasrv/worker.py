"""Worker: one event loop's share of the server — one UDP socket, its data plane, the ICE-lite
STUN responder, the DTLS certificate, and the routers placed on it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
import time
from collections import Counter
from typing import Any

from aioice import stun

from mediasrv import _core
from mediasrv.certificate import Certificate
from mediasrv.config import MediaConfig
from mediasrv.events import Emitter
from mediasrv.pipe_transport import PipeTransport
from mediasrv.router import Router
from mediasrv.webrtc_transport import WebRtcTransport

log = logging.getLogger("mediasrv.worker")

NACK_INTERVAL = 0.02
REPORT_INTERVAL = 1.0
SPEAKER_INTERVAL = 0.3
LAYER_INTERVAL = 0.5  # simulcast layer allocation
SOCKET_BUFFER = 4 * 1024 * 1024


class Worker(Emitter):
    """Events: ``close``. close() closes every router."""

    def __init__(self, config: MediaConfig, index: int = 0, port: int = 0) -> None:
        super().__init__()
        self.config = config
        self.index = index
        self._requested_port = port
        self.certificate = Certificate.generate()
        self.routers: dict[str, Router] = {}
        self._ice: dict[str, WebRtcTransport] = {}
        self.socket: _core.UdpBatchSocket | None = None
        self.plane: _core.WorkerPlane | None = None
        self.port = 0
        self.drops: Counter[str] = Counter()
        self.dtls_failures: Counter[str] = Counter()
        self.ice_failures: Counter[str] = Counter()
        self._ssrcs: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.timer_errors = 0
        # counters of producers and consumers that have closed (for the metrics' totals)
        self.closed_totals: Counter[str] = Counter()
        self.closed = False
        self._pipes: dict[tuple[str, int], PipeTransport] = {}
        self._pipe_router: Router | None = None

    @property
    def announced_ip(self) -> str:
        return self.config.announced

    async def start(self) -> None:
        self.socket = _core.UdpBatchSocket(
            self.config.listen_ip,
            self._requested_port,
            recv_buffer=SOCKET_BUFFER,
            send_buffer=SOCKET_BUFFER,
        )
        self.port = self.socket.local_address[1]
        self.plane = _core.WorkerPlane(self.socket, self)
        self.plane.start(asyncio.get_running_loop())
        self._tasks = [asyncio.create_task(self._run_timers())]
        log.info("worker %d: media on udp %s:%d", self.index, self.config.listen_ip, self.port)

    def pipe(self, remote: tuple[str, int]) -> PipeTransport:
        """This worker's pipe to another worker's address, shared by all its rooms (the data
        plane binds one transport per remote address): made and connected on first use."""
        found = self.find_pipe(remote)
        if found is not None:
            return found
        if self._pipe_router is None or self._pipe_router.closed:
            self._pipe_router = self.create_router({"pipes": True})
        transport = self._pipe_router.create_pipe_transport()
        transport.connect(remote)
        self._pipes[remote] = transport
        return transport

    def find_pipe(self, remote: tuple[str, int]) -> PipeTransport | None:
        """This worker's open pipe to another worker's address, if there is one."""
        found = self._pipes.get(remote)
        return found if found is not None and not found.closed else None

    def create_router(self, app_data: dict[str, Any] | None = None) -> Router:
        if self.closed:
            raise RuntimeError("the worker is closed")
        router = Router(self, app_data)
        self.routers[router.id] = router
        router.on("close", lambda: self.routers.pop(router.id, None))
        return router

    def new_ssrc(self, taken: set[int]) -> int:
        while True:
            value = secrets.randbits(32)
            if value and value not in taken and value not in self._ssrcs:
                self._ssrcs.add(value)
                return value

    def release_ssrcs(self, *ssrcs: int) -> None:
        self._ssrcs.difference_update(ssrcs)

    # ---- ICE-lite ----

    def register_ice(self, transport: WebRtcTransport) -> None:
        self._ice[transport.ice_ufrag] = transport

    def unregister_ice(self, transport: WebRtcTransport) -> None:
        if self._ice.get(transport.ice_ufrag) is transport:
            del self._ice[transport.ice_ufrag]

    def count_drop(self, reason: str) -> None:
        self.drops[reason] += 1

    def count_dtls_failure(self, reason: str) -> None:
        self.dtls_failures[reason] += 1

    def count_ice_failure(self, reason: str) -> None:
        self.ice_failures[reason] += 1

    # ---- data plane handler (called from the plane, per event) ----

    def on_stun(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            message = stun.parse_message(data)
        except (ValueError, IndexError, KeyError, struct.error) as exc:
            self.count_drop("stun_malformed")
            log.debug("malformed STUN from %s: %s", addr, exc)
            return
        if message.message_method != stun.Method.BINDING:
            self.count_drop("stun_method")
            return
        if message.message_class == stun.Class.INDICATION:
            return  # keepalive
        if message.message_class != stun.Class.REQUEST:
            self.count_drop("stun_class")
            return
        username = message.attributes.get("USERNAME")
        if not isinstance(username, str) or ":" not in username:
            self._stun_error(message, addr, 400, "Bad Request")
            self.count_drop("stun_no_username")
            return
        transport = self._ice.get(username.split(":", 1)[0])
        if transport is None:
            self.count_drop("stun_unknown_ufrag")
            return
        if "FINGERPRINT" not in message.attributes:
            self.count_drop("stun_no_fingerprint")
            return
        key = transport.ice_pwd.encode()
        if "MESSAGE-INTEGRITY" not in message.attributes or not message.check_message_integrity(
            key
        ):
            self._stun_error(message, addr, 401, "Unauthorized")
            self.count_drop("stun_unauthorized")
            return
        response = stun.Message(
            stun.Method.BINDING, stun.Class.RESPONSE, transaction_id=message.transaction_id
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = addr
        response.add_message_integrity(key)
        self._send_stun(bytes(response), addr)
        transport.handle_binding(addr, "USE-CANDIDATE" in message.attributes)

    def _stun_error(
        self, request: stun.Message, addr: tuple[str, int], code: int, reason: str
    ) -> None:
        response = stun.Message(
            stun.Method.BINDING, stun.Class.ERROR, transaction_id=request.transaction_id
        )
        response.attributes["ERROR-CODE"] = (code, reason)
        response.add_fingerprint()
        self._send_stun(bytes(response), addr)

    def _send_stun(self, data: bytes, addr: tuple[str, int]) -> None:
        # a full send buffer or an unusable source address (port 0) must not escape into the
        # data plane, which would log a traceback per datagram
        if self.socket is None:
            return
        try:
            self.socket.sendto(data, addr)
        except OSError as exc:
            log.debug("STUN response to %s not sent: %s", addr, exc)

    def on_dtls(self, plane_transport: _core.PlaneTransport, data: bytes) -> None:
        owner = plane_transport.owner
        if isinstance(owner, WebRtcTransport):
            owner.handle_dtls(data)
        else:
            self.count_drop("dtls_not_webrtc")

    def on_rtcp(self, plane_transport: _core.PlaneTransport, data: bytes) -> None:
        owner = plane_transport.owner
        if owner is not None:
            owner.handle_rtcp(data)

    def on_unknown_ssrc(
        self, plane_transport: _core.PlaneTransport, ssrc: int, payload_type: int, packet: bytes
    ) -> None:
        owner = plane_transport.owner
        handler = getattr(owner, "handle_unknown_ssrc", None)
        if handler is not None:
            handler(ssrc, payload_type, packet)

    # ---- timers ----

    async def _run_timers(self) -> None:
        next_report = next_speaker = next_layers = time.monotonic()
        while not self.closed:
            await asyncio.sleep(NACK_INTERVAL)
            now = time.monotonic()
            report = now >= next_report
            speaker = now >= next_speaker
            layers = now >= next_layers
            if report:
                next_report = now + REPORT_INTERVAL
            if speaker:
                next_speaker = now + SPEAKER_INTERVAL
            if layers:
                next_layers = now + LAYER_INTERVAL
            for router in list(self.routers.values()):
                for transport in list(router.transports.values()):
                    # one transport's failure must not skip the others' timers
                    try:
                        transport.tick_nack()
                        if report:
                            transport.tick_reports()
                            if isinstance(transport, WebRtcTransport):
                                transport.tick_liveness(now)
                        if layers:
                            transport.allocate_layers(now)
                    except Exception:
                        self.timer_errors += 1
                        log.exception("worker %d: timer of transport %s failed", self.index,
                                      transport.id)  # fmt: skip
                if speaker:
                    try:
                        router.tick_active_speaker()
                    except Exception:
                        self.timer_errors += 1
                        log.exception("worker %d: active speaker of router %s failed",
                                      self.index, router.id)  # fmt: skip

    def stats(self) -> dict[str, Any]:
        plane = self.plane
        return {
            "index": self.index,
            "port": self.port,
            "routers": len(self.routers),
            "transports": plane.transports if plane is not None else 0,
            "datagramsReceived": plane.received if plane is not None else 0,
            "packetsSent": plane.forwarded if plane is not None else 0,
            "dropped": {**(plane.dropped if plane is not None else {}), **self.drops},
            "dtlsFailures": dict(self.dtls_failures),
            "iceFailures": dict(self.ice_failures),
        }

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for router in list(self.routers.values()):
            router.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.plane is not None:
            self.plane.stop()
        if self.socket is not None:
            self.socket.close()
        self.emit("close")
