"""Opus (RFC 7587: one RTP packet is one Opus packet): durations and the Ogg/Matroska header."""

from __future__ import annotations

import struct

_FRAME_SAMPLES_SILK = (480, 960, 1920, 2880)  # 10, 20, 40, 60 ms at 48 kHz
_FRAME_SAMPLES_HYBRID = (480, 960)
_FRAME_SAMPLES_CELT = (120, 240, 480, 960)  # 2.5, 5, 10, 20 ms


def opus_packet_samples(packet: bytes) -> int | None:
    """The duration of an Opus packet in 48 kHz samples, from its TOC byte (RFC 6716 3.1);
    None when the packet is too short to tell."""
    if not packet:
        return None
    toc = packet[0]
    config = toc >> 3
    if config < 12:
        frame = _FRAME_SAMPLES_SILK[config & 3]
    elif config < 16:
        frame = _FRAME_SAMPLES_HYBRID[config & 1]
    else:
        frame = _FRAME_SAMPLES_CELT[config & 3]
    code = toc & 3
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        if len(packet) < 2:
            return None
        count = packet[1] & 0x3F
    return frame * count


def opus_head(channels: int, pre_skip: int = 0, input_rate: int = 48000) -> bytes:
    """The OpusHead identification header (RFC 7845 5.1), channel mapping family 0: the codec
    private data of Opus in Matroska/WebM and, converted by the muxer, in MP4."""
    if channels not in (1, 2):
        raise ValueError(f"Opus with channel mapping family 0 has 1 or 2 channels, not {channels}")
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, input_rate, 0, 0)


def opus_silence(channels: int) -> bytes:
    """20 ms of silence: a CELT-only fullband 20 ms packet that decodes to zeros."""
    return bytes([0xFC if channels == 2 else 0xF8, 0xFF, 0xFE])
