"""PlainRtpTransport: RTP/RTCP without ICE or DTLS on the worker's shared port, for ffmpeg,
GStreamer and benchmarks (optionally SRTP with keys exchanged out of band).

    transport = router.create_plain_transport()
    transport.connect(("127.0.0.1", 40000))        # where the sender sends from / we send to
    producer = transport.produce(kind="video", mime_type="video/VP8", payload_type=96,
                                 ssrc=0x1234)
    # ffmpeg ... -f rtp -ssrc 4660 -payload_type 96 \\
    #     "rtp://127.0.0.1:<worker port>?localrtpport=40000&rtcpport=<worker port>"

The remote address must be given: the port is shared, so datagrams are matched to transports by
their source address, and an address nobody connected is dropped like any unverified one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mediasrv.producer import Producer
from mediasrv.rtp_capabilities import CODECS
from mediasrv.transport import Transport

if TYPE_CHECKING:
    from mediasrv.router import Router


class PlainRtpTransport(Transport):
    """Events: ``close``, ``producer``, ``consumer``."""

    kind = "plain"

    def __init__(
        self, router: Router, *, max_incoming_bitrate: int, app_data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(
            router, srtp=False, max_incoming_bitrate=max_incoming_bitrate, app_data=app_data
        )
        self.remote_address: tuple[str, int] | None = None

    def connect(self, remote: tuple[str, int]) -> None:
        """Bind to the remote RTP address (RTP and RTCP multiplexed, RFC 5761)."""
        if self.closed:
            raise RuntimeError("the transport is closed")
        host, port = remote
        if not isinstance(host, str) or not isinstance(port, int) or not 0 < port <= 65535:
            raise ValueError(f"remote must be (host, port), got {remote!r}")
        self.plane.set_remote_address((host, port))
        self.remote_address = (host, port)

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
        app_data: dict[str, Any] | None = None,
    ) -> Producer:
        """A Producer of what the sender sends with this SSRC and payload type."""
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
            app_data=app_data,
        )
        self.add_producer(producer)
        return producer
