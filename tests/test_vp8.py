"""Vp8PayloadDescriptor and vp8_rewrite (cext/vp8.pyx): RFC 7741 payload descriptors."""

from __future__ import annotations

import fractions
import re
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import pytest
from aiortc.codecs.vpx import Vp8Encoder, VpxPayloadDescriptor
from conftest import fixture_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from mediasrv._core import Vp8PayloadDescriptor, vp8_rewrite

KEY = b"\x10\x02\x00"  # a VP8 payload header with P = 0 (key frame)
INTER = b"\x11\x02\x00"  # P = 1 (interframe)


def exact(message: str) -> str:
    """A pytest.raises(match=...) pattern that matches exactly this message."""
    return f"^{re.escape(message)}$"


def descriptor_fields(d: Vp8PayloadDescriptor) -> dict[str, object]:
    return {
        "size": d.size,
        "non_reference": d.non_reference,
        "start_of_partition": d.start_of_partition,
        "partition_index": d.partition_index,
        "picture_id": d.picture_id,
        "picture_id_15bit": d.picture_id_15bit,
        "tl0picidx": d.tl0picidx,
        "tid": d.tid,
        "layer_sync": d.layer_sync,
        "keyidx": d.keyidx,
        "keyframe": d.keyframe,
    }


@dataclass(frozen=True)
class Shape:
    name: str
    kwargs: dict[str, Any]
    encoded: bytes


SHAPES = [
    Shape("no_extension", {}, b"\x10"),
    Shape("no_extension_not_start", {"start_of_partition": False}, b"\x00"),
    Shape(
        "no_extension_flags",
        {"non_reference": True, "start_of_partition": False, "partition_index": 7},
        b"\x27",
    ),
    Shape("picture_id_7bit", {"picture_id": 0x55, "picture_id_15bit": False}, b"\x90\x80\x55"),
    Shape("picture_id_7bit_zero", {"picture_id": 0, "picture_id_15bit": False}, b"\x90\x80\x00"),
    Shape("picture_id_7bit_max", {"picture_id": 127, "picture_id_15bit": False}, b"\x90\x80\x7f"),
    Shape("picture_id_15bit", {"picture_id": 0x1234}, b"\x90\x80\x92\x34"),
    Shape("picture_id_15bit_small", {"picture_id": 5}, b"\x90\x80\x80\x05"),
    Shape("picture_id_15bit_max", {"picture_id": 0x7FFF}, b"\x90\x80\xff\xff"),
    Shape("tl0picidx", {"tl0picidx": 200}, b"\x90\x40\xc8"),
    Shape("tid", {"tid": 2}, b"\x90\x20\x80"),
    Shape("tid_layer_sync", {"tid": 3, "layer_sync": True}, b"\x90\x20\xe0"),
    Shape("keyidx", {"keyidx": 17}, b"\x90\x10\x11"),
    Shape("tid_keyidx", {"tid": 1, "layer_sync": True, "keyidx": 31}, b"\x90\x30\x7f"),
    Shape(
        "picture_id_tl0picidx",
        {"picture_id": 300, "tl0picidx": 0},
        b"\x90\xc0\x81\x2c\x00",
    ),
    Shape(
        "picture_id_7bit_tid",
        {"picture_id": 9, "picture_id_15bit": False, "tid": 0},
        b"\x90\xa0\x09\x00",
    ),
    Shape(
        "all_15bit",
        {"picture_id": 0x7FFF, "tl0picidx": 255, "tid": 1, "layer_sync": True, "keyidx": 4},
        b"\x90\xf0\xff\xff\xff\x64",
    ),
    Shape(
        "all_7bit_flags",
        {
            "non_reference": True,
            "start_of_partition": False,
            "partition_index": 5,
            "picture_id": 127,
            "picture_id_15bit": False,
            "tl0picidx": 1,
            "tid": 3,
            "keyidx": 0,
        },
        b"\xa5\xf0\x7f\x01\xc0",
    ),
]


def expected_fields(kwargs: dict[str, Any], size: int, keyframe: bool) -> dict[str, object]:
    picture_id = kwargs.get("picture_id")
    has_t_or_k = kwargs.get("tid") is not None or kwargs.get("keyidx") is not None
    return {
        "size": size,
        "non_reference": kwargs.get("non_reference", False),
        "start_of_partition": kwargs.get("start_of_partition", True),
        "partition_index": kwargs.get("partition_index", 0),
        "picture_id": picture_id,
        "picture_id_15bit": picture_id is not None and kwargs.get("picture_id_15bit", True),
        "tl0picidx": kwargs.get("tl0picidx"),
        "tid": kwargs.get("tid"),
        "layer_sync": has_t_or_k and kwargs.get("layer_sync", False),
        "keyidx": kwargs.get("keyidx"),
        "keyframe": keyframe,
    }


def build_kwargs(d: Vp8PayloadDescriptor) -> dict[str, Any]:
    """Build arguments that reproduce a parsed descriptor."""
    return {
        "non_reference": d.non_reference,
        "start_of_partition": d.start_of_partition,
        "partition_index": d.partition_index,
        "picture_id": d.picture_id,
        "picture_id_15bit": d.picture_id_15bit,
        "tl0picidx": d.tl0picidx,
        "tid": d.tid,
        "layer_sync": d.layer_sync,
        "keyidx": d.keyidx,
    }


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
@pytest.mark.parametrize("vp8_header", [KEY, INTER], ids=["key", "inter"])
def test_build_parse_round_trip(shape: Shape, vp8_header: bytes) -> None:
    descriptor = Vp8PayloadDescriptor.build(**shape.kwargs)
    assert descriptor == shape.encoded

    payload = descriptor + vp8_header + b"frame data"
    parsed = Vp8PayloadDescriptor.parse(payload)
    is_start_of_frame = shape.kwargs.get("start_of_partition", True) and (
        shape.kwargs.get("partition_index", 0) == 0
    )
    keyframe = bool(is_start_of_frame) and vp8_header == KEY
    assert descriptor_fields(parsed) == expected_fields(shape.kwargs, len(descriptor), keyframe)
    assert payload[parsed.size :] == vp8_header + b"frame data"

    # parse -> build gives the same bytes
    assert Vp8PayloadDescriptor.build(**build_kwargs(parsed)) == descriptor
    for kind in (bytearray, memoryview):
        assert descriptor_fields(Vp8PayloadDescriptor.parse(kind(payload))) == (
            descriptor_fields(parsed)
        )


def test_repr() -> None:
    d = Vp8PayloadDescriptor.parse(Vp8PayloadDescriptor.build(picture_id=7, tid=1) + KEY)
    assert repr(d) == (
        "Vp8PayloadDescriptor(size=5, picture_id=7, tl0picidx=None, tid=1, keyframe=True)"
    )


# --- keyframe detection --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first_byte", "vp8_header", "keyframe"),
    [
        (0x10, b"\x00", True),  # S=1, PID=0, P=0
        (0x10, b"\x01", False),  # P=1: interframe
        (0x10, b"\xfe", True),  # only bit 0 is P
        (0x30, b"\x00", True),  # N=1 does not matter
        (0x00, b"\x00", False),  # S=0: a continuation packet
        (0x11, b"\x00", False),  # S=1 but PID=1: not the first partition
        (0x17, b"\x00", False),  # PID=7
        (0x18, b"\x00", True),  # the reserved bit next to PID is not part of PID
    ],
)
def test_keyframe_detection(first_byte: int, vp8_header: bytes, keyframe: bool) -> None:
    d = Vp8PayloadDescriptor.parse(bytes([first_byte]) + vp8_header + b"rest")
    assert d.keyframe is keyframe
    extended = Vp8PayloadDescriptor.parse(
        bytes([first_byte | 0x80, 0xF0, 0x80, 0x01, 0x02, 0x03]) + vp8_header
    )
    assert extended.keyframe is keyframe
    assert extended.size == 6


def test_descriptor_only_payloads_outside_partition_0_start_are_valid() -> None:
    for first in (0x00, 0x11, 0x20, 0x07):
        d = Vp8PayloadDescriptor.parse(bytes([first]))
        assert d.size == 1
        assert d.keyframe is False
    d = Vp8PayloadDescriptor.parse(b"\x80\x80\x05")  # S=0, PictureID 5, nothing after
    assert (d.size, d.picture_id, d.keyframe) == (3, 5, False)


# --- malformed payloads (fixtures written by tests/fixtures/make_vp8_fixtures.py) ----------------

MALFORMED = [
    ("empty", "VP8 payload is empty (0 bytes)"),
    (
        "x_without_extension_byte",
        "VP8 payload descriptor has X set but no extension byte (1 bytes)",
    ),
    ("picture_id_truncated_7bit", "VP8 payload descriptor PictureID is truncated (2 bytes)"),
    ("picture_id_truncated_15bit", "VP8 payload descriptor PictureID is truncated (3 bytes)"),
    ("tl0picidx_truncated", "VP8 payload descriptor TL0PICIDX is truncated (3 bytes)"),
    ("tid_truncated", "VP8 payload descriptor TID/KEYIDX byte is truncated (5 bytes)"),
    ("keyidx_truncated", "VP8 payload descriptor TID/KEYIDX byte is truncated (2 bytes)"),
    (
        "no_payload_header",
        "VP8 payload has no data after the descriptor at the start of partition 0 (1 bytes)",
    ),
    (
        "no_payload_header_extended",
        "VP8 payload has no data after the descriptor at the start of partition 0 (6 bytes)",
    ),
]


@pytest.mark.parametrize(("case", "message"), MALFORMED, ids=[c for c, _ in MALFORMED])
def test_malformed_fixture_is_rejected(case: str, message: str) -> None:
    data = fixture_bytes(f"vp8_{case}.bin")
    for kind in (bytes, bytearray, memoryview):
        with pytest.raises(ValueError, match=exact(message)):
            Vp8PayloadDescriptor.parse(kind(data))
    buf = bytearray(data)
    with pytest.raises(ValueError, match=exact(message)):
        vp8_rewrite(buf, picture_id=1)
    assert buf == data


def test_parse_rejects_non_bytes() -> None:
    with pytest.raises(TypeError, match=exact("expected bytes-like payload, got str")):
        Vp8PayloadDescriptor.parse("\x10\x00")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"partition_index": 8}, "VP8 partition index 8 is outside 0..7"),
        ({"partition_index": -1}, "VP8 partition index -1 is outside 0..7"),
        ({"picture_id": 0x8000}, "VP8 PictureID 32768 is outside 0..32767"),
        ({"picture_id": -1}, "VP8 PictureID -1 is outside 0..32767"),
        ({"picture_id": 128, "picture_id_15bit": False}, "VP8 PictureID 128 is outside 0..127"),
        ({"tl0picidx": 256}, "VP8 TL0PICIDX 256 is outside 0..255"),
        ({"tl0picidx": -1}, "VP8 TL0PICIDX -1 is outside 0..255"),
        ({"tid": 4}, "VP8 TID 4 / KEYIDX 0 is outside 0..3 / 0..31"),
        ({"keyidx": 32}, "VP8 TID 0 / KEYIDX 32 is outside 0..3 / 0..31"),
        ({"tid": 1, "keyidx": -1}, "VP8 TID 1 / KEYIDX -1 is outside 0..3 / 0..31"),
    ],
)
def test_build_rejects_invalid_fields(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=exact(message)):
        Vp8PayloadDescriptor.build(**kwargs)


# --- vp8_rewrite ---------------------------------------------------------------------------------


def changed_offsets(before: bytes, after: bytes) -> set[int]:
    assert len(before) == len(after)
    return {i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b}


@pytest.mark.parametrize(
    ("fifteen_bit", "old", "new", "offsets", "encoded"),
    [
        (False, 0x12, 0x7F, {2}, b"\x7f"),
        (False, 0x7F, 0x00, {2}, b"\x00"),
        (True, 0x1234, 0x7FFF, {2, 3}, b"\xff\xff"),
        (True, 0x1234, 0x1299, {3}, b"\x92\x99"),
        (True, 0x7FFF, 0x0001, {2, 3}, b"\x80\x01"),  # the M bit stays set
        (True, 0x1234, 0x0034, {2}, b"\x80\x34"),
    ],
)
def test_rewrite_picture_id_keeps_its_width(
    fifteen_bit: bool, old: int, new: int, offsets: set[int], encoded: bytes
) -> None:
    descriptor = Vp8PayloadDescriptor.build(
        picture_id=old, picture_id_15bit=fifteen_bit, tl0picidx=9, tid=2, keyidx=3
    )
    payload = bytearray(descriptor + KEY + b"frame")
    before = bytes(payload)
    vp8_rewrite(payload, picture_id=new)
    assert len(payload) == len(before)
    assert changed_offsets(before, bytes(payload)) == offsets
    assert payload[2 : 2 + len(encoded)] == encoded
    parsed = Vp8PayloadDescriptor.parse(payload)
    assert parsed.picture_id == new
    assert parsed.picture_id_15bit is fifteen_bit
    assert parsed.size == len(descriptor)
    assert (parsed.tl0picidx, parsed.tid, parsed.keyidx, parsed.keyframe) == (9, 2, 3, True)


@pytest.mark.parametrize("fifteen_bit", [False, True])
def test_rewrite_tl0picidx(fifteen_bit: bool) -> None:
    descriptor = Vp8PayloadDescriptor.build(
        picture_id=100, picture_id_15bit=fifteen_bit, tl0picidx=7, keyidx=1
    )
    payload = bytearray(descriptor + INTER + b"frame")
    before = bytes(payload)
    vp8_rewrite(payload, tl0picidx=0xAB)
    offset = 4 if fifteen_bit else 3
    assert changed_offsets(before, bytes(payload)) == {offset}
    assert payload[offset] == 0xAB
    parsed = Vp8PayloadDescriptor.parse(payload)
    assert (parsed.picture_id, parsed.tl0picidx, parsed.keyidx) == (100, 0xAB, 1)


def test_rewrite_both_fields() -> None:
    payload = bytearray(Vp8PayloadDescriptor.build(picture_id=1, tl0picidx=2) + KEY)
    vp8_rewrite(payload, picture_id=0x4321, tl0picidx=0x99)
    assert bytes(payload) == b"\x90\xc0\xc3\x21\x99" + KEY


def test_rewrite_without_fields_changes_nothing() -> None:
    payload = bytearray(Vp8PayloadDescriptor.build(picture_id=1) + KEY)
    before = bytes(payload)
    vp8_rewrite(payload)
    assert payload == before
    plain = bytearray(b"\x10" + KEY)
    vp8_rewrite(plain)
    assert plain == b"\x10" + KEY


@pytest.mark.parametrize(
    ("descriptor_kwargs", "rewrite", "message"),
    [
        ({}, {"picture_id": 1}, "VP8 payload descriptor has no PictureID to rewrite"),
        ({}, {"tl0picidx": 1}, "VP8 payload descriptor has no TL0PICIDX to rewrite"),
        (
            {"tl0picidx": 3, "tid": 1},
            {"picture_id": 1},
            "VP8 payload descriptor has no PictureID to rewrite",
        ),
        (
            {"picture_id": 3, "keyidx": 1},
            {"tl0picidx": 1},
            "VP8 payload descriptor has no TL0PICIDX to rewrite",
        ),
        # a valid PictureID is not written when the TL0PICIDX half of the call fails
        (
            {"picture_id": 3},
            {"picture_id": 4, "tl0picidx": 1},
            "VP8 payload descriptor has no TL0PICIDX to rewrite",
        ),
        (
            {"picture_id": 3, "tl0picidx": 1},
            {"picture_id": 4, "tl0picidx": 256},
            "VP8 TL0PICIDX 256 is outside 0..255",
        ),
        (
            {"picture_id": 3, "picture_id_15bit": False},
            {"picture_id": 128},
            "VP8 PictureID 128 is outside 0..127",
        ),
        ({"picture_id": 3}, {"picture_id": 0x8000}, "VP8 PictureID 32768 is outside 0..32767"),
        ({"picture_id": 3}, {"picture_id": -1}, "VP8 PictureID -1 is outside 0..32767"),
        ({"tl0picidx": 3}, {"tl0picidx": -1}, "VP8 TL0PICIDX -1 is outside 0..255"),
    ],
)
def test_rewrite_errors_leave_the_payload_unchanged(
    descriptor_kwargs: dict[str, Any], rewrite: dict[str, int], message: str
) -> None:
    payload = bytearray(Vp8PayloadDescriptor.build(**descriptor_kwargs) + KEY + b"frame")
    before = bytes(payload)
    with pytest.raises(ValueError, match=exact(message)):
        vp8_rewrite(payload, **rewrite)
    assert payload == before


def test_rewrite_needs_a_bytearray() -> None:
    with pytest.raises(TypeError):
        vp8_rewrite(b"\x90\x80\x05" + KEY, picture_id=1)  # type: ignore[arg-type]


# --- interop with aiortc -------------------------------------------------------------------------

AIORTC_SHAPES: list[dict[str, Any]] = [
    {"partition_start": 1, "partition_id": 0},
    {"partition_start": 0, "partition_id": 3},
    {"partition_start": 1, "partition_id": 0, "picture_id": 0},
    {"partition_start": 1, "partition_id": 0, "picture_id": 0x7FFF},
    {"partition_start": 0, "partition_id": 0, "picture_id": 4660, "tl0picidx": 17},
    {"partition_start": 1, "partition_id": 0, "tid": (2, 1)},
    {"partition_start": 1, "partition_id": 0, "keyidx": 31},
    {"partition_start": 1, "partition_id": 1, "tid": (3, 0), "keyidx": 5},
    {
        "partition_start": 1,
        "partition_id": 0,
        "picture_id": 321,
        "tl0picidx": 255,
        "tid": (1, 1),
        "keyidx": 0,
    },
]


def assert_same_as_aiortc(ours: Vp8PayloadDescriptor, theirs: VpxPayloadDescriptor) -> None:
    assert ours.start_of_partition is bool(theirs.partition_start)
    assert ours.partition_index == theirs.partition_id
    assert ours.picture_id == theirs.picture_id
    assert ours.tl0picidx == theirs.tl0picidx
    if theirs.tid is None:
        assert ours.tid is None
    else:
        assert (ours.tid, ours.layer_sync) == (theirs.tid[0], bool(theirs.tid[1]))
    assert ours.keyidx == theirs.keyidx


@pytest.mark.parametrize("fields", AIORTC_SHAPES)
def test_aiortc_descriptors_parse_to_the_same_fields(fields: dict[str, Any]) -> None:
    theirs = VpxPayloadDescriptor(**fields)
    data = bytes(theirs) + KEY
    ours = Vp8PayloadDescriptor.parse(data)
    assert_same_as_aiortc(ours, theirs)
    assert ours.size == len(bytes(theirs))
    if fields.get("picture_id") is not None:
        assert ours.picture_id_15bit  # aiortc always writes the 15-bit form
    # and our build of the parsed fields is the same bytes aiortc wrote
    assert Vp8PayloadDescriptor.build(**build_kwargs(ours)) == bytes(theirs)


@pytest.mark.parametrize("fields", AIORTC_SHAPES)
@pytest.mark.parametrize("fifteen_bit", [True, False])
def test_our_descriptors_parse_in_aiortc_to_the_same_fields(
    fields: dict[str, Any], fifteen_bit: bool
) -> None:
    tid = fields.get("tid")
    picture_id = fields.get("picture_id")
    if picture_id is not None and not fifteen_bit:
        picture_id &= 0x7F
    descriptor = Vp8PayloadDescriptor.build(
        start_of_partition=bool(fields["partition_start"]),
        partition_index=fields["partition_id"],
        picture_id=picture_id,
        picture_id_15bit=fifteen_bit,
        tl0picidx=fields.get("tl0picidx"),
        tid=None if tid is None else tid[0],
        layer_sync=False if tid is None else bool(tid[1]),
        keyidx=fields.get("keyidx"),
    )
    theirs, rest = VpxPayloadDescriptor.parse(descriptor + KEY)
    assert rest == KEY
    assert_same_as_aiortc(Vp8PayloadDescriptor.parse(descriptor + KEY), theirs)


@st.composite
def aiortc_descriptors(draw: st.DrawFn) -> VpxPayloadDescriptor:
    return VpxPayloadDescriptor(
        partition_start=draw(st.integers(0, 1)),
        partition_id=draw(st.integers(0, 7)),
        picture_id=draw(st.none() | st.integers(0, 0x7FFF)),
        tl0picidx=draw(st.none() | st.integers(0, 255)),
        tid=draw(st.none() | st.tuples(st.integers(0, 3), st.integers(0, 1))),
        keyidx=draw(st.none() | st.integers(0, 31)),
    )


@settings(max_examples=300, deadline=None)
@given(aiortc_descriptors(), st.sampled_from([KEY, INTER]))
def test_aiortc_interop_property(theirs: VpxPayloadDescriptor, vp8_header: bytes) -> None:
    data = bytes(theirs) + vp8_header
    ours = Vp8PayloadDescriptor.parse(data)
    assert_same_as_aiortc(ours, theirs)
    assert ours.keyframe is (
        theirs.partition_start == 1 and theirs.partition_id == 0 and vp8_header == KEY
    )
    rebuilt = Vp8PayloadDescriptor.build(**build_kwargs(ours))
    assert rebuilt == bytes(theirs)
    back, rest = VpxPayloadDescriptor.parse(rebuilt + vp8_header)
    assert rest == vp8_header
    assert_same_as_aiortc(ours, back)


def test_real_vp8_stream_keyframes() -> None:
    """Encode a few frames with libvpx (aiortc's Vp8Encoder): only the first packet of a key
    frame is detected as a keyframe."""
    encoder = Vp8Encoder()
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    frames: list[list[bytes]] = []
    for index in range(4):
        frame = av.VideoFrame.from_ndarray(np.roll(image, 4 * index, axis=1), format="rgb24")
        frame.pts = index * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=index == 3)
        frames.append(payloads)

    for index, payloads in enumerate(frames):
        assert payloads
        parsed = [Vp8PayloadDescriptor.parse(p) for p in payloads]
        expected_keyframe = index in (0, 3)
        assert [d.keyframe for d in parsed] == [expected_keyframe] + [False] * (len(parsed) - 1)
        assert [d.start_of_partition for d in parsed] == [True] + [False] * (len(parsed) - 1)
        picture_ids = {d.picture_id for d in parsed}
        assert len(picture_ids) == 1
        for payload, d in zip(payloads, parsed, strict=True):
            theirs, rest = VpxPayloadDescriptor.parse(payload)
            assert_same_as_aiortc(d, theirs)
            assert payload[d.size :] == rest
        # rewriting the PictureID of a real packet keeps everything else
        first = bytearray(payloads[0])
        vp8_rewrite(first, picture_id=(parsed[0].picture_id or 0) ^ 0x5555)
        assert first[parsed[0].size :] == payloads[0][parsed[0].size :]
        assert first[:2] == payloads[0][:2]
        assert Vp8PayloadDescriptor.parse(first).keyframe is expected_keyframe


# --- property-based ------------------------------------------------------------------------------


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=12),
        st.builds(
            lambda b, rest: bytes([b | 0x80]) + rest, st.integers(0, 255), st.binary(max_size=8)
        ),
    )
)
def test_any_bytes_parse_or_raise_value_error(data: bytes) -> None:
    try:
        d = Vp8PayloadDescriptor.parse(data)
    except ValueError:
        buf = bytearray(data)
        with pytest.raises(ValueError):
            vp8_rewrite(buf, picture_id=0)
        assert buf == data
        return
    assert 1 <= d.size <= len(data)
    assert d.non_reference is bool(data[0] & 0x20)
    assert d.start_of_partition is bool(data[0] & 0x10)
    assert d.partition_index == data[0] & 0x07
    if not data[0] & 0x80:
        assert d.size == 1
        assert (d.picture_id, d.tl0picidx, d.tid, d.keyidx) == (None, None, None, None)
    if d.start_of_partition and d.partition_index == 0:
        assert d.size < len(data)
        assert d.keyframe is (data[d.size] & 1 == 0)
    else:
        assert d.keyframe is False
    if d.picture_id is not None:
        assert d.picture_id <= (0x7FFF if d.picture_id_15bit else 0x7F)
    # the parsed fields rebuild the same descriptor, minus reserved bits, an extension byte with
    # no flags, and the bits of an absent TID or KEYIDX
    expected = bytearray([data[0] & 0x37])
    if data[0] & 0x80 and data[1] & 0xF0:
        ext = data[1] & 0xF0
        expected[0] |= 0x80
        expected.append(ext)
        expected += data[2 : d.size]
        if ext & 0x30:
            expected[-1] &= 0x20 | (0xC0 if ext & 0x20 else 0) | (0x1F if ext & 0x10 else 0)
    assert Vp8PayloadDescriptor.build(**build_kwargs(d)) == bytes(expected)
    # rewriting present fields changes exactly their bytes
    buf = bytearray(data)
    if d.picture_id is not None:
        vp8_rewrite(buf, picture_id=0)
        assert Vp8PayloadDescriptor.parse(buf).picture_id == 0
    if d.tl0picidx is not None:
        vp8_rewrite(buf, tl0picidx=0xFF - d.tl0picidx)
        assert Vp8PayloadDescriptor.parse(buf).tl0picidx == 0xFF - d.tl0picidx
    assert len(buf) == len(data)
    assert buf[d.size :] == data[d.size :]


@settings(max_examples=500, deadline=None)
@given(
    non_reference=st.booleans(),
    start_of_partition=st.booleans(),
    partition_index=st.integers(0, 7),
    picture_id=st.none() | st.integers(0, 0x7FFF),
    picture_id_15bit=st.booleans(),
    tl0picidx=st.none() | st.integers(0, 255),
    tid=st.none() | st.integers(0, 3),
    layer_sync=st.booleans(),
    keyidx=st.none() | st.integers(0, 31),
    vp8_header=st.sampled_from([KEY, INTER]),
)
def test_valid_fields_round_trip(
    non_reference: bool,
    start_of_partition: bool,
    partition_index: int,
    picture_id: int | None,
    picture_id_15bit: bool,
    tl0picidx: int | None,
    tid: int | None,
    layer_sync: bool,
    keyidx: int | None,
    vp8_header: bytes,
) -> None:
    if picture_id is not None and not picture_id_15bit:
        picture_id &= 0x7F
    kwargs: dict[str, Any] = {
        "non_reference": non_reference,
        "start_of_partition": start_of_partition,
        "partition_index": partition_index,
        "picture_id": picture_id,
        "picture_id_15bit": picture_id_15bit,
        "tl0picidx": tl0picidx,
        "tid": tid,
        "layer_sync": layer_sync,
        "keyidx": keyidx,
    }
    descriptor = Vp8PayloadDescriptor.build(**kwargs)
    parsed = Vp8PayloadDescriptor.parse(descriptor + vp8_header)
    keyframe = start_of_partition and partition_index == 0 and vp8_header == KEY
    assert descriptor_fields(parsed) == expected_fields(kwargs, len(descriptor), keyframe)
    assert Vp8PayloadDescriptor.build(**build_kwargs(parsed)) == descriptor
