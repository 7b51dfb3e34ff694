"""h264_keyframe and h264_payload_nal_types (cext/h264.pyx): RFC 6184 packetization-mode 1."""

from __future__ import annotations

import fractions
import re
import struct

import av
import numpy as np
import pytest
from aiortc.codecs.h264 import H264Encoder, H264PayloadDescriptor
from conftest import fixture_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from mediasrv._core import h264_keyframe, h264_payload_nal_types

NRI = 0x60
STAP_A = 24
FU_A = 28
SLICE, IDR, SEI, SPS, PPS, AUD = 1, 5, 6, 7, 8, 9
KEYFRAME_TYPES = (IDR, SPS)


def exact(message: str) -> str:
    """A pytest.raises(match=...) pattern that matches exactly this message."""
    return f"^{re.escape(message)}$"


def nal(nal_type: int, body: bytes = b"\x88\x84\x00\x33", nri: int = NRI) -> bytes:
    return bytes([nri | nal_type]) + body


def stap_a(*nals: bytes, nri: int = NRI) -> bytes:
    return bytes([nri | STAP_A]) + b"".join(struct.pack("!H", len(n)) + n for n in nals)


def fu_a(nal_type: int, *, start: bool, end: bool = False, data: bytes = b"\x11\x22") -> bytes:
    header = (0x80 if start else 0) | (0x40 if end else 0) | nal_type
    return bytes([NRI | FU_A, header]) + data


def both(payload: bytes | bytearray | memoryview) -> tuple[list[int], bool]:
    return h264_payload_nal_types(payload), h264_keyframe(payload)


# --- single NAL unit packets ---------------------------------------------------------------------


@pytest.mark.parametrize("nal_type", range(1, 24))
def test_single_nal_unit(nal_type: int) -> None:
    for payload in (nal(nal_type), bytes([nal_type]), nal(nal_type, nri=0x80 | NRI)):
        assert both(payload) == ([nal_type], nal_type in KEYFRAME_TYPES)


@pytest.mark.parametrize(
    ("nal_type", "keyframe"), [(IDR, True), (SPS, True), (SLICE, False), (PPS, False)]
)
def test_single_nal_unit_named(nal_type: int, keyframe: bool) -> None:
    payload = nal(nal_type)
    assert h264_keyframe(payload) is keyframe
    assert h264_keyframe(bytearray(payload)) is keyframe
    assert h264_keyframe(memoryview(payload)) is keyframe
    assert h264_payload_nal_types(memoryview(payload)) == [nal_type]


# --- STAP-A --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nal_types", "keyframe"),
    [
        ([SPS, PPS, IDR], True),
        ([SPS, PPS], True),
        ([PPS, IDR], True),
        ([SEI, IDR], True),
        ([AUD, SPS, PPS, SEI, IDR], True),
        ([PPS, SLICE], False),
        ([SEI, SLICE, SLICE], False),
        ([SLICE], False),
        ([IDR], True),
    ],
)
def test_stap_a(nal_types: list[int], keyframe: bool) -> None:
    payload = stap_a(*[nal(t) for t in nal_types])
    assert both(payload) == (nal_types, keyframe)


def test_stap_a_with_one_byte_and_large_nal_units() -> None:
    payload = stap_a(bytes([NRI | SPS]), nal(PPS, bytes(3000)), nal(IDR, bytes(60000)))
    assert both(payload) == ([SPS, PPS, IDR], True)


def test_stap_a_holds_up_to_64_nal_units() -> None:
    payload = stap_a(*[nal(SLICE, b"")] * 63, nal(IDR, b""))
    assert both(payload) == ([SLICE] * 63 + [IDR], True)


# --- FU-A ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nal_type", "start", "end", "keyframe"),
    [
        (IDR, True, False, True),  # start of an IDR slice
        (IDR, False, False, False),  # middle fragment
        (IDR, False, True, False),  # end fragment
        (SPS, True, False, True),
        (SLICE, True, False, False),
        (SLICE, False, True, False),
    ],
)
def test_fu_a(nal_type: int, start: bool, end: bool, keyframe: bool) -> None:
    payload = fu_a(nal_type, start=start, end=end)
    assert both(payload) == ([nal_type], keyframe)


def test_fu_a_shortest_valid() -> None:
    assert both(bytes([NRI | FU_A, 0x85, 0x00])) == ([IDR], True)


# --- malformed payloads (fixtures written by tests/fixtures/make_h264_fixtures.py) ---------------

MALFORMED = [
    ("empty", "H.264 payload is empty"),
    ("stap_a_header_only", "H.264 STAP-A aggregation unit is truncated (1 bytes)"),
    ("stap_a_nal_truncated", "H.264 STAP-A aggregation unit is truncated (5 bytes)"),
    ("stap_a_size_truncated", "H.264 STAP-A aggregation unit is truncated (8 bytes)"),
    ("stap_a_zero_size", "H.264 STAP-A holds a NAL unit of size 0"),
    ("stap_a_too_many", "H.264 STAP-A holds more than 64 NAL units"),
    ("fu_a_truncated", "H.264 FU-A payload is truncated (2 bytes, needs at least 3)"),
    ("fu_a_indicator_only", "H.264 FU-A payload is truncated (1 bytes, needs at least 3)"),
] + [
    (f"unsupported_type_{t}", f"H.264 NAL type {t} is not allowed in packetization-mode 1")
    for t in (0, 25, 26, 27, 29, 30, 31)
]


@pytest.mark.parametrize(("case", "message"), MALFORMED, ids=[c for c, _ in MALFORMED])
def test_malformed_fixture_is_rejected(case: str, message: str) -> None:
    data = fixture_bytes(f"h264_{case}.bin")
    for kind in (bytes, bytearray, memoryview):
        with pytest.raises(ValueError, match=exact(message)):
            h264_keyframe(kind(data))
        with pytest.raises(ValueError, match=exact(message)):
            h264_payload_nal_types(kind(data))


@pytest.mark.parametrize("nal_type", [0, 25, 26, 27, 29, 30, 31])
def test_unsupported_types_with_any_header_bits(nal_type: int) -> None:
    message = exact(f"H.264 NAL type {nal_type} is not allowed in packetization-mode 1")
    for first in (nal_type, 0x80 | nal_type, NRI | nal_type):
        with pytest.raises(ValueError, match=message):
            h264_keyframe(bytes([first]))


def test_non_bytes_are_rejected() -> None:
    with pytest.raises(TypeError, match=exact("expected bytes-like payload, got list")):
        h264_keyframe([5])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=exact("expected bytes-like payload, got NoneType")):
        h264_payload_nal_types(None)  # type: ignore[arg-type]


# --- a reference parser, for the properties ------------------------------------------------------


def reference_nal_types(payload: bytes) -> tuple[list[int], bool] | None:
    """(types, keyframe) per RFC 6184 mode 1, or None where the payload is malformed."""
    if not payload:
        return None
    nal_type = payload[0] & 0x1F
    if 1 <= nal_type <= 23:
        return [nal_type], nal_type in KEYFRAME_TYPES
    if nal_type == STAP_A:
        types: list[int] = []
        pos = 1
        while pos < len(payload):
            if pos + 2 > len(payload):
                return None
            (size,) = struct.unpack_from("!H", payload, pos)
            pos += 2
            if size == 0 or pos + size > len(payload) or len(types) == 64:
                return None
            types.append(payload[pos] & 0x1F)
            pos += size
        if not types:
            return None
        return types, any(t in KEYFRAME_TYPES for t in types)
    if nal_type == FU_A:
        if len(payload) < 3:
            return None
        inner = payload[1] & 0x1F
        return [inner], bool(payload[1] & 0x80) and inner in KEYFRAME_TYPES
    return None


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=40),
        st.builds(lambda rest: bytes([STAP_A]) + rest, st.binary(max_size=40)),
        st.builds(lambda rest: bytes([FU_A]) + rest, st.binary(max_size=4)),
    )
)
def test_any_bytes_only_raise_value_error(data: bytes) -> None:
    expected = reference_nal_types(data)
    try:
        result = both(data)
    except ValueError:
        assert expected is None
        with pytest.raises(ValueError):
            h264_keyframe(data)
        return
    assert result == expected


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 31), st.binary(max_size=30)),
        min_size=1,
        max_size=64,
    )
)
def test_generated_stap_a(units: list[tuple[int, bytes]]) -> None:
    payload = stap_a(*[nal(t, body) for t, body in units])
    types = [t for t, _ in units]
    assert both(payload) == (types, any(t in KEYFRAME_TYPES for t in types))


# --- interop with aiortc's packetizer and a real x264 stream -------------------------------------


def annex_b_types(data: bytes) -> list[int]:
    return [n[0] & 0x1F for n in H264Encoder._split_bitstream(data) if n]


def test_aiortc_packetizer_synthetic_access_unit() -> None:
    sps, pps = nal(SPS, b"\x42\xc0\x1f\xda"), nal(PPS, b"\xce\x3c\x80")
    idr = nal(IDR, bytes(range(256)) * 20)  # 5 kB: fragmented
    payloads = H264Encoder._packetize([sps, pps, idr])
    assert payloads[0][0] & 0x1F == STAP_A
    assert both(payloads[0]) == ([SPS, PPS], True)
    fragments = payloads[1:]
    assert len(fragments) > 2
    assert all(p[0] & 0x1F == FU_A for p in fragments)
    assert [both(p) for p in fragments] == [([IDR], True)] + [([IDR], False)] * (len(fragments) - 1)

    slice_payloads = H264Encoder._packetize([nal(SLICE, bytes(4000))])
    assert [h264_keyframe(p) for p in slice_payloads] == [False] * len(slice_payloads)
    small = H264Encoder._packetize([nal(SLICE, b"\x01\x02")])
    assert [both(p) for p in small] == [([SLICE], False)]


def encode_frames(count: int, force_keyframe_at: int) -> list[list[bytes]]:
    """RTP payloads of `count` frames of a moving noise image, encoded by libx264 (through
    aiortc's H264Encoder, which splits the Annex-B output and packetizes it)."""
    encoder = H264Encoder()
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    frames = []
    for index in range(count):
        frame = av.VideoFrame.from_ndarray(np.roll(image, 3 * index, axis=1), format="rgb24")
        frame.pts = index * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=index == force_keyframe_at)
        frames.append(payloads)
    return frames


def test_real_h264_access_units() -> None:
    frames = encode_frames(6, force_keyframe_at=4)
    for index, payloads in enumerate(frames):
        assert payloads, f"frame {index} produced no packets"
        types = [h264_payload_nal_types(p) for p in payloads]
        keyframes = [h264_keyframe(p) for p in payloads]
        flat = {t for ts in types for t in ts}
        if index in (0, 4):
            # an IDR access unit: SPS and PPS aggregated up front, then the IDR slice(s)
            assert keyframes[0] is True
            assert SPS in types[0] and PPS in types[0]
            assert IDR in flat
        else:
            assert IDR not in flat and SPS not in flat
            assert keyframes == [False] * len(payloads)
            assert SLICE in flat

        # every packet agrees with aiortc's depacketizer
        for payload, ours in zip(payloads, types, strict=True):
            descriptor, annex_b = H264PayloadDescriptor.parse(payload)
            is_fragment = payload[0] & 0x1F == FU_A
            if is_fragment:
                assert descriptor.first_fragment is bool(payload[1] & 0x80)
                assert h264_keyframe(payload) is (
                    descriptor.first_fragment and ours[0] in KEYFRAME_TYPES
                )
                if descriptor.first_fragment:
                    assert annex_b_types(annex_b) == ours
            else:
                assert annex_b_types(annex_b) == ours
                assert h264_keyframe(payload) is any(t in KEYFRAME_TYPES for t in ours)

    # the first frame is large: its IDR slices are fragmented, and only start fragments count
    first = frames[0]
    fu_idr = [p for p in first if p[0] & 0x1F == FU_A and p[1] & 0x1F == IDR]
    assert fu_idr
    for p in fu_idr:
        assert h264_keyframe(p) is bool(p[1] & 0x80)
    assert any(not h264_keyframe(p) for p in fu_idr)
