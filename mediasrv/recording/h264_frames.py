"""H.264 RTP payload format (RFC 6184, packetization modes 0 and 1) to Annex B access units.

Single NAL unit packets, STAP-A and FU-A are read (STAP-B, MTAP and FU-B belong to the
interleaved mode, which WebRTC does not use). Every NAL unit is put out after a 4-byte start
code. A keyframe is an access unit with an IDR slice; the last SPS and PPS seen (or those of
the fmtp's sprop-parameter-sets) are put in front of a keyframe that lacks them, so that every
keyframe decodes on its own.
"""

from __future__ import annotations

import base64
import binascii

from mediasrv.recording.frames import MalformedPayload, PayloadInfo

START_CODE = b"\x00\x00\x00\x01"
SLICE, IDR, SEI, SPS, PPS, AUD = 1, 5, 6, 7, 8, 9
STAP_A, STAP_B, MTAP16, MTAP24, FU_A, FU_B = 24, 25, 26, 27, 28, 29
_FIRST_IN_ACCESS_UNIT = (SEI, SPS, PPS, AUD)


def _starts_access_unit(nal_type: int, first_slice_byte: int | None) -> bool:
    """Whether a NAL unit can be the first of an access unit: a parameter set, SEI or access
    unit delimiter, or a slice with first_mb_in_slice 0 (ue(v) 0 is the single bit 1)."""
    if nal_type in _FIRST_IN_ACCESS_UNIT:
        return True
    if nal_type in (SLICE, IDR):
        return first_slice_byte is not None and bool(first_slice_byte & 0x80)
    return False


def sprop_parameter_sets(fmtp: str) -> list[bytes]:
    """The NAL units of an fmtp line's ``sprop-parameter-sets`` (empty when absent or bad)."""
    for item in fmtp.split(";"):
        key, _, value = item.strip().partition("=")
        if key.strip().lower() == "sprop-parameter-sets":
            try:
                return [base64.b64decode(v, validate=True) for v in value.split(",") if v]
            except (binascii.Error, ValueError):
                return []
    return []


class H264Depayloader:
    """RFC 6184 packets to Annex B access units; keeps the latest SPS and PPS."""

    def __init__(self, fmtp: str = "") -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        for nal in sprop_parameter_sets(fmtp):
            self._remember(nal)

    def _remember(self, nal: bytes) -> None:
        if not nal:
            return
        nal_type = nal[0] & 0x1F
        if nal_type == SPS:
            self.sps = nal
        elif nal_type == PPS:
            self.pps = nal

    def parameter_sets(self) -> bytes:
        """The latest SPS and PPS in Annex B (the extradata of an MP4 track); b"" if unknown."""
        if self.sps is None or self.pps is None:
            return b""
        return START_CODE + self.sps + START_CODE + self.pps

    def parse(self, payload: bytes) -> PayloadInfo:
        if not payload:
            raise MalformedPayload("empty H.264 payload")
        if payload[0] & 0x80:
            raise MalformedPayload("H.264 NAL unit header with the forbidden bit set")
        nal_type = payload[0] & 0x1F
        if 1 <= nal_type <= 23:
            self._remember(payload)
            second = payload[1] if len(payload) > 1 else None
            return PayloadInfo(
                _starts_access_unit(nal_type, second), nal_type == IDR, START_CODE + payload
            )
        if nal_type == STAP_A:
            return self._stap_a(payload)
        if nal_type == FU_A:
            return self._fu_a(payload)
        if nal_type in (STAP_B, MTAP16, MTAP24, FU_B):
            raise MalformedPayload(f"H.264 NAL unit type {nal_type} (interleaved mode)")
        raise MalformedPayload(f"H.264 NAL unit type {nal_type} is reserved")

    def _stap_a(self, payload: bytes) -> PayloadInfo:
        out = bytearray()
        offset = 1
        start = False
        keyframe = False
        first = True
        while offset < len(payload):
            if offset + 2 > len(payload):
                raise MalformedPayload("STAP-A: truncated NAL unit size")
            size = int.from_bytes(payload[offset : offset + 2], "big")
            offset += 2
            nal = payload[offset : offset + size]
            if size == 0 or len(nal) < size:
                raise MalformedPayload(f"STAP-A: NAL unit of {size} bytes does not fit")
            offset += size
            nal_type = nal[0] & 0x1F
            if first:
                start = _starts_access_unit(nal_type, nal[1] if size > 1 else None)
                first = False
            keyframe = keyframe or nal_type == IDR
            self._remember(nal)
            out += START_CODE
            out += nal
        if first:
            raise MalformedPayload("STAP-A without NAL units")
        return PayloadInfo(start, keyframe, bytes(out))

    def _fu_a(self, payload: bytes) -> PayloadInfo:
        if len(payload) < 3:
            raise MalformedPayload(f"FU-A of {len(payload)} bytes (at least 3)")
        header = payload[1]
        nal_type = header & 0x1F
        if header & 0x80:  # S: first fragment; rebuild the NAL unit header
            nal_header = bytes([(payload[0] & 0xE0) | nal_type])
            return PayloadInfo(
                _starts_access_unit(nal_type, payload[2]),
                nal_type == IDR,
                START_CODE + nal_header + payload[2:],
            )
        return PayloadInfo(False, False, payload[2:])

    def assemble(self, parts: list[PayloadInfo], keyframe: bool) -> bytes:
        data = b"".join(part.data for part in parts)
        if keyframe:
            types = _nal_types(data)
            prefix = b""
            if SPS not in types and self.sps is not None:
                prefix += START_CODE + self.sps
            if PPS not in types and self.pps is not None:
                prefix += START_CODE + self.pps
            data = prefix + data
        return data


def _nal_types(annex_b: bytes) -> set[int]:
    """The NAL unit types of an Annex B stream with 4-byte start codes (as this module makes)."""
    types = set()
    index = annex_b.find(START_CODE)
    while index != -1 and index + 4 < len(annex_b):
        types.add(annex_b[index + 4] & 0x1F)
        index = annex_b.find(START_CODE, index + 4)
    return types


def parameter_sets_of(annex_b: bytes) -> bytes:
    """The SPS and PPS NAL units of an Annex B access unit (4-byte start codes), in Annex B:
    the extradata of an H.264 track; b"" when it has neither."""
    out = bytearray()
    for nal in annex_b.split(START_CODE):
        if nal and nal[0] & 0x1F in (SPS, PPS):
            out += START_CODE + nal
    return bytes(out)
