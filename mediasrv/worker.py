"""Worker: one event loop's share of the server — one UDP socket and one ICE-TCP listener, their
data plane, the ICE-lite STUN responder, the DTLS certificate, and the routers placed on it."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import secrets
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
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
# ICE-TCP connections: the kernel's send buffer of each (the plane's own buffer comes on top),
# how long a frame may stay unfinished, a connection may wait for its first valid ICE check,
# and its send buffer may stay full, before it is closed
TCP_KERNEL_SEND_BUFFER = 128 * 1024
TCP_FRAME_TIMEOUT_MS = 5_000
TCP_ICE_TIMEOUT_MS = 10_000
TCP_STALLED_TIMEOUT_MS = 10_000
TCP_ACCEPTS_PER_WAKEUP = 64


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
        self.tcp_listener: socket.socket | None = None
        self.tcp_port = 0  # 0: no ICE-TCP candidate
        self.tcp_connections: set[_core.TcpConnection] = set()
        self.tcp_closed: Counter[str] = Counter()  # ICE-TCP connections closed, by reason
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
        loop = asyncio.get_running_loop()
        self.plane.start(loop)
        if self.config.ice_tcp:
            self._listen_tcp(loop)
        self._tasks = [asyncio.create_task(self._run_timers())]
        log.info(
            "worker %d: media on udp %s:%d%s",
            self.index,
            self.config.listen_ip,
            self.port,
            f" and tcp {self.tcp_port} (ICE-TCP)" if self.tcp_port else "",
        )

    # ---- ICE-TCP (RFC 6544): the passive candidate's listener ----

    def _tcp_port_wanted(self) -> tuple[int, bool]:
        """The port to listen on, and whether another one will do if it is taken."""
        config = self.config
        if config.rtc_tcp_port:
            return config.rtc_tcp_port + self.index, False
        return self.port, not config.rtc_port

    def _listen_tcp(self, loop: asyncio.AbstractEventLoop) -> None:
        family = socket.AF_INET6 if ":" in self.config.listen_ip else socket.AF_INET
        port, fallback = self._tcp_port_wanted()
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind((self.config.listen_ip, port))
            except OSError as exc:
                if not fallback or exc.errno != errno.EADDRINUSE:
                    raise OSError(
                        exc.errno, f"ICE-TCP port {self.config.listen_ip}:{port}: {exc.strerror}"
                    ) from None
                listener.bind((self.config.listen_ip, 0))
            listener.listen(256)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self.tcp_listener = listener
        self.tcp_port = listener.getsockname()[1]
        loop.add_reader(listener.fileno(), self._accept_tcp, loop)

    def _accept_tcp(self, loop: asyncio.AbstractEventLoop) -> None:
        listener = self.tcp_listener
        if listener is None or self.plane is None:
            return
        for _ in range(TCP_ACCEPTS_PER_WAKEUP):
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: try again at the next wakeup
                self.count_drop("tcp_accept_error")
                log.warning("worker %d: ICE-TCP accept failed: %s", self.index, exc)
                return
            if len(self.tcp_connections) >= self.config.max_tcp_connections:
                sock.close()
                self.count_drop("tcp_connection_limit")
                continue
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, TCP_KERNEL_SEND_BUFFER)
                connection = _core.TcpConnection(
                    self.plane, sock, send_buffer=self.config.tcp_send_buffer
                )
            except OSError as exc:  # reset before we got to it
                sock.close()
                self.count_drop("tcp_accept_error")
                log.debug("ICE-TCP connection from %s lost at accept: %s", addr, exc)
                continue
            self.tcp_connections.add(connection)
            connection.start(loop)

    def on_tcp_closed(self, connection: _core.TcpConnection, reason: str) -> None:
        self.tcp_connections.discard(connection)
        self.tcp_closed[reason] += 1
        log.debug("ICE-TCP connection from %s closed: %s", connection.remote_address, reason)

    def on_tcp_recovered(self, plane_transport: _core.PlaneTransport, dropped: int) -> None:
        owner = plane_transport.owner
        log.debug("ICE-TCP transport drained after %d dropped packets", dropped)
        if isinstance(owner, WebRtcTransport):
            owner.recover_from_congestion()

    def _expire_tcp(self) -> None:
        now_ms = int(time.monotonic() * 1000)
        for connection in list(self.tcp_connections):
            connection.expire(
                now_ms,
                frame_timeout_ms=TCP_FRAME_TIMEOUT_MS,
                ice_timeout_ms=TCP_ICE_TIMEOUT_MS,
                stalled_timeout_ms=TCP_STALLED_TIMEOUT_MS,
            )

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
        """A STUN message on the UDP socket."""
        found = self._check_binding(data, addr, lambda reply: self._send_stun(reply, addr))
        if found is not None:
            transport, use_candidate = found
            transport.handle_binding(addr, use_candidate)

    def on_stun_tcp(self, data: bytes, connection: _core.TcpConnection) -> None:
        """A STUN message framed on an ICE-TCP connection."""
        addr = connection.remote_address
        found = self._check_binding(data, addr, connection.send_frame)
        if found is None:
            return
        transport, use_candidate = found
        bound = connection.transport
        if bound is not None and bound is not transport.plane:
            # one connection carries one transport's ICE (RFC 6544 keeps them apart)
            self.count_drop("stun_tcp_other_transport")
            return
        transport.handle_binding(addr, use_candidate, connection)

    def _check_binding(
        self, data: bytes, addr: tuple[str, int], reply: Callable[[bytes], object]
    ) -> tuple[WebRtcTransport, bool] | None:
        """Answer a binding request (a response, or an error for a bad one) and return its
        transport and whether it nominates, or None when it was refused or needs nothing."""
        try:
            message = stun.parse_message(data)
        except (ValueError, IndexError, KeyError, struct.error) as exc:
            self.count_drop("stun_malformed")
            log.debug("malformed STUN from %s: %s", addr, exc)
            return None
        if message.message_method != stun.Method.BINDING:
            self.count_drop("stun_method")
            return None
        if message.message_class == stun.Class.INDICATION:
            return None  # keepalive
        if message.message_class != stun.Class.REQUEST:
            self.count_drop("stun_class")
            return None
        username = message.attributes.get("USERNAME")
        if not isinstance(username, str) or ":" not in username:
            reply(self._stun_error(message, 400, "Bad Request"))
            self.count_drop("stun_no_username")
            return None
        transport = self._ice.get(username.split(":", 1)[0])
        if transport is None:
            self.count_drop("stun_unknown_ufrag")
            return None
        if "FINGERPRINT" not in message.attributes:
            self.count_drop("stun_no_fingerprint")
            return None
        key = transport.ice_pwd.encode()
        if "MESSAGE-INTEGRITY" not in message.attributes or not message.check_message_integrity(
            key
        ):
            reply(self._stun_error(message, 401, "Unauthorized"))
            self.count_drop("stun_unauthorized")
            return None
        response = stun.Message(
            stun.Method.BINDING, stun.Class.RESPONSE, transaction_id=message.transaction_id
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = addr
        response.add_message_integrity(key)
        reply(bytes(response))
        return transport, "USE-CANDIDATE" in message.attributes

    @staticmethod
    def _stun_error(request: stun.Message, code: int, reason: str) -> bytes:
        response = stun.Message(
            stun.Method.BINDING, stun.Class.ERROR, transaction_id=request.transaction_id
        )
        response.attributes["ERROR-CODE"] = (code, reason)
        response.add_fingerprint()
        return bytes(response)

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
                self._expire_tcp()
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
            "tcpPort": self.tcp_port,
            "tcpConnections": len(self.tcp_connections),
            "tcpClosed": dict(self.tcp_closed),
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
        if self.tcp_listener is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self.tcp_listener.fileno())
            self.tcp_listener.close()
            self.tcp_listener = None
        for connection in list(self.tcp_connections):
            connection.close("server")
        if self.plane is not None:
            self.plane.stop()
        if self.socket is not None:
            self.socket.close()
        self.emit("close")
