"""VP9 RTP payload format (RFC 9628): payload descriptor, layer frames, keyframes, superframes.

Both modes of the descriptor are read (flexible: reference indices; non-flexible: TL0PICIDX),
and the scalability structure is skipped. The packets of one timestamp may hold several layer
frames (spatial layers), each starting with B=1; a frame of more than one layer frame is put out
as a VP9 superframe (with the superframe index of VP9's Annex B) so that it decodes as one.
"""

from __future__ import annotations

from mediasrv.recording.frames import MalformedPayload, PayloadInfo

_I, _P, _L, _F, _B, _E, _V = 0x80, 0x40, 0x20, 0x10, 0x08, 0x04, 0x02


def vp9_descriptor(payload: bytes) -> tuple[int, bool, bool, int]:
    """``(descriptor size, B, P, spatial layer id)`` of a VP9 payload."""
    size = len(payload)
    if size < 1:
        raise MalformedPayload("empty VP9 payload")
    b0 = payload[0]
    offset = 1
    sid = 0
    try:
        if b0 & _I:
            offset += 2 if payload[offset] & 0x80 else 1
        if b0 & _L:
            sid = (payload[offset] >> 1) & 0x07
            offset += 1
            if not b0 & _F:
                offset += 1  # TL0PICIDX
        if b0 & _F and b0 & _P:
            for _ in range(3):  # P_DIFF bytes, N bit continues
                more = payload[offset] & 0x01
                offset += 1
                if not more:
                    break
        if b0 & _V:
            ss = payload[offset]
            offset += 1
            layers = (ss >> 5) + 1
            if ss & 0x10:  # Y: resolutions
                offset += 4 * layers
            if ss & 0x08:  # G: picture group
                groups = payload[offset]
                offset += 1
                for _ in range(groups):
                    offset += 1 + ((payload[offset] >> 2) & 0x03)
    except IndexError:
        raise MalformedPayload(f"VP9 descriptor runs past the {size}-byte payload") from None
    if offset > size:
        raise MalformedPayload(f"VP9 descriptor of {offset} bytes in a {size}-byte payload")
    return offset, bool(b0 & _B), bool(b0 & _P), sid


def vp9_is_keyframe(frame: bytes) -> bool:
    """Whether a VP9 frame's uncompressed header says KEY_FRAME (and not show_existing_frame)."""
    if not frame:
        return False
    b = frame[0]
    if b >> 6 != 0b10:  # frame_marker
        return False
    profile = ((b >> 5) & 1) | (((b >> 4) & 1) << 1)
    bit = 3 if profile < 3 else 2  # profile 3 has a reserved zero bit first
    show_existing = (b >> bit) & 1
    frame_type = (b >> (bit - 1)) & 1
    return not show_existing and frame_type == 0


def vp9_superframe(frames: list[bytes]) -> bytes:
    """Several VP9 frames as one superframe (frames, then the superframe index)."""
    if len(frames) == 1:
        return frames[0]
    if len(frames) > 8:
        raise MalformedPayload(f"{len(frames)} layer frames in one VP9 frame (at most 8)")
    largest = max(len(frame) for frame in frames)
    mag = next(n for n in range(1, 5) if largest < 1 << (8 * n))
    marker = bytes([0b11000000 | ((mag - 1) << 3) | (len(frames) - 1)])
    sizes = b"".join(len(frame).to_bytes(mag, "little") for frame in frames)
    return b"".join(frames) + marker + sizes + marker


class Vp9Depayloader:
    """RFC 9628: B starts a layer frame, the marker ends the picture; a keyframe is a start of
    spatial layer 0 that is not inter-predicted and whose header says KEY_FRAME."""

    def parse(self, payload: bytes) -> PayloadInfo:
        offset, begin, predicted, sid = vp9_descriptor(payload)
        data = payload[offset:]
        keyframe = begin and not predicted and sid == 0 and vp9_is_keyframe(data)
        return PayloadInfo(begin, keyframe, data, layer_start=begin)

    def assemble(self, parts: list[PayloadInfo], keyframe: bool) -> bytes:
        frames: list[bytearray] = []
        for part in parts:
            if part.layer_start or not frames:
                frames.append(bytearray())
            frames[-1] += part.data
        return vp9_superframe([bytes(frame) for frame in frames])
