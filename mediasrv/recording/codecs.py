"""The codecs a journal may hold: their RTP depayloaders and FFmpeg names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mediasrv.recording.frames import AudioFrameAssembler, VideoFrameAssembler
from mediasrv.recording.h264_frames import H264Depayloader
from mediasrv.recording.vp8_frames import Vp8Depayloader
from mediasrv.recording.vp9_frames import Vp9Depayloader


@dataclass(frozen=True, slots=True)
class Codec:
    """A codec of journals: kind, FFmpeg codec name, frame assembler factory (given fmtp)."""

    mime_type: str
    kind: str
    name: str
    assembler: Callable[[str], VideoFrameAssembler | AudioFrameAssembler]


CODECS: dict[str, Codec] = {
    codec.mime_type.lower(): codec
    for codec in (
        Codec("video/VP8", "video", "vp8", lambda fmtp: VideoFrameAssembler(Vp8Depayloader())),
        Codec("video/VP9", "video", "vp9", lambda fmtp: VideoFrameAssembler(Vp9Depayloader())),
        Codec(
            "video/H264", "video", "h264", lambda fmtp: VideoFrameAssembler(H264Depayloader(fmtp))
        ),
        Codec("audio/opus", "audio", "opus", lambda fmtp: AudioFrameAssembler()),
    )
}


def codec_of(mime_type: str) -> Codec | None:
    """The codec of a journal's ``mimeType`` (case-insensitive), None when not supported."""
    return CODECS.get(mime_type.lower())


def supported_mime_types() -> str:
    return ", ".join(codec.mime_type for codec in CODECS.values())
