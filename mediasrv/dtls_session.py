"""One DTLS 1.2 association over the worker's shared socket, driven through memory BIOs.

The session verifies the peer certificate against the fingerprint from SDP, negotiates a
DTLS-SRTP profile (RFC 5764) and exports the SRTP keying material; after the handshake it
carries SCTP (data channels) as application data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from enum import StrEnum

from OpenSSL import SSL

from mediasrv import _core
from mediasrv.certificate import Certificate, fingerprint_of

log = logging.getLogger("mediasrv.dtls")

SRTP_PROFILES: dict[bytes, _core.SrtpProfile] = {
    b"SRTP_AEAD_AES_128_GCM": _core.SrtpProfile.AEAD_AES_128_GCM,
    b"SRTP_AES128_CM_SHA1_80": _core.SrtpProfile.AES_CM_128_HMAC_SHA1_80,
}
HANDSHAKE_TIMEOUT = 15.0
MAX_RECORD = 1500


class DtlsRole(StrEnum):
    CLIENT = "client"  # a=setup:active
    SERVER = "server"  # a=setup:passive


class DtlsError(Exception):
    """A DTLS failure; ``reason`` is a short metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _context(certificate: Certificate) -> SSL.Context:
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.set_options(SSL.OP_NO_TICKET)
    # the peer's certificate is self-signed: it is checked against the SDP fingerprint instead
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: True)
    ctx.use_certificate(certificate.cert)
    ctx.use_privatekey(certificate.key)
    ctx.set_tlsext_use_srtp(b":".join(SRTP_PROFILES))
    return ctx


RECORD_HEADER = 13
CONTENT_TYPES = {20, 21, 22, 23}  # change_cipher_spec, alert, handshake, application_data


def record_problem(data: bytes, *, handshaking: bool) -> str | None:
    """What is wrong with a datagram of DTLS records, or None. Checked before OpenSSL sees it,
    so that a forged or damaged datagram cannot end a handshake in progress."""
    pos = 0
    while pos < len(data):
        if len(data) - pos < RECORD_HEADER:
            return f"record header truncated at byte {pos}"
        content_type, major, minor = data[pos], data[pos + 1], data[pos + 2]
        if content_type not in CONTENT_TYPES:
            return f"unknown content type {content_type}"
        if major != 0xFE or minor not in (0xFF, 0xFD):
            return f"not DTLS 1.0/1.2 (version {major:#04x}{minor:02x})"
        epoch = int.from_bytes(data[pos + 3 : pos + 5], "big")
        length = int.from_bytes(data[pos + 11 : pos + 13], "big")
        left = len(data) - pos - RECORD_HEADER
        if length > left:
            return f"record length {length} exceeds the {left} bytes left"
        if handshaking and epoch == 0 and content_type == 23:
            return "application data before the handshake finished"
        pos += RECORD_HEADER + length
    return None


class DtlsSession:
    """DTLS over a datagram callback. Call start() once ICE has selected an address."""

    def __init__(
        self,
        certificate: Certificate,
        role: DtlsRole,
        remote_fingerprints: list[tuple[str, str]],
        send: Callable[[bytes], None],
        on_connected: Callable[[_core.SrtpProfile, bytes], None],
        on_data: Callable[[bytes], None],
        on_failed: Callable[[DtlsError], None],
        on_closed: Callable[[], None],
    ) -> None:
        if not remote_fingerprints:
            raise DtlsError("no_fingerprint", "the remote description carries no fingerprint")
        self.role = role
        self._fingerprints = [(alg.lower(), value.upper()) for alg, value in remote_fingerprints]
        self._send = send
        self._on_connected = on_connected
        self._on_data = on_data
        self._on_failed = on_failed
        self._on_closed = on_closed
        self._ssl = SSL.Connection(_context(certificate))
        if role is DtlsRole.SERVER:
            self._ssl.set_accept_state()
        else:
            self._ssl.set_connect_state()
        self.state = "new"
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self.records_in = 0
        self.records_rejected = 0

    # ---- handshake ----

    def start(self) -> None:
        if self.state != "new":
            return
        self.state = "connecting"
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(HANDSHAKE_TIMEOUT, self._handshake_timeout)
        if self.role is DtlsRole.CLIENT:
            self._handshake()

    def _handshake(self) -> None:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            self._flush()
            self._arm_timer()
            return
        except SSL.Error as exc:
            self._fail(DtlsError("handshake", f"DTLS handshake failed: {exc}"))
            return
        self._flush()
        self._established()

    def _established(self) -> None:
        cert = self._ssl.get_peer_certificate(as_cryptography=True)
        if cert is None:
            self._fail(DtlsError("no_certificate", "the peer sent no certificate"))
            return
        from cryptography.hazmat.primitives.serialization import Encoding

        der = cert.public_bytes(Encoding.DER)
        ok = False
        for algorithm, value in self._fingerprints:
            try:
                if fingerprint_of(der, algorithm) == value:
                    ok = True
                    break
            except ValueError:
                continue
        if not ok:
            self._fail(
                DtlsError(
                    "fingerprint",
                    "the peer certificate does not match the fingerprint of the remote description",
                )
            )
            return
        name = self._ssl.get_selected_srtp_profile()
        profile = SRTP_PROFILES.get(name)
        if profile is None:
            self._fail(DtlsError("srtp_profile", f"no common DTLS-SRTP profile (got {name!r})"))
            return
        length = 2 * _core.srtp_key_length(profile)
        material = self._ssl.export_keying_material(b"EXTRACTOR-dtls_srtp", length)
        self.state = "connected"
        self._cancel_timers()
        self._on_connected(profile, material)

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        timeout = self._ssl.DTLSv1_get_timeout()
        if timeout is not None:
            self._timer = asyncio.get_running_loop().call_later(timeout, self._retransmit)

    def _retransmit(self) -> None:
        self._timer = None
        if self.state != "connecting":
            return
        self._ssl.DTLSv1_handle_timeout()
        self._flush()
        self._arm_timer()

    def _handshake_timeout(self) -> None:
        self._deadline = None
        if self.state in ("new", "connecting"):
            self._fail(DtlsError("timeout", f"no DTLS handshake within {HANDSHAKE_TIMEOUT:.0f} s"))

    # ---- records ----

    def feed(self, data: bytes) -> None:
        """A DTLS datagram from the peer (already matched to this transport by address)."""
        if self.state in ("closed", "failed"):
            return
        self.records_in += 1
        problem = record_problem(data, handshaking=self.state != "connected")
        if problem is not None:
            # RFC 6347 4.1.2.7: invalid records are discarded, the association lives on
            self.records_rejected += 1
            log.debug("DTLS datagram discarded: %s", problem)
            return
        if self.state == "new":
            # the peer (DTLS client) can be faster than our ICE bookkeeping
            self.start()
        try:
            self._ssl.bio_write(data)
        except SSL.Error:
            self.records_rejected += 1
            return
        if self.state == "connecting":
            self._handshake()
            if self.state != "connected":
                return
        self._read_application_data()

    def _read_application_data(self) -> None:
        while True:
            try:
                data = self._ssl.recv(MAX_RECORD * 2)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self._closed_by_peer()
                return
            except SSL.Error as exc:
                # a damaged or replayed record: dropped and counted, the association lives on
                self.records_rejected += 1
                log.debug("DTLS record rejected: %s", exc)
                break
            if not data:
                break
            try:
                self._on_data(data)
            except Exception:
                log.exception("DTLS data handler failed")
        self._flush()

    def send(self, data: bytes) -> None:
        """Application data (SCTP packets) to the peer."""
        if self.state != "connected":
            raise ConnectionError("DTLS is not connected")
        self._ssl.send(data)
        self._flush()

    def _flush(self) -> None:
        while True:
            try:
                data = self._ssl.bio_read(MAX_RECORD * 4)
            except SSL.Error:
                return
            if not data:
                return
            self._send(data)

    # ---- end ----

    def _cancel_timers(self) -> None:
        for timer in (self._timer, self._deadline):
            if timer is not None:
                timer.cancel()
        self._timer = self._deadline = None

    def _fail(self, error: DtlsError) -> None:
        if self.state in ("failed", "closed"):
            return
        handshake_done = self.state == "connecting" and error.reason in (
            "fingerprint",
            "no_certificate",
            "srtp_profile",
        )
        self.state = "failed"
        self._cancel_timers()
        if handshake_done:
            # tell the peer at once instead of leaving it to time out
            with contextlib.suppress(SSL.Error):
                self._ssl.shutdown()
            self._flush()
        log.info("DTLS failed (%s, records in %d): %s", self.role.value, self.records_in, error)
        self._on_failed(error)

    def _closed_by_peer(self) -> None:
        self.close(notify_peer=False)

    def close(self, notify_peer: bool = True) -> None:
        if self.state == "closed":
            return
        was_connected = self.state == "connected"
        self.state = "closed"
        self._cancel_timers()
        if was_connected and notify_peer:
            with contextlib.suppress(SSL.Error):
                self._ssl.shutdown()
            self._flush()
        self._on_closed()
