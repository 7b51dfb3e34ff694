"""What the server speaks: codecs, RTCP feedback and RTP header extensions.

Publishers keep their own payload types and extension ids (the answer echoes the offer);
subscribers get the canonical payload types and ids below, and each consumer rewrites to them in
the data plane. In a BUNDLE group one payload type must mean one codec, so a fixed table for the
receive side is the simple, safe choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mediasrv import _core

EXT_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
EXT_RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
EXT_RRID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
EXT_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
EXT_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
EXT_VIDEO_ORIENTATION = "urn:3gpp:video-orientation"
EXT_TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"

# extensions accepted from publishers
PUBLISH_EXTENSIONS = {
    EXT_MID,
    EXT_RID,
    EXT_RRID,
    EXT_AUDIO_LEVEL,
    EXT_ABS_SEND_TIME,
    EXT_VIDEO_ORIENTATION,
    EXT_TRANSPORT_CC,
}
# extensions offered to subscribers, with their canonical ids
# (abs-send-time is rewritten with the server's send time: subscribers that estimate bandwidth
# themselves send REMB from it; transport-cc sequence numbers are the server's own, numbering
# everything it sends on a transport, for its send-side estimator)
TRANSPORT_CC_ID = 5
SUBSCRIBE_EXTENSIONS = {
    "audio": {EXT_AUDIO_LEVEL: 1, EXT_ABS_SEND_TIME: 3, EXT_TRANSPORT_CC: TRANSPORT_CC_ID},
    "video": {EXT_ABS_SEND_TIME: 3, EXT_VIDEO_ORIENTATION: 4, EXT_TRANSPORT_CC: TRANSPORT_CC_ID},
}

# RED (RFC 2198) for Opus: redundant audio, offered to subscribers with this payload type
RED_PAYLOAD_TYPE = 63

VIDEO_FEEDBACK = [
    ("goog-remb", ""),
    ("transport-cc", ""),
    ("nack", ""),
    ("nack", "pli"),
    ("ccm", "fir"),
]
AUDIO_FEEDBACK: list[tuple[str, str]] = [("transport-cc", "")]


@dataclass(frozen=True)
class CodecSpec:
    kind: str
    name: str  # as in a=rtpmap, upper-case except "opus"
    clock_rate: int
    channels: int
    payload_type: int  # canonical, toward subscribers
    rtx_payload_type: int  # 0: none
    fmtp: dict[str, str] = field(default_factory=dict)
    plane_codec: int = _core.PlaneCodec.CODEC_OTHER

    @property
    def mime_type(self) -> str:
        return f"{self.kind}/{self.name}"


CODECS: list[CodecSpec] = [
    CodecSpec(
        "audio",
        "opus",
        48000,
        2,
        111,
        0,
        {"minptime": "10", "useinbandfec": "1"},
        _core.PlaneCodec.CODEC_OPUS,
    ),
    CodecSpec("video", "VP8", 90000, 1, 96, 97, {}, _core.PlaneCodec.CODEC_VP8),
    CodecSpec("video", "VP9", 90000, 1, 98, 99, {"profile-id": "0"}, _core.PlaneCodec.CODEC_VP9),
    CodecSpec(
        "video",
        "H264",
        90000,
        1,
        102,
        103,
        {"level-asymmetry-allowed": "1", "packetization-mode": "1", "profile-level-id": "42e01f"},
        _core.PlaneCodec.CODEC_H264,
    ),
]


def find_codec(kind: str, name: str, clock_rate: int, fmtp: dict[str, str]) -> CodecSpec | None:
    """The server codec an offered one matches, or None."""
    for spec in CODECS:
        if spec.kind != kind or spec.name.lower() != name.lower() or spec.clock_rate != clock_rate:
            continue
        # H.264: packetization-mode 1 only; any profile: the subscriber decodes what was sent
        if spec.name == "H264" and str(fmtp.get("packetization-mode", "0")) != "1":
            continue
        if spec.name == "VP9" and str(fmtp.get("profile-id", "0")) not in ("0", "2"):
            continue
        return spec
    return None


def spec_by_payload_type(kind: str, payload_type: int) -> CodecSpec | None:
    for spec in CODECS:
        if spec.kind == kind and spec.payload_type == payload_type:
            return spec
    return None
