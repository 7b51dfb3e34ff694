"""RtpPacket (cext/rtp.pyx): parse, build, in-place rewrites, extension readers, aiortc interop."""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiortc import rtp as aiortc_rtp
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from conftest import fixture_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediasrv._core import RtpPacket

ONE_BYTE = 0xBEDE
TWO_BYTE = 0x1000
U32_MAX = 0xFFFFFFFF


def exact(message: str) -> str:
    """A pytest.raises(match=...) pattern that matches exactly this message."""
    return f"^{re.escape(message)}$"


# --- an independent reference encoder (plain struct, no cext) ------------------------------------


def pack_elements(profile: int, elements: Sequence[tuple[int, bytes]]) -> bytes:
    """The extension block body (with zero padding to 32 bits) for one-/two-byte profiles."""
    body = b""
    for ext_id, data in elements:
        if profile == ONE_BYTE:
            body += bytes([(ext_id << 4) | (len(data) - 1)]) + data
        elif profile & 0xFFF0 == TWO_BYTE:
            body += bytes([ext_id, len(data)]) + data
        else:
            body += data  # opaque: the block itself
    return body + bytes(-len(body) % 4)


def reference_packet(
    *,
    payload_type: int,
    sequence_number: int,
    timestamp: int,
    ssrc: int,
    marker: bool = False,
    csrcs: Sequence[int] = (),
    extension_profile: int | None = None,
    extensions: Sequence[tuple[int, bytes]] = (),
    payload: bytes = b"",
    padding_size: int = 0,
) -> bytes:
    has_extension = extension_profile is not None
    out = struct.pack(
        "!BBHII",
        0x80 | (0x20 if padding_size else 0) | (0x10 if has_extension else 0) | len(csrcs),
        (0x80 if marker else 0) | payload_type,
        sequence_number,
        timestamp,
        ssrc,
    )
    out += b"".join(struct.pack("!I", c) for c in csrcs)
    if extension_profile is not None:
        body = pack_elements(extension_profile, extensions)
        out += struct.pack("!HH", extension_profile, len(body) // 4) + body
    out += payload
    if padding_size:
        out += bytes(padding_size - 1) + bytes([padding_size])
    return out


def raw_block_packet(profile: int, body: bytes, payload: bytes = b"") -> bytes:
    """A packet with X set whose extension block is exactly body (a multiple of 4 bytes)."""
    assert len(body) % 4 == 0
    return (
        reference_packet(**BASE, extension_profile=0xABCD, extensions=[(0, b"")])[:12]
        + struct.pack("!HH", profile, len(body) // 4)
        + body
        + payload
    )


def fields(packet: RtpPacket) -> dict[str, object]:
    """Every observable field of a packet."""
    return {
        "version": packet.version,
        "padding": packet.padding,
        "extension": packet.extension,
        "marker": packet.marker,
        "payload_type": packet.payload_type,
        "sequence_number": packet.sequence_number,
        "timestamp": packet.timestamp,
        "ssrc": packet.ssrc,
        "csrcs": packet.csrcs,
        "extension_profile": packet.extension_profile,
        "extensions": packet.extensions,
        "payload": packet.payload,
        "payload_offset": packet.payload_offset,
        "padding_size": packet.padding_size,
        "length": len(packet),
    }


def assert_reparses_identically(packet: RtpPacket) -> RtpPacket:
    data = packet.serialize()
    assert bytes(packet) == data
    again = RtpPacket.parse(data)
    assert fields(again) == fields(packet)
    assert again.serialize() == data
    assert again == packet
    assert hash(again) == hash(packet)
    return again


# --- round trips ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    kwargs: dict[str, Any]
    profile: int | None = None  # the extension profile the packet must end up with


BASE: dict[str, Any] = {
    "payload_type": 96,
    "sequence_number": 1000,
    "timestamp": 123456,
    "ssrc": 0x11223344,
}
MAX_CSRCS = [U32_MAX] * 15
MAX_ELEMENTS = [(240 + i, bytes([i]) * 255) for i in range(16)]

ROUND_TRIP_CASES = [
    Case("plain", {**BASE, "payload": b"hello"}),
    Case("marker", {**BASE, "marker": True, "payload": b"\x00\x01"}),
    Case("empty_payload", {**BASE}),
    Case("csrcs", {**BASE, "csrcs": [1, 2, U32_MAX], "payload": b"mixed"}),
    Case(
        "one_byte_extensions",
        {**BASE, "extensions": [(1, b"a"), (3, b"\x01\x02"), (14, bytes(range(16)))]},
        ONE_BYTE,
    ),
    Case("two_byte_id_15", {**BASE, "extensions": [(15, b"x"), (1, b"y")]}, TWO_BYTE),
    Case("two_byte_id_255", {**BASE, "extensions": [(255, b"last")]}, TWO_BYTE),
    Case("two_byte_empty_element", {**BASE, "extensions": [(2, b""), (3, b"abc")]}, TWO_BYTE),
    Case("two_byte_17_bytes", {**BASE, "extensions": [(4, bytes(17)), (5, b"z")]}, TWO_BYTE),
    Case(
        "two_byte_forced_profile",
        {**BASE, "extensions": [(1, b"a"), (2, b"bc")], "extension_profile": TWO_BYTE},
        TWO_BYTE,
    ),
    Case(
        "two_byte_appbits",
        {**BASE, "extensions": [(1, b"a"), (20, b"")], "extension_profile": 0x1003},
        0x1003,
    ),
    Case("empty_one_byte_block", {**BASE, "extension_profile": ONE_BYTE}, ONE_BYTE),
    Case(
        "opaque_profile",
        {**BASE, "extension_profile": 0xABCD, "extensions": [(0, bytes(range(8)))]},
        0xABCD,
    ),
    Case("opaque_profile_zero", {**BASE, "extension_profile": 0, "extensions": [(0, b"")]}, 0),
    Case("padding", {**BASE, "payload": b"data", "padding_size": 4}),
    Case("padding_1", {**BASE, "payload": b"data", "padding_size": 1}),
    Case("padding_only_rtx_probe", {**BASE, "payload": b"", "padding_size": 255}),
    Case(
        "everything",
        {
            **BASE,
            "marker": True,
            "csrcs": [7, 8],
            "extensions": [(1, b"m"), (2, b"\x80\x00")],
            "payload": b"payload",
            "padding_size": 3,
        },
        ONE_BYTE,
    ),
    Case(
        "max_values",
        {
            "payload_type": 127,
            "sequence_number": 0xFFFF,
            "timestamp": U32_MAX,
            "ssrc": U32_MAX,
            "marker": True,
            "csrcs": MAX_CSRCS,
            "extensions": MAX_ELEMENTS,
            "payload": bytes(range(256)) * 4,
            "padding_size": 255,
        },
        TWO_BYTE,
    ),
    Case(
        "min_values",
        {"payload_type": 0, "sequence_number": 0, "timestamp": 0, "ssrc": 0, "csrcs": [0]},
    ),
]


@pytest.mark.parametrize("case", ROUND_TRIP_CASES, ids=lambda c: c.name)
def test_build_serialize_parse_round_trip(case: Case) -> None:
    kwargs = case.kwargs
    packet = RtpPacket.build(**kwargs)

    assert packet.version == 2
    assert packet.payload_type == kwargs["payload_type"]
    assert packet.sequence_number == kwargs["sequence_number"]
    assert packet.timestamp == kwargs["timestamp"]
    assert packet.ssrc == kwargs["ssrc"]
    assert packet.marker is kwargs.get("marker", False)
    assert packet.csrcs == list(kwargs.get("csrcs", []))
    assert packet.payload == kwargs.get("payload", b"")
    assert packet.padding_size == kwargs.get("padding_size", 0)
    assert packet.padding is (kwargs.get("padding_size", 0) > 0)
    assert packet.extension is (case.profile is not None)
    assert packet.extension_profile == case.profile
    assert packet.extensions == list(kwargs.get("extensions", []))
    for ext_id, data in kwargs.get("extensions", []):
        if ext_id:
            assert packet.get_extension(ext_id) == data

    # the bytes are exactly what an independent encoder produces
    expected = reference_packet(
        **{k: v for k, v in kwargs.items() if k != "extension_profile"},
        extension_profile=case.profile,
    )
    assert packet.serialize() == expected
    assert len(packet) == len(expected)
    assert packet.payload_offset == len(expected) - len(packet.payload) - packet.padding_size

    # build -> serialize -> parse gives every field back; parse -> serialize gives the bytes back
    assert_reparses_identically(packet)
    assert RtpPacket.parse(expected).serialize() == expected
    assert RtpPacket.parse(bytearray(expected)).serialize() == expected
    assert RtpPacket.parse(memoryview(expected)).serialize() == expected


def test_padding_only_packet_shape() -> None:
    probe = RtpPacket.build(**BASE, padding_size=255)
    data = probe.serialize()
    assert len(data) == 12 + 255
    assert data[0] & 0x20
    assert data[12:-1] == bytes(254)
    assert data[-1] == 255
    assert probe.payload == b""
    assert probe.payload_offset == 12


def test_sixteen_elements_is_the_limit() -> None:
    elements = [(1 + i % 14, bytes([i])) for i in range(16)]
    packet = RtpPacket.build(**BASE, extensions=elements)
    assert packet.extensions == elements
    with pytest.raises(
        ValueError, match=exact("RTP packet has more than 16 header extension elements")
    ):
        RtpPacket.build(**BASE, extensions=[*elements, (5, b"x")])


def test_padding_bytes_between_one_byte_elements_are_skipped() -> None:
    body = b"\x10a\x00\x00\x21bc\x00"
    data = raw_block_packet(ONE_BYTE, body)
    packet = RtpPacket.parse(data)
    assert packet.extensions == [(1, b"a"), (2, b"bc")]
    assert packet.serialize() == data


def test_one_byte_id_15_stops_processing() -> None:
    # element 1, then a reserved id-15 header whose length nibble would overrun the block, then
    # what would be element 2: processing stops at the 15, nothing after it is an element
    body = b"\x10a\xff\x20b\x00\x00\x00"
    data = raw_block_packet(ONE_BYTE, body)
    packet = RtpPacket.parse(data)
    assert packet.extensions == [(1, b"a")]
    assert packet.get_extension(2) is None
    assert packet.serialize() == data


def test_one_byte_id_0_with_a_length_stops_processing() -> None:
    # 0x00 is padding; 0x01 (id 0, 2 bytes) is not a valid element, and like libwebrtc the
    # parser stops there rather than listing an element with id 0
    body = b"\x10a\x01xy\x20b\x00"
    data = raw_block_packet(ONE_BYTE, body)
    packet = RtpPacket.parse(data)
    assert packet.extensions == [(1, b"a")]
    packet.remap_extension_ids({1: 3})
    assert packet.extensions == RtpPacket.parse(packet.serialize()).extensions == [(3, b"a")]


def test_two_byte_padding_bytes_are_skipped() -> None:
    body = b"\x00\x01\x00\x00\x14\x02hi\x00\x00\x00\x00"
    data = raw_block_packet(TWO_BYTE, body)
    packet = RtpPacket.parse(data)
    assert packet.extensions == [(1, b""), (20, b"hi")]


def test_elements_beyond_64_kib_are_indexed_correctly() -> None:
    # A two-byte block padded with zeros so that element 5's header sits at offset 65534 and its
    # data at 65536: element offsets must not be truncated to 16 bits (wrong data, and a remap
    # that blanked the element used to memset a negative length).
    body = bytes(65534 - 16) + b"\x05\x04abcd" + b"\x06\x02xy"
    body += bytes(-len(body) % 4)
    data = raw_block_packet(TWO_BYTE, body, payload=b"payload")
    packet = RtpPacket.parse(data)
    assert packet.extensions == [(5, b"abcd"), (6, b"xy")]
    assert packet.get_extension(5) == b"abcd"
    assert packet.set_transport_sequence_number(6, 0x0102) is True
    packet.remap_extension_ids({5: 0})
    assert len(packet) == len(data)
    assert packet.extensions == [(6, b"\x01\x02")]
    assert packet.payload == b"payload"
    assert_reparses_identically(packet)
    assert packet.serialize()[65534:65540] == bytes(6)


def test_get_extension_out_of_range_ids_are_absent() -> None:
    packet = RtpPacket.build(**BASE, extensions=[(1, b"a")])
    assert packet.get_extension(0) is None
    assert packet.get_extension(256) is None
    assert packet.get_extension(-1) is None
    assert packet.get_extension(2) is None


def test_repr_mentions_the_header_fields() -> None:
    packet = RtpPacket.build(**BASE, marker=True, payload=b"abc")
    assert repr(packet) == (
        "RtpPacket(pt=96, seq=1000, ts=123456, ssrc=0x11223344, marker=True, payload=3 bytes)"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"payload_type": 128}, "RTP payload type 128 is outside 0..127"),
        ({"payload_type": -1}, "RTP payload type -1 is outside 0..127"),
        ({"sequence_number": 65536}, "RTP sequence number 65536 is outside 0..65535"),
        ({"timestamp": 1 << 32}, "RTP timestamp 4294967296 is outside 0..4294967295"),
        ({"ssrc": -1}, "RTP SSRC -1 is outside 0..4294967295"),
        ({"csrcs": [1 << 32]}, "RTP CSRC 4294967296 is outside 0..4294967295"),
        ({"csrcs": [0] * 16}, "RTP packet can carry at most 15 CSRCs, got 16"),
        ({"padding_size": 256}, "RTP padding size 256 is outside 0..255"),
        ({"padding_size": -1}, "RTP padding size -1 is outside 0..255"),
        (
            {"extensions": [(15, b"x")], "extension_profile": ONE_BYTE},
            "RTP one-byte extension element needs id 1..14 and 1..16 bytes, got id 15 with 1 bytes",
        ),
        (
            {"extensions": [(1, b"")], "extension_profile": ONE_BYTE},
            "RTP one-byte extension element needs id 1..14 and 1..16 bytes, got id 1 with 0 bytes",
        ),
        (
            {"extensions": [(256, b"x")]},
            "RTP two-byte extension element needs id 1..255 and at most 255 bytes, "
            "got id 256 with 1 bytes",
        ),
        (
            {"extensions": [(0, b"x")]},
            "RTP two-byte extension element needs id 1..255 and at most 255 bytes, "
            "got id 0 with 1 bytes",
        ),
        (
            {"extensions": [(1, bytes(256))]},
            "RTP two-byte extension element needs id 1..255 and at most 255 bytes, "
            "got id 1 with 256 bytes",
        ),
        (
            {"extensions": [(1, b"abcd")], "extension_profile": 0xABCD},
            "an opaque RTP extension profile takes one (0, block) element",
        ),
        (
            {"extensions": [(0, b"abc")], "extension_profile": 0xABCD},
            "an opaque RTP extension block must be a multiple of 4 bytes",
        ),
        ({"extension_profile": 0x10000}, "RTP extension profile 65536 is outside 0..65535"),
    ],
)
def test_build_rejects_invalid_fields(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=exact(message)):
        RtpPacket.build(**{**BASE, **kwargs})


# --- malformed packets (fixtures written by tests/fixtures/make_rtp_fixtures.py) -----------------

MALFORMED = [
    ("too_short", "RTP packet length is less than 12 bytes (11 bytes)"),
    ("bad_version", "RTP packet has version 1, expected 2"),
    (
        "csrc_truncated",
        "RTP packet has 3 CSRCs (12 bytes) but only 8 bytes follow the fixed header",
    ),
    ("extension_header_truncated", "RTP header extension header is truncated (2 of 4 bytes)"),
    (
        "extension_length_overflow",
        "RTP header extension length (3 words) exceeds the 8 bytes left",
    ),
    (
        "one_byte_element_overrun",
        "RTP header extension element 3 of 6 bytes overruns the 8-byte extension block",
    ),
    ("two_byte_no_length", "RTP two-byte header extension element 7 has no length byte"),
    (
        "two_byte_element_overrun",
        "RTP header extension element 5 of 7 bytes overruns the 8-byte extension block",
    ),
    ("too_many_elements", "RTP packet has more than 16 header extension elements"),
    ("padding_zero", "RTP padding length is zero"),
    ("padding_overflow", "RTP padding length 5 exceeds the 3-byte payload"),
    ("padding_header_only", "RTP padding length 0 exceeds the 0-byte payload"),
]


@pytest.mark.parametrize(("case", "message"), MALFORMED, ids=[c for c, _ in MALFORMED])
def test_malformed_fixture_is_rejected(case: str, message: str) -> None:
    data = fixture_bytes(f"rtp_{case}.bin")
    with pytest.raises(ValueError, match=exact(message)):
        RtpPacket.parse(data)
    with pytest.raises(ValueError, match=exact(message)):
        RtpPacket.parse(bytearray(data))


def test_empty_packet_is_too_short() -> None:
    with pytest.raises(
        ValueError, match=exact("RTP packet length is less than 12 bytes (0 bytes)")
    ):
        RtpPacket.parse(b"")


def test_version_0_and_3_are_rejected() -> None:
    good = RtpPacket.build(**BASE).serialize()
    for version in (0, 1, 3):
        bad = bytes([(good[0] & 0x3F) | (version << 6)]) + good[1:]
        with pytest.raises(
            ValueError, match=exact(f"RTP packet has version {version}, expected 2")
        ):
            RtpPacket.parse(bad)


def test_parse_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        RtpPacket.parse("not bytes")  # type: ignore[arg-type]


# --- in-place rewrites ---------------------------------------------------------------------------


def changed_offsets(before: bytes, after: bytes) -> set[int]:
    assert len(before) == len(after)
    return {i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b}


REWRITE_SAMPLE: dict[str, Any] = {
    **BASE,
    "marker": True,
    "csrcs": [5],
    "extensions": [(1, b"\x01\x02")],
    "payload": b"payload bytes",
    "padding_size": 2,
}


@pytest.mark.parametrize(
    ("field_name", "value", "span", "encoded"),
    [
        ("ssrc", 0xCAFEBABE, range(8, 12), struct.pack("!I", 0xCAFEBABE)),
        ("sequence_number", 0xBEEF, range(2, 4), struct.pack("!H", 0xBEEF)),
        ("timestamp", 0x89ABCDEF, range(4, 8), struct.pack("!I", 0x89ABCDEF)),
        ("payload_type", 0x55, range(1, 2), bytes([0x80 | 0x55])),
    ],
)
def test_rewrite_changes_exactly_that_field(
    field_name: str, value: int, span: range, encoded: bytes
) -> None:
    packet = RtpPacket.build(**REWRITE_SAMPLE)
    before = packet.serialize()
    packet.rewrite(**{field_name: value})
    after = packet.serialize()

    assert changed_offsets(before, after) <= set(span)
    assert changed_offsets(before, after)  # every value above differs from the sample
    assert after[span.start : span.stop] == encoded
    assert after == before[: span.start] + encoded + before[span.stop :]
    assert getattr(packet, field_name) == value
    reparsed = assert_reparses_identically(packet)
    assert getattr(reparsed, field_name) == value
    assert reparsed.marker is True


@pytest.mark.parametrize("marker", [False, True])
def test_payload_type_change_keeps_the_marker(marker: bool) -> None:
    packet = RtpPacket.build(**{**BASE, "marker": marker, "payload_type": 127})
    packet.payload_type = 0
    assert packet.serialize()[1] == (0x80 if marker else 0)
    assert packet.marker is marker
    packet.rewrite(payload_type=100)
    assert packet.serialize()[1] == (0x80 if marker else 0) | 100
    assert RtpPacket.parse(packet.serialize()).marker is marker


def test_marker_setter_changes_only_the_marker_bit() -> None:
    packet = RtpPacket.build(**BASE, payload=b"x")
    before = packet.serialize()
    packet.marker = True
    after = packet.serialize()
    assert changed_offsets(before, after) == {1}
    assert after[1] == before[1] | 0x80
    assert packet.payload_type == 96
    packet.marker = False
    assert packet.serialize() == before


def test_rewrite_all_fields_at_once() -> None:
    packet = RtpPacket.build(**REWRITE_SAMPLE)
    before = packet.serialize()
    packet.rewrite(ssrc=1, sequence_number=2, timestamp=3, payload_type=4)
    after = packet.serialize()
    assert changed_offsets(before, after) <= set(range(1, 12))
    assert after[1:12] == bytes([0x84]) + struct.pack("!HII", 2, 3, 1)
    assert after[12:] == before[12:]
    assert (packet.ssrc, packet.sequence_number, packet.timestamp, packet.payload_type) == (
        1,
        2,
        3,
        4,
    )


def test_rewrite_with_nothing_changes_nothing() -> None:
    packet = RtpPacket.build(**REWRITE_SAMPLE)
    before = packet.serialize()
    packet.rewrite()
    assert packet.serialize() == before


def test_rewrite_max_values() -> None:
    packet = RtpPacket.build(**BASE)
    packet.rewrite(ssrc=U32_MAX, sequence_number=0xFFFF, timestamp=U32_MAX, payload_type=127)
    assert packet.serialize()[1:12] == b"\x7f" + b"\xff" * 10
    assert_reparses_identically(packet)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ssrc": 1 << 32}, "RTP SSRC 4294967296 is outside 0..4294967295"),
        ({"ssrc": -1}, "RTP SSRC -1 is outside 0..4294967295"),
        ({"timestamp": -5}, "RTP timestamp -5 is outside 0..4294967295"),
        ({"sequence_number": 65536}, "RTP sequence number 65536 is outside 0..65535"),
        ({"sequence_number": -1}, "RTP sequence number -1 is outside 0..65535"),
        ({"payload_type": 128}, "RTP payload type 128 is outside 0..127"),
    ],
)
def test_rewrite_rejects_out_of_range_values(kwargs: dict[str, int], message: str) -> None:
    packet = RtpPacket.build(**REWRITE_SAMPLE)
    before = packet.serialize()
    with pytest.raises(ValueError, match=exact(message)):
        packet.rewrite(**kwargs)
    assert packet.serialize() == before


# --- extension id remapping ----------------------------------------------------------------------


def test_remap_one_byte_ids() -> None:
    packet = RtpPacket.build(**BASE, extensions=[(1, b"a"), (2, b"bb"), (3, b"ccc")])
    before = packet.serialize()
    packet.remap_extension_ids({1: 5, 3: 14})
    after = packet.serialize()
    assert packet.extensions == [(5, b"a"), (2, b"bb"), (14, b"ccc")]
    assert len(after) == len(before)
    start = 16  # first element header
    assert changed_offsets(before, after) == {start, start + 5}
    assert after[start] == 0x50 and after[start + 5] == 0xE2
    assert_reparses_identically(packet)


def test_remap_swaps_ids() -> None:
    packet = RtpPacket.build(**BASE, extensions=[(1, b"a"), (2, b"bb")])
    packet.remap_extension_ids({1: 2, 2: 1})
    assert packet.extensions == [(2, b"a"), (1, b"bb")]
    assert packet.get_extension(1) == b"bb"
    assert_reparses_identically(packet)


def test_remap_one_byte_removal() -> None:
    packet = RtpPacket.build(
        **BASE, extensions=[(1, b"a"), (2, b"bb"), (3, b"ccc")], payload=b"payload"
    )
    before = packet.serialize()
    packet.remap_extension_ids({2: 0})
    after = packet.serialize()
    assert len(after) == len(before) == len(packet)
    assert packet.extensions == [(1, b"a"), (3, b"ccc")]
    assert packet.get_extension(2) is None
    assert packet.get_extension(3) == b"ccc"
    assert packet.payload == b"payload"
    # the element's header and data (3 bytes at 18..20) became padding, nothing else moved
    assert changed_offsets(before, after) == {18, 19, 20}
    assert after[18:21] == bytes(3)
    assert_reparses_identically(packet)


def test_remap_two_byte_ids_and_removal() -> None:
    packet = RtpPacket.build(
        **BASE, extensions=[(1, b""), (20, b"xy"), (3, b"abc")], payload=b"p", padding_size=2
    )
    assert packet.extension_profile == TWO_BYTE
    before = packet.serialize()
    packet.remap_extension_ids({20: 200, 3: 0})
    after = packet.serialize()
    assert packet.extensions == [(1, b""), (200, b"xy")]
    assert len(after) == len(before)
    # element 1 at 16..17, element 20 at 18..21, element 3 at 22..26
    assert after[18] == 200
    assert after[22:27] == bytes(5)
    assert changed_offsets(before, after) == {18} | {i for i in range(22, 27) if before[i]}
    assert packet.payload == b"p" and packet.padding_size == 2
    assert_reparses_identically(packet)


def test_remap_two_byte_removes_empty_element() -> None:
    packet = RtpPacket.build(**BASE, extensions=[(1, b""), (2, b"x")], extension_profile=TWO_BYTE)
    packet.remap_extension_ids({1: 0})
    assert packet.extensions == [(2, b"x")]
    assert packet.serialize()[16:18] == b"\x00\x00"
    assert_reparses_identically(packet)


def test_remap_two_byte_allows_large_ids() -> None:
    packet = RtpPacket.build(**BASE, extensions=[(1, b"a")], extension_profile=TWO_BYTE)
    packet.remap_extension_ids({1: 255})
    assert packet.extensions == [(255, b"a")]
    assert_reparses_identically(packet)


def test_remap_remove_everything() -> None:
    packet = RtpPacket.build(**BASE, extensions=[(1, b"a"), (2, b"bb")], payload=b"x")
    before = packet.serialize()
    packet.remap_extension_ids({1: 0, 2: 0})
    assert packet.extensions == []
    assert packet.extension is True
    assert len(packet) == len(before)
    assert packet.serialize()[16:20] == bytes(4)
    assert_reparses_identically(packet)


def test_remap_unknown_ids_and_opaque_profiles_change_nothing() -> None:
    packet = RtpPacket.build(**BASE, extensions=[(1, b"a")])
    before = packet.serialize()
    packet.remap_extension_ids({7: 3, 200: 0})
    assert packet.serialize() == before

    opaque = RtpPacket.build(**BASE, extension_profile=0xABCD, extensions=[(0, b"\x11" * 4)])
    before = opaque.serialize()
    opaque.remap_extension_ids({1: 0, 0x11: 2})
    assert opaque.serialize() == before

    plain = RtpPacket.build(**BASE)
    plain.remap_extension_ids({1: 0})
    assert plain.serialize() == RtpPacket.build(**BASE).serialize()


@pytest.mark.parametrize(
    ("two_byte", "mapping", "message"),
    [
        (False, {0: 1}, "RTP extension id 0 is outside 1..255"),
        (True, {0: 1}, "RTP extension id 0 is outside 1..255"),
        (False, {256: 1}, "RTP extension id 256 is outside 1..255"),
        (True, {-3: 1}, "RTP extension id -3 is outside 1..255"),
        (False, {1: 15}, "RTP one-byte extension id 15 is outside 1..14"),
        (False, {1: -1}, "RTP one-byte extension id -1 is outside 1..14"),
        (False, {1: 255}, "RTP one-byte extension id 255 is outside 1..14"),
        (True, {1: 256}, "RTP extension id 256 is outside 0..255"),
        (True, {1: -1}, "RTP extension id -1 is outside 0..255"),
        # a valid entry before the bad one is not applied either
        (False, {1: 2, 2: 15}, "RTP one-byte extension id 15 is outside 1..14"),
    ],
)
def test_remap_rejects_invalid_ids(two_byte: bool, mapping: dict[int, int], message: str) -> None:
    profile = TWO_BYTE if two_byte else ONE_BYTE
    packet = RtpPacket.build(**BASE, extensions=[(1, b"a"), (2, b"b")], extension_profile=profile)
    before = packet.serialize()
    with pytest.raises(ValueError, match=exact(message)):
        packet.remap_extension_ids(mapping)
    assert packet.serialize() == before
    assert packet.extensions == [(1, b"a"), (2, b"b")]


# --- typed extension readers ---------------------------------------------------------------------


def test_mid_and_rid() -> None:
    packet = RtpPacket.build(
        **BASE,
        extensions=[(1, b"0"), (2, b"hi\x00\x00"), (3, b"\xffab"), (4, b"a\x00b"), (5, b"\x00")],
    )
    assert packet.mid(1) == "0"
    assert packet.rid(2) == "hi"
    assert packet.mid(2) == "hi"
    assert packet.rid(4) == "a\x00b"  # only trailing NULs are padding
    assert packet.mid(5) == ""
    assert packet.mid(9) is None
    assert packet.rid(9) is None
    with pytest.raises(ValueError, match=exact("RTP MID extension is not ASCII: b'\\xffab'")):
        packet.mid(3)
    with pytest.raises(ValueError, match=exact("RTP RID extension is not ASCII: b'\\xffab'")):
        packet.rid(3)


def test_mid_in_two_byte_form() -> None:
    packet = RtpPacket.build(**BASE, extensions=[(20, b"video-main"), (21, b"")])
    assert packet.extension_profile == TWO_BYTE
    assert packet.mid(20) == "video-main"
    assert packet.rid(21) == ""


@pytest.mark.parametrize(
    ("byte", "expected"),
    [(0x00, (False, 0)), (0x7F, (False, 127)), (0x80, (True, 0)), (0x80 | 30, (True, 30))],
)
def test_audio_level(byte: int, expected: tuple[bool, int]) -> None:
    packet = RtpPacket.build(**BASE, extensions=[(1, bytes([byte]))])
    assert packet.audio_level(1) == expected
    assert packet.audio_level(2) is None


def test_abs_send_time_read_and_write() -> None:
    packet = RtpPacket.build(**BASE, extensions=[(2, b"\x01"), (3, b"\x12\x34\x56")], payload=b"p")
    assert packet.abs_send_time(3) == 0x123456
    assert packet.abs_send_time(4) is None
    before = packet.serialize()
    assert packet.set_abs_send_time(3, 0xABCDEF) is True
    after = packet.serialize()
    assert packet.abs_send_time(3) == 0xABCDEF
    value_at = 16 + 2 + 1  # block start, element 2, header of element 3
    assert changed_offsets(before, after) == set(range(value_at, value_at + 3))
    assert after[value_at : value_at + 3] == b"\xab\xcd\xef"
    assert packet.set_abs_send_time(4, 1) is False
    assert packet.serialize() == after
    assert packet.set_abs_send_time(3, 0xFFFFFF) is True
    assert RtpPacket.parse(packet.serialize()).abs_send_time(3) == 0xFFFFFF


def test_transport_sequence_number_read_and_write() -> None:
    packet = RtpPacket.build(**BASE, extensions=[(5, b"\xff\xfe")], payload=b"p")
    assert packet.transport_sequence_number(5) == 0xFFFE
    assert packet.transport_sequence_number(6) is None
    before = packet.serialize()
    assert packet.set_transport_sequence_number(5, 0x0102) is True
    after = packet.serialize()
    assert changed_offsets(before, after) == {17, 18}
    assert after[17:19] == b"\x01\x02"
    assert packet.transport_sequence_number(5) == 0x0102
    assert RtpPacket.parse(after).transport_sequence_number(5) == 0x0102
    assert packet.set_transport_sequence_number(6, 1) is False
    assert packet.serialize() == after


def test_transport_sequence_number_in_two_byte_form() -> None:
    packet = RtpPacket.build(**BASE, extensions=[(100, b"\x00\x07"), (1, b"")])
    assert packet.transport_sequence_number(100) == 7
    assert packet.set_transport_sequence_number(100, 65535)
    assert packet.get_extension(100) == b"\xff\xff"


@pytest.mark.parametrize(
    ("reader", "data", "message"),
    [
        ("audio_level", b"\x01\x02", "RTP audio level extension must be 1 byte"),
        ("abs_send_time", b"\x01\x02", "RTP abs-send-time extension must be 3 bytes"),
        ("abs_send_time", b"\x01\x02\x03\x04", "RTP abs-send-time extension must be 3 bytes"),
        (
            "transport_sequence_number",
            b"\x01",
            "RTP transport-wide sequence number extension must be 2 bytes",
        ),
        (
            "transport_sequence_number",
            b"\x01\x02\x03",
            "RTP transport-wide sequence number extension must be 2 bytes",
        ),
    ],
)
def test_readers_reject_wrong_sizes(reader: str, data: bytes, message: str) -> None:
    packet = RtpPacket.build(**BASE, extensions=[(7, data)])
    with pytest.raises(ValueError, match=exact(message)):
        getattr(packet, reader)(7)


def test_audio_level_of_empty_two_byte_element() -> None:
    packet = RtpPacket.build(**BASE, extensions=[(7, b"")])
    with pytest.raises(ValueError, match=exact("RTP audio level extension must be 1 byte")):
        packet.audio_level(7)


def test_writers_reject_wrong_sizes_and_values() -> None:
    packet = RtpPacket.build(**BASE, extensions=[(7, b"\x01"), (8, b"\x00\x01"), (9, b"abc")])
    before = packet.serialize()
    with pytest.raises(
        ValueError, match=exact("RTP transport-wide sequence number extension must be 2 bytes")
    ):
        packet.set_transport_sequence_number(7, 1)
    with pytest.raises(ValueError, match=exact("RTP abs-send-time extension must be 3 bytes")):
        packet.set_abs_send_time(8, 1)
    with pytest.raises(
        ValueError, match=exact("transport-wide sequence number 65536 is outside 0..65535")
    ):
        packet.set_transport_sequence_number(8, 65536)
    with pytest.raises(
        ValueError, match=exact("transport-wide sequence number -1 is outside 0..65535")
    ):
        packet.set_transport_sequence_number(8, -1)
    with pytest.raises(ValueError, match=exact("abs-send-time 16777216 is outside 0..16777215")):
        packet.set_abs_send_time(9, 1 << 24)
    with pytest.raises(ValueError, match=exact("RTP abs-send-time -1 is outside 0..4294967295")):
        packet.set_abs_send_time(9, -1)
    assert packet.serialize() == before


@pytest.mark.parametrize("ext_id", [0, 256, -1])
def test_readers_reject_invalid_ids(ext_id: int) -> None:
    packet = RtpPacket.build(**BASE, extensions=[(1, b"\x01")])
    message = exact(f"RTP extension id {ext_id} is outside 1..255")
    with pytest.raises(ValueError, match=message):
        packet.audio_level(ext_id)
    with pytest.raises(ValueError, match=message):
        packet.abs_send_time(ext_id)
    with pytest.raises(ValueError, match=message):
        packet.transport_sequence_number(ext_id)
    with pytest.raises(ValueError, match=message):
        packet.set_transport_sequence_number(ext_id, 1)
    with pytest.raises(ValueError, match=message):
        packet.set_abs_send_time(ext_id, 1)


def test_readers_on_packets_without_extensions() -> None:
    for packet in (
        RtpPacket.build(**BASE),
        RtpPacket.build(**BASE, extension_profile=0xABCD, extensions=[(0, b"\x10\x01\x00\x00")]),
    ):
        assert packet.mid(1) is None
        assert packet.rid(1) is None
        assert packet.audio_level(1) is None
        assert packet.abs_send_time(1) is None
        assert packet.transport_sequence_number(1) is None
        assert packet.set_transport_sequence_number(1, 5) is False
        assert packet.set_abs_send_time(1, 5) is False


# --- interop with aiortc -------------------------------------------------------------------------

URIS = {
    "mid": "urn:ietf:params:rtp-hdrext:sdes:mid",
    "repaired_rtp_stream_id": "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
    "rtp_stream_id": "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "abs_send_time": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "audio_level": "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "transport_sequence_number": (
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
    ),
}
# aiortc serializes the extensions in this order
AIORTC_ORDER = list(URIS)


def extensions_map(ids: dict[str, int]) -> aiortc_rtp.HeaderExtensionsMap:
    extensions_map = aiortc_rtp.HeaderExtensionsMap()
    extensions_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=ext_id, uri=URIS[name])
                for name, ext_id in ids.items()
            ]
        )
    )
    return extensions_map


ONE_BYTE_IDS = {name: i + 1 for i, name in enumerate(AIORTC_ORDER)}  # 1..6
TWO_BYTE_IDS = {name: 20 + i for i, name in enumerate(AIORTC_ORDER)}  # 20..25
EXTENSION_VALUES: dict[str, Any] = {
    "mid": "audio0",
    "repaired_rtp_stream_id": "r0",
    "rtp_stream_id": "hi",
    "abs_send_time": 0x123456,
    "audio_level": (True, 42),
    "transport_sequence_number": 0xABCD,
}


def encode_extension(name: str, value: Any) -> bytes:
    if name in ("mid", "repaired_rtp_stream_id", "rtp_stream_id"):
        return str(value).encode("ascii")
    if name == "abs_send_time":
        return struct.pack("!I", value)[1:]
    if name == "audio_level":
        voice, level = value
        return bytes([(0x80 if voice else 0) | level])
    return struct.pack("!H", value)


def assert_extension_values(packet: RtpPacket, ids: dict[str, int], values: dict[str, Any]) -> None:
    assert packet.mid(ids["mid"]) == values.get("mid")
    assert packet.rid(ids["rtp_stream_id"]) == values.get("rtp_stream_id")
    assert packet.rid(ids["repaired_rtp_stream_id"]) == values.get("repaired_rtp_stream_id")
    assert packet.abs_send_time(ids["abs_send_time"]) == values.get("abs_send_time")
    assert packet.audio_level(ids["audio_level"]) == values.get("audio_level")
    assert packet.transport_sequence_number(ids["transport_sequence_number"]) == values.get(
        "transport_sequence_number"
    )


INTEROP_SHAPES: list[tuple[str, dict[str, Any]]] = [
    ("plain", {**BASE, "payload": b"hello"}),
    ("marker_csrcs", {**BASE, "marker": True, "csrcs": [1, U32_MAX], "payload": b"x" * 100}),
    ("padding", {**BASE, "payload": b"abc", "padding_size": 17}),
    (
        "max",
        {
            "payload_type": 127,
            "sequence_number": 0xFFFF,
            "timestamp": U32_MAX,
            "ssrc": U32_MAX,
            "marker": True,
            "csrcs": MAX_CSRCS,
            "payload": bytes(1200),
            "padding_size": 255,
        },
    ),
]
EXTENSION_SETS: list[tuple[str, dict[str, int] | None, list[str]]] = [
    ("no_extensions", None, []),
    ("one_byte_all", ONE_BYTE_IDS, AIORTC_ORDER),
    ("one_byte_some", ONE_BYTE_IDS, ["mid", "transport_sequence_number"]),
    ("two_byte_all", TWO_BYTE_IDS, AIORTC_ORDER),
]


def aiortc_packet(shape: dict[str, Any], names: list[str]) -> aiortc_rtp.RtpPacket:
    packet = aiortc_rtp.RtpPacket(
        payload_type=shape["payload_type"],
        marker=int(shape.get("marker", False)),
        sequence_number=shape["sequence_number"],
        timestamp=shape["timestamp"],
        ssrc=shape["ssrc"],
        payload=shape.get("payload", b""),
    )
    packet.csrc = list(shape.get("csrcs", []))
    packet.padding_size = shape.get("padding_size", 0)
    for name in names:
        setattr(packet.extensions, name, EXTENSION_VALUES[name])
    return packet


@pytest.mark.parametrize(
    ("shape_name", "shape"), INTEROP_SHAPES, ids=[s for s, _ in INTEROP_SHAPES]
)
@pytest.mark.parametrize(
    ("set_name", "ids", "names"), EXTENSION_SETS, ids=[s for s, _, _ in EXTENSION_SETS]
)
def test_aiortc_serialized_packets_parse_to_the_same_fields(
    shape_name: str,
    shape: dict[str, Any],
    set_name: str,
    ids: dict[str, int] | None,
    names: list[str],
) -> None:
    theirs = aiortc_packet(shape, names)
    data = theirs.serialize(extensions_map(ids or {}))
    ours = RtpPacket.parse(data)

    assert ours.version == theirs.version
    assert ours.marker is bool(theirs.marker)
    assert ours.payload_type == theirs.payload_type
    assert ours.sequence_number == theirs.sequence_number
    assert ours.timestamp == theirs.timestamp
    assert ours.ssrc == theirs.ssrc
    assert ours.csrcs == theirs.csrc
    assert ours.payload == theirs.payload
    assert ours.padding_size == theirs.padding_size
    assert ours.serialize() == data
    if ids is None:
        assert ours.extension is False
    else:
        assert ours.extension_profile == (ONE_BYTE if ids is ONE_BYTE_IDS else TWO_BYTE)
        assert [ext_id for ext_id, _ in ours.extensions] == [ids[n] for n in names]
        assert_extension_values(ours, ids, {n: EXTENSION_VALUES[n] for n in names})


@pytest.mark.parametrize(
    ("shape_name", "shape"), INTEROP_SHAPES, ids=[s for s, _ in INTEROP_SHAPES]
)
@pytest.mark.parametrize(
    ("set_name", "ids", "names"), EXTENSION_SETS, ids=[s for s, _, _ in EXTENSION_SETS]
)
def test_our_packets_parse_in_aiortc_to_the_same_fields(
    shape_name: str,
    shape: dict[str, Any],
    set_name: str,
    ids: dict[str, int] | None,
    names: list[str],
) -> None:
    elements = [(ids[n], encode_extension(n, EXTENSION_VALUES[n])) for n in names] if ids else []
    ours = RtpPacket.build(**shape, extensions=elements)
    amap = extensions_map(ids or {})
    theirs = aiortc_rtp.RtpPacket.parse(ours.serialize(), amap)

    assert theirs.version == 2
    assert bool(theirs.marker) is ours.marker
    assert theirs.payload_type == ours.payload_type
    assert theirs.sequence_number == ours.sequence_number
    assert theirs.timestamp == ours.timestamp
    assert theirs.ssrc == ours.ssrc
    assert theirs.csrc == ours.csrcs
    assert theirs.payload == ours.payload
    assert theirs.padding_size == ours.padding_size
    for name in AIORTC_ORDER:
        expected = EXTENSION_VALUES[name] if name in names else None
        assert getattr(theirs.extensions, name) == expected
    # aiortc writes random padding bytes; everything before the padding is byte-identical
    again = theirs.serialize(amap)
    padding = ours.padding_size
    assert len(again) == len(ours)
    assert again[: len(again) - padding] == ours.serialize()[: len(ours) - padding]
    if padding:
        assert again[-1] == padding


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 255), st.binary(max_size=40)), min_size=1, max_size=16
    ).filter(lambda elements: len({i for i, _ in elements}) == len(elements))
)
def test_extension_blocks_match_aiortc(elements: list[tuple[int, bytes]]) -> None:
    profile, value = aiortc_rtp.pack_header_extensions(elements)
    ours = RtpPacket.build(**BASE, extensions=elements, payload=b"p")
    assert ours.extension_profile == profile
    block = ours.serialize()[12 : ours.payload_offset]
    assert block == struct.pack("!HH", profile, len(value) // 4) + value
    assert aiortc_rtp.unpack_header_extensions(profile, value) == ours.extensions == elements


# --- property-based ------------------------------------------------------------------------------


def assert_consistent(data: bytes, packet: RtpPacket) -> None:
    assert packet.serialize() == data
    assert len(packet) == len(data)
    assert packet.payload_offset + len(packet.payload) + packet.padding_size == len(data)
    assert (
        packet.payload == data[packet.payload_offset : packet.payload_offset + len(packet.payload)]
    )
    assert data[0] >> 6 == 2
    assert packet.padding is bool(data[0] & 0x20)
    assert packet.extension is bool(data[0] & 0x10)
    assert len(packet.csrcs) == data[0] & 0x0F
    assert packet.marker is bool(data[1] & 0x80)
    assert packet.payload_type == data[1] & 0x7F
    assert (packet.sequence_number, packet.timestamp, packet.ssrc) == struct.unpack(
        "!HII", data[2:12]
    )
    if packet.padding:
        assert packet.padding_size == data[-1] > 0
    else:
        assert packet.padding_size == 0
    header_end = 12 + 4 * len(packet.csrcs)
    if packet.extension:
        profile, words = struct.unpack("!HH", data[header_end : header_end + 4])
        assert packet.extension_profile == profile
        assert packet.payload_offset == header_end + 4 + 4 * words
        indexed = profile == ONE_BYTE or profile & 0xFFF0 == TWO_BYTE
        assert len(packet.extensions) <= 16
        for ext_id, element in packet.extensions:
            if indexed:
                assert ext_id != 0
                assert packet.get_extension(ext_id) is not None
                assert element in data[header_end + 4 : packet.payload_offset]
            else:
                assert element == data[header_end + 4 : packet.payload_offset]
    else:
        assert packet.extension_profile is None
        assert packet.extensions == []
        assert packet.payload_offset == header_end


def rtp_like() -> st.SearchStrategy[bytes]:
    """Bytes that start like an RTP packet (version 2), to get past the first checks."""
    return st.builds(
        lambda first, rest: bytes([first]) + rest,
        st.integers(0x80, 0xBF),
        st.binary(max_size=120),
    )


def rtp_with_extension_block() -> st.SearchStrategy[bytes]:
    """A version-2 header with X set, a one- or two-byte profile and a random block."""
    return st.builds(
        lambda first, second, profile, block, words_delta, tail: (
            bytes([0x90 | (first & 0x2F), second])
            + bytes(10)
            + bytes(4 * (first & 0x0F))
            + struct.pack("!HH", profile, max(0, len(block) // 4 + words_delta))
            + block
            + tail
        ),
        st.integers(0, 0x2F),
        st.integers(0, 255),
        st.sampled_from([ONE_BYTE, TWO_BYTE, 0x1001, 0x100F, 0xABCD]),
        st.binary(max_size=80),
        st.integers(-1, 1),
        st.binary(max_size=20),
    )


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=100), rtp_like(), rtp_with_extension_block()))
def test_any_bytes_parse_or_raise_value_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except ValueError:
        return
    assert_consistent(data, packet)
    # removing every element keeps the packet's length and leaves no elements behind
    if packet.extension_profile == ONE_BYTE or (packet.extension_profile or 0) & 0xFFF0 == TWO_BYTE:
        packet.remap_extension_ids({ext_id: 0 for ext_id, _ in packet.extensions})
        assert len(packet) == len(data)
        assert packet.extensions == []
        assert RtpPacket.parse(packet.serialize()).extensions == []


@st.composite
def valid_fields(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["none", "one_byte", "two_byte", "opaque"]))
    kwargs: dict[str, Any] = {
        "payload_type": draw(st.integers(0, 127)),
        "sequence_number": draw(st.integers(0, 0xFFFF)),
        "timestamp": draw(st.integers(0, U32_MAX)),
        "ssrc": draw(st.integers(0, U32_MAX)),
        "marker": draw(st.booleans()),
        "csrcs": draw(st.lists(st.integers(0, U32_MAX), max_size=15)),
        "payload": draw(st.binary(max_size=64)),
        "padding_size": draw(st.integers(0, 255)),
    }
    if kind == "one_byte":
        kwargs["extensions"] = draw(
            st.lists(st.tuples(st.integers(1, 14), st.binary(min_size=1, max_size=16)), max_size=16)
        )
        kwargs["extension_profile"] = ONE_BYTE
    elif kind == "two_byte":
        kwargs["extensions"] = draw(
            st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=255)), max_size=16)
        )
        kwargs["extension_profile"] = TWO_BYTE | draw(st.integers(0, 15))
    elif kind == "opaque":
        words = draw(st.integers(0, 8))
        kwargs["extensions"] = [(0, draw(st.binary(min_size=4 * words, max_size=4 * words)))]
        kwargs["extension_profile"] = draw(
            st.integers(0, 0xFFFF).filter(lambda p: p != ONE_BYTE and p & 0xFFF0 != TWO_BYTE)
        )
    return kwargs


@settings(max_examples=400, deadline=None)
@given(valid_fields())
def test_valid_fields_round_trip(kwargs: dict[str, Any]) -> None:
    packet = RtpPacket.build(**kwargs)
    assert packet.payload_type == kwargs["payload_type"]
    assert packet.sequence_number == kwargs["sequence_number"]
    assert packet.timestamp == kwargs["timestamp"]
    assert packet.ssrc == kwargs["ssrc"]
    assert packet.marker is kwargs["marker"]
    assert packet.csrcs == kwargs["csrcs"]
    assert packet.payload == kwargs["payload"]
    assert packet.padding_size == kwargs["padding_size"]
    assert packet.extension_profile == kwargs.get("extension_profile")
    assert packet.extensions == kwargs.get("extensions", [])
    data = packet.serialize()
    assert data == reference_packet(**kwargs)
    assert_consistent(data, packet)
    assert_reparses_identically(packet)
