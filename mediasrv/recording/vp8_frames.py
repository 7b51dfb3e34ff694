"""VP8 RTP payload format (RFC 7741): payload descriptor, frame start, keyframes."""

from __future__ import annotations

from mediasrv.recording.frames import MalformedPayload, PayloadInfo

VP8_START_CODE = b"\x9d\x01\x2a"


def vp8_descriptor_size(payload: bytes) -> int:
    """The size of the VP8 payload descriptor at the start of `payload`."""
    size = len(payload)
    if size < 1:
        raise MalformedPayload("empty VP8 payload")
    offset = 1
    if payload[0] & 0x80:  # X: extension byte
        if size < 2:
            raise MalformedPayload("VP8 descriptor: X set but no extension byte")
        ext = payload[1]
        offset = 2
        if ext & 0x80:  # I: picture ID, 7 or 15 bits (M)
            if size <= offset:
                raise MalformedPayload("VP8 descriptor: I set but no picture ID")
            offset += 2 if payload[offset] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            offset += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            offset += 1
    if offset > size:
        raise MalformedPayload(f"VP8 descriptor of {offset} bytes in a {size}-byte payload")
    return offset


def vp8_is_keyframe(frame: bytes) -> bool:
    """Whether a VP8 frame (its first bytes) is a keyframe: P bit 0 and the start code."""
    return len(frame) >= 10 and not frame[0] & 0x01 and frame[3:6] == VP8_START_CODE


class Vp8Depayloader:
    """RFC 7741: a frame starts at S=1 with partition index 0; the marker bit ends it."""

    def parse(self, payload: bytes) -> PayloadInfo:
        offset = vp8_descriptor_size(payload)
        start = bool(payload[0] & 0x10) and payload[0] & 0x07 == 0
        data = payload[offset:]
        return PayloadInfo(start, start and vp8_is_keyframe(data), data)

    def assemble(self, parts: list[PayloadInfo], keyframe: bool) -> bytes:
        return b"".join(part.data for part in parts)
