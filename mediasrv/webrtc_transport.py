"""WebRtcTransport: ICE-lite, DTLS-SRTP and SCTP on the worker's shared UDP port."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Protocol

from aiortc.rtcdatachannel import RTCDataChannel, RTCDataChannelParameters
from aiortc.rtcsctptransport import RTCSctpCapabilities, RTCSctpTransport

from mediasrv import _core
from mediasrv.certificate import Certificate
from mediasrv.dtls_session import DtlsError, DtlsRole, DtlsSession
from mediasrv.sctp_adapter import SctpDtlsAdapter
from mediasrv.sdp.negotiation import (
    MAX_MESSAGE_SIZE,
    SCTP_PORT,
    LocalParameters,
    NegotiationError,
    RemoteParameters,
    new_ice_credentials,
)
from mediasrv.tasks import spawn
from mediasrv.transport import Transport, TransportRouter, TransportWorker

log = logging.getLogger("mediasrv.webrtc")


class WebRtcWorker(TransportWorker, Protocol):
    """What a WebRtcTransport needs of its worker (a Worker) besides what every transport
    does: the DTLS certificate, the address it announces, the ICE-lite responder's table of
    usernames, and the failure counters."""

    @property
    def certificate(self) -> Certificate: ...

    @property
    def announced_ip(self) -> str: ...

    @property
    def tcp_port(self) -> int:
        """The passive ICE-TCP candidate's port (0: none)."""
        ...

    def register_ice(self, transport: WebRtcTransport) -> None: ...

    def unregister_ice(self, transport: WebRtcTransport) -> None: ...

    def count_dtls_failure(self, reason: str) -> None: ...

    def count_ice_failure(self, reason: str) -> None: ...


class WebRtcRouter(TransportRouter, Protocol):
    """The router of a WebRtcTransport: one whose worker is a WebRtcWorker."""

    @property
    def worker(self) -> WebRtcWorker: ...


class WebRtcTransport(Transport):
    """One ICE/DTLS association with a browser or aiortc peer.

    States: ``ice_state`` new → connected → (disconnected) → closed; ``dtls_state`` new →
    connecting → connected | failed → closed. Events: ``connected``, ``datachannel``,
    ``close`` (with the reason in ``close_reason``).
    """

    kind = "webrtc"
    worker: WebRtcWorker

    def __init__(
        self,
        router: WebRtcRouter,
        *,
        max_incoming_bitrate: int,
        ice_timeout: float,
        consent_timeout: float,
        enable_sctp: bool = True,
        app_data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            router, srtp=True, max_incoming_bitrate=max_incoming_bitrate, app_data=app_data
        )
        self.ice_ufrag, self.ice_pwd = new_ice_credentials()
        self.ice_state = "new"
        self.ice_timeout = ice_timeout
        self.consent_timeout = consent_timeout
        self.enable_sctp = enable_sctp
        self.remote: RemoteParameters | None = None
        self.dtls: DtlsSession | None = None
        self.dtls_role: DtlsRole | None = None
        self.sctp: RTCSctpTransport | None = None
        self._sctp_adapter: SctpDtlsAdapter | None = None
        self.want_sctp = False
        self.close_reason: str | None = None
        self._negotiated: float | None = None  # when the remote description came
        self._last_consent: float | None = None
        self.bindings = 0
        # ICE restart (RFC 8445 9): new local credentials given out, the peer's new ones not yet
        # seen; media stays on the current path until a check on the new credentials nominates
        self._restart_pending = False
        self.ice_restarts = 0
        self.worker.register_ice(self)

    @property
    def dtls_state(self) -> str:
        return self.dtls.state if self.dtls is not None else "new"

    @property
    def state(self) -> str:
        """One word for metrics: new (no ICE yet), connecting (ICE up, DTLS under way),
        connected (SRTP keys in place), failed (DTLS failed) or closed."""
        if self.closed or self.ice_state == "closed":
            return "closed"
        if self.dtls_state == "failed":
            return "failed"
        if self.connected:
            return "connected"
        return "connecting" if self.ice_state == "connected" else "new"

    @property
    def local_parameters(self) -> LocalParameters:
        return LocalParameters(
            self.ice_ufrag,
            self.ice_pwd,
            self.worker.certificate.fingerprint,
            self.worker.announced_ip,
            self.worker.port,
            self.worker.tcp_port,
        )

    def offered(self) -> None:
        """The server has offered on this transport (a receive transport): ICE must follow
        within ice_timeout from the first offer, answered or not."""
        if self._negotiated is None:
            self._negotiated = time.monotonic()

    def set_remote(self, remote: RemoteParameters, *, local_setup: str) -> None:
        """The peer's ICE and DTLS parameters; local_setup is what our description said."""
        if self.closed:
            raise NegotiationError("not_joined", "the transport is closed")
        if self.remote is not None:
            if remote.fingerprints != self.remote.fingerprints:
                raise NegotiationError(
                    "invalid_sdp", "the DTLS fingerprint changed on renegotiation (not supported)"
                )
            if (remote.ice_ufrag, remote.ice_pwd) != (self.remote.ice_ufrag, self.remote.ice_pwd):
                if not self._restart_pending:
                    raise NegotiationError(
                        "invalid_sdp",
                        "ICE credentials changed without an ICE restart (send restartIce, or "
                        "offer with new credentials)",
                    )
                self.remote = remote
                self._restart_pending = False
                self.ice_restarts += 1
                log.debug("transport %s: ICE restarted (%d)", self.id, self.ice_restarts)
            # the same credentials with a restart pending: the answer to an offer made before
            # the restart (the one with our new credentials is still to be answered)
            return
        self.remote = remote
        self.offered()  # a remote offer or answer: the negotiation has begun either way
        if local_setup == "actpass":
            role = DtlsRole.SERVER if remote.setup == "active" else DtlsRole.CLIENT
        else:
            role = DtlsRole.CLIENT if local_setup == "active" else DtlsRole.SERVER
        self.dtls_role = role
        self.dtls = DtlsSession(
            self.worker.certificate,
            role,
            remote.fingerprints,
            self._send_raw,
            self._dtls_connected,
            self._dtls_data,
            self._dtls_failed,
            self._dtls_closed,
        )
        if self.ice_state == "connected":
            self.dtls.start()

    def restart_ice(self) -> None:
        """Start an ICE restart: new local credentials (in the next description the server
        writes); the peer's next description must carry new ones too. DTLS and SRTP go on, and
        so does media on the current path until the peer nominates a new one."""
        if self.closed:
            raise NegotiationError("not_joined", "the transport is closed")
        if self._restart_pending:
            return  # the new credentials are out already: the same restart
        self.worker.unregister_ice(self)
        self.ice_ufrag, self.ice_pwd = new_ice_credentials()
        self.worker.register_ice(self)
        self._restart_pending = self.remote is not None

    @property
    def restart_pending(self) -> bool:
        return self._restart_pending

    # ---- ICE (called by the worker's STUN responder) ----

    def handle_binding(
        self,
        addr: tuple[str, int],
        use_candidate: bool,
        connection: _core.TcpConnection | None = None,
    ) -> None:
        """A valid binding request from addr, over UDP or on an ICE-TCP connection: the first
        one binds the transport there, a nominating one (USE-CANDIDATE) moves it there."""
        self.bindings += 1
        self._last_consent = time.monotonic()
        plane = self.plane
        current = plane.remote_address
        if connection is not None:
            here = plane.tcp is connection
        else:
            here = plane.tcp is None and current is not None and tuple(current) == addr
        if current is None or (use_candidate and not here):
            if connection is not None:
                plane.set_tcp_connection(connection)
            else:
                plane.set_remote_address(addr)
            if self.ice_state == "connected":
                log.debug("transport %s: ICE moved to %s %s", self.id, plane.protocol, addr)
        if self.ice_state != "connected":
            self.ice_state = "connected"
            log.debug("transport %s: ICE connected from %s %s", self.id, plane.protocol, addr)
            if self.dtls is not None:
                self.dtls.start()

    @property
    def ice_protocol(self) -> str | None:
        """'udp' or 'tcp': how the peer reaches this transport now (None: not yet)."""
        return self.plane.protocol if self.plane.remote_address is not None else None

    def recover_from_congestion(self) -> None:
        """The ICE-TCP connection refused packets when its send buffer was full and has
        drained since: the video sent since is broken, so each video consumer waits for a
        keyframe, asked of its producer now."""
        for consumer in list(self.consumers.values()):
            if consumer.kind == "video" and consumer.started and not consumer.closed:
                consumer.plane.request_sync()
                consumer.producer.request_keyframe(force=True, layer=consumer.wanted_layer())

    # ---- DTLS ----

    def handle_dtls(self, data: bytes) -> None:
        if self.dtls is None:
            self.worker.count_drop("dtls_before_answer")
            return
        self.dtls.feed(data)

    def _send_raw(self, data: bytes) -> None:
        self.plane.send_raw(data)

    def _dtls_connected(self, profile: _core.SrtpProfile, material: bytes) -> None:
        outbound, inbound = _core.srtp_sessions_from_keying_material(
            material, profile, is_client=self.dtls_role is DtlsRole.CLIENT
        )
        self.plane.set_srtp(inbound, outbound)
        log.debug("transport %s: DTLS connected (%s)", self.id, profile.name)
        if self.want_sctp and self.enable_sctp:
            self._start_sctp()
        # consumers started before the keys existed need a keyframe now
        for consumer in list(self.consumers.values()):
            if consumer.started:
                consumer.producer.request_keyframe(force=True, layer=consumer.wanted_layer())
        self.emit("connected")

    def _dtls_data(self, data: bytes) -> None:
        if self._sctp_adapter is not None:
            self._sctp_adapter.deliver(data)

    def _dtls_failed(self, error: DtlsError) -> None:
        self.worker.count_dtls_failure(error.reason)
        self.close(reason=f"dtls: {error}")

    def _dtls_closed(self) -> None:
        if not self.closed and self.close_reason is None:
            self.close(reason="dtls closed by the peer")

    # ---- SCTP data channels ----

    def _start_sctp(self) -> None:
        assert self.dtls is not None and self.dtls_role is not None
        self._sctp_adapter = SctpDtlsAdapter(self.dtls, self.dtls_role.value)
        self.sctp = RTCSctpTransport(self._sctp_adapter, port=SCTP_PORT)  # type: ignore[arg-type]
        self.sctp.on("datachannel", lambda channel: self.emit("datachannel", channel))
        spawn(self.sctp.start(RTCSctpCapabilities(maxMessageSize=MAX_MESSAGE_SIZE), SCTP_PORT))

    async def _stop_sctp(self, sctp: RTCSctpTransport) -> None:
        with contextlib.suppress(ConnectionError):
            await sctp.stop()
        if self._sctp_adapter is not None:
            self._sctp_adapter.close()

    def open_data_channel(
        self, label: str, *, ordered: bool = True, protocol: str = ""
    ) -> RTCDataChannel:
        if self.sctp is None:
            raise RuntimeError("no SCTP association on this transport")
        return RTCDataChannel(
            self.sctp, RTCDataChannelParameters(label=label, ordered=ordered, protocol=protocol)
        )

    def handle_unknown_ssrc(self, ssrc: int, payload_type: int, packet: bytes) -> None:
        """An RTP stream with no Producer yet (no a=ssrc in the offer): whoever negotiates this
        transport may claim it by MID (see Peer)."""
        self.emit("unknownssrc", ssrc, payload_type, packet)

    # ---- timers ----

    def tick_liveness(self, now: float) -> None:
        if self.closed:
            return
        if self.ice_state != "connected":
            # from the negotiation on: a transport nobody negotiated (a peer that only
            # subscribes never offers on its send transport) waits, costing no more than an
            # ICE credential
            if self._negotiated is not None and now - self._negotiated > self.ice_timeout:
                self.worker.count_ice_failure("timeout")
                self.close(reason=f"no ICE connectivity within {self.ice_timeout:.0f} s")
        elif self._last_consent is not None and now - self._last_consent > self.consent_timeout:
            self.worker.count_ice_failure("consent_expired")
            self.close(reason=f"ICE consent expired ({self.consent_timeout:.0f} s without checks)")

    def close(self, reason: str = "closed") -> None:
        if self.closed or self.close_reason is not None:
            return
        self.close_reason = reason
        self.ice_state = "closed"
        self.worker.unregister_ice(self)
        if self.sctp is not None:
            spawn(self._stop_sctp(self.sctp), "sctp stop")
        if self.dtls is not None:
            self.dtls.close()
        super().close()
