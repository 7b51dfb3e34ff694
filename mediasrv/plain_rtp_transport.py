"""PlainRtpTransport: RTP/RTCP without ICE or DTLS on the worker's shared port, for ffmpeg,
GStreamer, pipes between workers or nodes, and benchmarks; optionally SRTP with keys exchanged
out of band (SDES-style: each side protects what it sends with its own key).

    transport = router.create_plain_transport()
    transport.connect(("127.0.0.1", 40000))        # where the sender sends from / we send to
    producer = transport.produce(kind="video", mime_type="video/VP8", payload_type=96,
                                 ssrc=0x1234)
    # ffmpeg ... -f rtp -ssrc 4660 -payload_type 96 \\
    #     "rtp://127.0.0.1:<worker port>?localrtpport=40000&rtcpport=<worker port>"

The remote address must be given: the port is shared, so datagrams are matched to transports by
their source address, and an address nobody connected is dropped like any unverified one.

With SRTP, each side makes its own key and the two swap them through whatever channel set the
transport up (never logged):

    transport = router.create_plain_transport(srtp=SRTP_SUITES[0])
    send_to_the_other_side(transport.srtp_parameters)   # {"cryptoSuite": ..., "keyBase64": ...}
    transport.connect(remote, srtp_parameters=the_other_sides_parameters)
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

from mediasrv import _core
from mediasrv.producer import Producer
from mediasrv.rtp_capabilities import CODECS
from mediasrv.transport import Transport, TransportRouter

SRTP_SUITES = ("AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_80")


class PlainRtpTransport(Transport):
    """Events: ``close``, ``producer``, ``consumer``."""

    kind = "plain"

    def __init__(
        self,
        router: TransportRouter,
        *,
        max_incoming_bitrate: int,
        srtp: str | None = None,
        app_data: dict[str, Any] | None = None,
    ) -> None:
        if srtp is not None and srtp not in SRTP_SUITES:
            raise ValueError(f"srtp must be one of {', '.join(SRTP_SUITES)}, got {srtp!r}")
        super().__init__(
            router,
            srtp=srtp is not None,
            max_incoming_bitrate=max_incoming_bitrate,
            app_data=app_data,
        )
        self.remote_address: tuple[str, int] | None = None
        self._srtp_suite = srtp
        self._srtp_key = (
            secrets.token_bytes(_core.srtp_key_length(_core.SrtpProfile[srtp])) if srtp else b""
        )

    @property
    def srtp_parameters(self) -> dict[str, str] | None:
        """This side's SRTP suite and key (it protects what it sends with them), for the other
        side's ``connect``; None without SRTP. A secret: pass it on, never log it."""
        if self._srtp_suite is None:
            return None
        key = base64.b64encode(self._srtp_key).decode()
        return {"cryptoSuite": self._srtp_suite, "keyBase64": key}

    def connect(
        self, remote: tuple[str, int], *, srtp_parameters: dict[str, Any] | None = None
    ) -> None:
        """Bind to the remote RTP address (RTP and RTCP multiplexed, RFC 5761); with SRTP,
        ``srtp_parameters`` are the other side's (its ``srtp_parameters``)."""
        if self.closed:
            raise RuntimeError("the transport is closed")
        host, port = remote
        if not isinstance(host, str) or not isinstance(port, int) or not 0 < port <= 65535:
            raise ValueError(f"remote must be (host, port), got {remote!r}")
        if self._srtp_suite is not None and self.remote_address is not None:
            # new sessions with the same key would start its counters again: nonces reused
            raise RuntimeError("an SRTP transport connects once (make a new one to reconnect)")
        if self._srtp_suite is None:
            if srtp_parameters is not None:
                raise ValueError("this transport was made without SRTP: srtp_parameters unused")
        else:
            remote_key = self._remote_key(srtp_parameters)
            profile = _core.SrtpProfile[self._srtp_suite]
            self.plane.set_srtp(
                _core.SrtpSession(profile, remote_key, outbound=False),
                _core.SrtpSession(profile, self._srtp_key, outbound=True),
            )
        self.plane.set_remote_address((host, port))
        self.remote_address = (host, port)

    def _remote_key(self, parameters: dict[str, Any] | None) -> bytes:
        """The other side's key, checked (its suite must be ours): ValueError naming what is
        wrong, without the key."""
        if not isinstance(parameters, dict):
            raise ValueError("this transport uses SRTP: srtp_parameters of the other side needed")
        suite = parameters.get("cryptoSuite")
        if suite != self._srtp_suite:
            raise ValueError(f"srtp_parameters: cryptoSuite must be {self._srtp_suite}")
        encoded = parameters.get("keyBase64")
        try:
            key = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else b""
        except (binascii.Error, ValueError):
            key = b""
        wanted = len(self._srtp_key)
        if len(key) != wanted:
            raise ValueError(f"srtp_parameters: keyBase64 must be {wanted} bytes in base64")
        return key

    def produce(
        self,
        *,
        kind: str,
        mime_type: str,
        payload_type: int,
        ssrc: int,
        rtx_payload_type: int = 0,
        rtx_ssrc: int = 0,
        extensions: dict[str, int] | None = None,
        rids: list[str] | None = None,
        app_data: dict[str, Any] | None = None,
    ) -> Producer:
        """A Producer of what the sender sends with this SSRC and payload type (with ``rids``,
        a simulcast producer whose layer 0 is this SSRC; add_layer() adds the others)."""
        if self.closed:
            raise RuntimeError("the transport is closed")
        if kind not in ("audio", "video"):
            raise ValueError(f"kind must be 'audio' or 'video', got {kind!r}")
        spec = next((c for c in CODECS if c.mime_type.lower() == mime_type.lower()), None)
        if spec is None or spec.kind != kind:
            supported = ", ".join(c.mime_type for c in CODECS)
            raise ValueError(f"unsupported codec {mime_type!r} for {kind} (supported: {supported})")
        if not 0 <= payload_type <= 127:
            raise ValueError(f"payload type {payload_type} is outside 0..127")
        extensions = {uri: i for uri, i in (extensions or {}).items() if 1 <= i <= 14}
        producer = Producer(
            self,
            kind=kind,
            codec=spec,
            payload_type=payload_type,
            rtx_payload_type=rtx_payload_type,
            ssrc=ssrc,
            rtx_ssrc=rtx_ssrc or None,
            mid="",
            extensions=extensions,
            rids=rids,
            app_data=app_data,
        )
        self.add_producer(producer)
        return producer
