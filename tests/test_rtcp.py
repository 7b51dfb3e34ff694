"""RTCP unit (cext/rtcp.pyx): wire formats, round trips, aiortc interop, malformed input."""

from __future__ import annotations

import itertools
import struct

import pytest
from aiortc import rtp as aiortc_rtp
from conftest import fixture_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediasrv._core import (
    RtcpBye,
    RtcpCompound,
    RtcpFir,
    RtcpNack,
    RtcpPacket,
    RtcpPli,
    RtcpReceiverReport,
    RtcpRemb,
    RtcpReportBlock,
    RtcpSdes,
    RtcpSdesChunk,
    RtcpSenderReport,
    RtcpTransportFeedback,
    RtcpUnknown,
    parse_rtcp,
    rtcp_walk,
    serialize_rtcp,
)

SSRC = 0x11223344
MEDIA = 0x55667788
NTP = 0xE1234567_89ABCDEF


def header(count: int, packet_type: int, words: int, padding: bool = False) -> bytes:
    return struct.pack("!BBH", 0x80 | padding << 5 | count, packet_type, words)


def u32(*values: int) -> bytes:
    return struct.pack(f"!{len(values)}L", *values)


def twcc_bytes(base: int, count: int, chunks_and_deltas: bytes) -> bytes:
    """A transport-cc packet from SSRC about MEDIA, reference time 16, feedback count 7."""
    body = u32(SSRC, MEDIA) + struct.pack("!HHL", base, count, 16 << 8 | 7) + chunks_and_deltas
    return header(15, 205, len(body) // 4) + body


def roundtrip(packet: RtcpPacket) -> RtcpPacket:
    compound = parse_rtcp(packet.serialize())
    assert compound.errors == []
    assert len(compound.packets) == 1
    return compound.packets[0]


BLOCK = RtcpReportBlock(MEDIA, 5, -3, 0x0001_0064, 7, 8, 9)
BLOCK_BYTES = u32(MEDIA) + b"\x05\xff\xff\xfd" + u32(0x0001_0064, 7, 8, 9)
SR = RtcpSenderReport(SSRC, NTP, 90000, 10, 1400, [BLOCK])
SR_BYTES = header(1, 200, 12) + u32(SSRC) + struct.pack("!QLLL", NTP, 90000, 10, 1400) + BLOCK_BYTES

# (packet, its canonical bytes written by hand from the RFCs)
CANONICAL: dict[str, tuple[RtcpPacket, bytes]] = {
    "sr": (SR, SR_BYTES),
    "sr_no_reports": (
        RtcpSenderReport(SSRC, 0, 0, 0, 0),
        header(0, 200, 6) + u32(SSRC) + bytes(20),
    ),
    "rr": (
        RtcpReceiverReport(SSRC, [BLOCK, BLOCK]),
        header(2, 201, 13) + u32(SSRC) + BLOCK_BYTES * 2,
    ),
    "sdes": (
        RtcpSdes([RtcpSdesChunk(SSRC, [(1, b"alice"), (6, b"mediasrv")]), RtcpSdesChunk(MEDIA)]),
        header(2, 202, 8)
        + u32(SSRC)
        + b"\x01\x05alice\x06\x08mediasrv\x00\x00\x00"
        + u32(MEDIA)
        + bytes(4),
    ),
    "sdes_aligned_items": (
        # Items end on a 32-bit boundary: the null item takes a whole word.
        RtcpSdes([RtcpSdesChunk(SSRC, [(1, b"ab")])]),
        header(1, 202, 3) + u32(SSRC) + b"\x01\x02ab" + bytes(4),
    ),
    "bye": (RtcpBye([SSRC]), header(1, 203, 1) + u32(SSRC)),
    "bye_reason": (
        RtcpBye([SSRC, MEDIA], b"done"),
        header(2, 203, 4) + u32(SSRC, MEDIA) + b"\x04done\x00\x00\x00",
    ),
    "bye_empty_reason": (RtcpBye([], b""), header(0, 203, 1) + bytes(4)),
    "nack_wraparound": (
        RtcpNack(SSRC, MEDIA, [65534, 65535, 0, 1, 20]),
        header(1, 205, 4) + u32(SSRC, MEDIA) + struct.pack("!HHHH", 65534, 0b111, 20, 0),
    ),
    "nack_full_bitmask": (
        RtcpNack(SSRC, MEDIA, list(range(100, 117))),
        header(1, 205, 3) + u32(SSRC, MEDIA) + struct.pack("!HH", 100, 0xFFFF),
    ),
    "pli": (RtcpPli(SSRC, MEDIA), header(1, 206, 2) + u32(SSRC, MEDIA)),
    "fir": (
        RtcpFir(SSRC, [(MEDIA, 7), (SSRC, 255)]),
        header(4, 206, 6)
        + u32(SSRC, 0, MEDIA)
        + b"\x07\x00\x00\x00"
        + u32(SSRC)
        + b"\xff\x00\x00\x00",
    ),
    "remb": (
        # 500000 = 250000 * 2**1: the mantissa 0x3D090 needs 18 bits.
        RtcpRemb(SSRC, 500_000, [MEDIA, SSRC]),
        header(15, 206, 6) + u32(SSRC, 0) + b"REMB\x02\x07\xd0\x90" + u32(MEDIA, SSRC),
    ),
    "remb_no_ssrcs": (
        RtcpRemb(SSRC, 0x3FFFF),
        header(15, 206, 4) + u32(SSRC, 0) + b"REMB\x00\x03\xff\xff",
    ),
    "twcc_two_bit_vector": (
        RtcpTransportFeedback(
            SSRC, MEDIA, 100, 16, 7, [(100, 250), (101, None), (102, 1000), (103, -250)]
        ),
        # Statuses 1, 0, 1, 2 in a 2-bit vector; deltas 1, 4 and -1 ticks; 2 bytes of padding.
        twcc_bytes(100, 4, b"\xd1\x80" + b"\x01\x04\xff\xff" + bytes(2)),
    ),
    "twcc_run_length": (
        RtcpTransportFeedback(
            SSRC, MEDIA, 65530, 16, 7, [((65530 + i) % 65536, 500) for i in range(20)]
        ),
        twcc_bytes(65530, 20, b"\x20\x14" + b"\x02" * 20 + bytes(2)),
    ),
    "twcc_one_bit_vector": (
        RtcpTransportFeedback(
            SSRC, MEDIA, 0, 16, 7, [(i, None if i % 2 else 63750) for i in range(14)]
        ),
        twcc_bytes(0, 14, b"\xaa\xaa" + b"\xff" * 7 + bytes(3)),
    ),
    "twcc_large_deltas": (
        RtcpTransportFeedback(
            SSRC, MEDIA, 7, 16, 7, [(7, -8_192_000), (8, 8_191_750), (9, 64_000)]
        ),
        twcc_bytes(7, 3, b"\x40\x03" + b"\x80\x00\x7f\xff\x01\x00"),
    ),
    "app": (RtcpUnknown(204, 1, u32(SSRC) + b"name"), header(1, 204, 2) + u32(SSRC) + b"name"),
    "unknown_padded": (RtcpUnknown(207, 0, b"xyz"), header(0, 207, 1, padding=True) + b"xyz\x01"),
    "unknown_rtpfb_tmmbr": (
        RtcpUnknown(205, 3, u32(SSRC, 0, MEDIA, 0x12345678)),
        header(3, 205, 4) + u32(SSRC, 0, MEDIA, 0x12345678),
    ),
    "unknown_psfb_sli": (
        RtcpUnknown(206, 2, u32(SSRC, MEDIA, 0xABCDEF01)),
        header(2, 206, 3) + u32(SSRC, MEDIA, 0xABCDEF01),
    ),
}


@pytest.mark.parametrize(("packet", "data"), CANONICAL.values(), ids=CANONICAL.keys())
def test_serialize_writes_canonical_bytes(packet: RtcpPacket, data: bytes) -> None:
    assert packet.serialize() == data


@pytest.mark.parametrize(("packet", "data"), CANONICAL.values(), ids=CANONICAL.keys())
def test_parse_reads_canonical_bytes(packet: RtcpPacket, data: bytes) -> None:
    compound = parse_rtcp(data)
    assert compound == RtcpCompound([packet], [])
    assert serialize_rtcp(compound.packets) == data


@pytest.mark.parametrize(("packet", "data"), CANONICAL.values(), ids=CANONICAL.keys())
def test_object_round_trip(packet: RtcpPacket, data: bytes) -> None:
    assert roundtrip(packet) == packet


def test_compound_round_trip_and_walk() -> None:
    packets = [packet for packet, _ in CANONICAL.values()]
    data = serialize_rtcp(packets)
    assert data == b"".join(packet_data for _, packet_data in CANONICAL.values())
    assert parse_rtcp(data) == RtcpCompound(packets, [])
    assert parse_rtcp(bytearray(data)) == parse_rtcp(memoryview(data))
    lengths = [len(packet_data) for _, packet_data in CANONICAL.values()]
    starts = [0, *itertools.accumulate(lengths)][:-1]
    kinds = [(packet_data[0] & 0x1F, packet_data[1]) for _, packet_data in CANONICAL.values()]
    assert rtcp_walk(data) == [
        (fmt, kind, start, length)
        for (fmt, kind), start, length in zip(kinds, starts, lengths, strict=True)
    ]


def test_values_equality_and_repr() -> None:
    assert RtcpPli(1, 2) == RtcpPli(1, 2)
    assert RtcpPli(1, 2) != RtcpPli(1, 3)
    pli_and_nack: list[RtcpPacket] = [RtcpPli(1, 2), RtcpNack(1, 2, [3])]
    assert pli_and_nack[0] != pli_and_nack[1]
    assert repr(RtcpPli(1, 2)) == "RtcpPli(sender_ssrc=1, media_ssrc=2)"
    assert repr(RtcpBye([5])) == "RtcpBye(sources=[5], reason=None)"
    assert repr(parse_rtcp(b"")) == "RtcpCompound(packets=[], errors=['RTCP compound is empty'])"


def test_report_block_packets_lost_is_signed_24_bit() -> None:
    for lost in (-(2**23), -1, 0, 2**23 - 1):
        block = RtcpReportBlock(1, 0, lost, 0, 0, 0, 0)
        assert roundtrip(RtcpReceiverReport(2, [block])) == RtcpReceiverReport(2, [block])
    with pytest.raises(OverflowError) as raised:
        RtcpReceiverReport(2, [RtcpReportBlock(1, 0, 2**23, 0, 0, 0, 0)]).serialize()
    assert (
        str(raised.value) == "RTCP report block packets_lost 8388608 does not fit in 24 signed bits"
    )


def test_sdes_tolerates_extra_null_octets_after_chunk() -> None:
    # aiortc ends each chunk with two null octets before padding: accept the surplus.
    data = header(1, 202, 4) + u32(SSRC) + b"\x01\x05alice\x00\x00" + bytes(3)
    assert parse_rtcp(data).packets == [RtcpSdes([RtcpSdesChunk(SSRC, [(1, b"alice")])])]


def test_nack_keeps_any_order_and_duplicates() -> None:
    lost = [5, 7, 6, 6, 40, 3, 65535, 0, 65535]
    assert roundtrip(RtcpNack(1, 2, lost)) == RtcpNack(1, 2, lost)


def test_nack_parse_expands_bitmask_in_order_across_wraparound() -> None:
    data = header(1, 205, 3) + u32(1, 2) + struct.pack("!HH", 65535, 0x8001)
    assert parse_rtcp(data).packets == [RtcpNack(1, 2, [65535, 0, 15])]


@pytest.mark.parametrize(
    ("bitrate", "expected"),
    [
        (0, 0),
        (0x3FFFF, 0x3FFFF),
        (0x40000, 0x40000),
        (0x40001, 0x40000),
        (1_000_001, 1_000_000),
        (2**40 + 12345, 2**40),
        (2**64 - 1, 0x3FFFF << 46),
    ],
)
def test_remb_bitrate_rounds_down_with_smallest_exponent(bitrate: int, expected: int) -> None:
    data = RtcpRemb(1, bitrate, [2]).serialize()
    assert parse_rtcp(data).packets == [RtcpRemb(1, expected, [2])]
    assert data[-8:-4] == aiortc_rtp.pack_remb_fci(bitrate, [2])[4:8]


def test_twcc_long_run_is_split_at_8191() -> None:
    packets: list[tuple[int, int | None]] = [(i, 250) for i in range(9000)]
    data = RtcpTransportFeedback(1, 2, 0, 0, 0, packets).serialize()
    assert data[20:24] == b"\x3f\xff\x23\x29"  # runs of 8191 and 809 small deltas
    assert roundtrip(RtcpTransportFeedback(1, 2, 0, 0, 0, packets)) == RtcpTransportFeedback(
        1, 2, 0, 0, 0, packets
    )


def test_twcc_parse_ignores_vector_slots_and_run_beyond_count() -> None:
    # A 1-bit vector with 14 "received" slots and a run of 8191: only 3 statuses are announced.
    for chunk in (b"\xbf\xff", b"\x3f\xff"):
        data = twcc_bytes(9, 3, chunk + b"\x01\x02\x03" + bytes(3))
        expected = RtcpTransportFeedback(SSRC, MEDIA, 9, 16, 7, [(9, 250), (10, 500), (11, 750)])
        assert parse_rtcp(data) == RtcpCompound([expected], [])


def test_twcc_reference_time_is_signed_24_bit() -> None:
    for reference_time in (-(2**23), -1, 2**23 - 1):
        packet = RtcpTransportFeedback(1, 2, 3, reference_time, 255, [(3, 0)])
        assert roundtrip(packet) == packet
    with pytest.raises(OverflowError) as raised:
        RtcpTransportFeedback(1, 2, 3, 2**23, 0, [(3, 0)]).serialize()
    assert (
        str(raised.value)
        == "RTCP transport-cc reference_time 8388608 does not fit in 24 signed bits"
    )


@pytest.mark.parametrize(
    ("packet", "error", "message"),
    [
        (RtcpNack(1, 2, []), ValueError, "RTCP NACK needs at least one lost sequence number"),
        (RtcpNack(1, 2, [65536]), OverflowError, None),
        (RtcpFir(1, []), ValueError, "RTCP FIR needs at least one entry"),
        (RtcpFir(1, [(1, 256)]), OverflowError, None),
        (
            RtcpRemb(1, 2, list(range(256))),
            ValueError,
            "RTCP REMB carries at most 255 SSRCs, got 256",
        ),
        (
            RtcpSenderReport(1, 0, 0, 0, 0, [BLOCK] * 32),
            ValueError,
            "RTCP SR report count 32 exceeds 31",
        ),
        (RtcpReceiverReport(1, [BLOCK] * 32), ValueError, "RTCP RR report count 32 exceeds 31"),
        (RtcpSdes([RtcpSdesChunk(1)] * 32), ValueError, "RTCP SDES chunk count 32 exceeds 31"),
        (
            RtcpSdes([RtcpSdesChunk(1, [(0, b"")])]),
            ValueError,
            "RTCP SDES item type 0 is not in 1..255",
        ),
        (
            RtcpSdes([RtcpSdesChunk(1, [(1, bytes(256))])]),
            ValueError,
            "RTCP SDES item (type 1) of 256 bytes exceeds 255",
        ),
        (RtcpBye([1] * 32), ValueError, "RTCP BYE source count 32 exceeds 31"),
        (RtcpBye([1], bytes(256)), ValueError, "RTCP BYE reason of 256 bytes exceeds 255"),
        (RtcpUnknown(204, 32, b""), OverflowError, "RTCP count 32 does not fit in 5 bits"),
        (
            RtcpUnknown(204, 0, bytes(0x40000 - 3)),
            ValueError,
            "RTCP packet of 262148 bytes exceeds the 262144-byte limit",
        ),
        (
            RtcpTransportFeedback(1, 2, 0, 0, 0, []),
            ValueError,
            "RTCP transport-cc needs 1..65535 packets, got 0",
        ),
        (
            RtcpTransportFeedback(1, 2, 0, 0, 0, [(1, 250)]),
            ValueError,
            "RTCP transport-cc packet 0 has sequence 1, expected 0",
        ),
        (
            RtcpTransportFeedback(1, 2, 65535, 0, 0, [(65535, 250), (65536, 250)]),
            ValueError,
            "RTCP transport-cc packet 1 has sequence 65536, expected 0",
        ),
        (
            RtcpTransportFeedback(1, 2, 0, 0, 0, [(0, 300)]),
            ValueError,
            "RTCP transport-cc delta 300 us of sequence 0 is not a multiple of 250 us",
        ),
        (
            RtcpTransportFeedback(1, 2, 0, 0, 0, [(0, 8_192_000)]),
            OverflowError,
            "RTCP transport-cc delta 8192000 us of sequence 0 is outside -8192000..8191750 us",
        ),
    ],
)
def test_serialize_rejects_what_the_wire_cannot_carry(
    packet: RtcpPacket, error: type[Exception], message: str | None
) -> None:
    with pytest.raises(error) as raised:
        packet.serialize()
    assert message is None or str(raised.value) == message


def test_fields_are_range_checked_on_construction() -> None:
    with pytest.raises(OverflowError):
        RtcpPli(2**32, 0)
    with pytest.raises(OverflowError):
        RtcpPli(-1, 0)
    with pytest.raises(TypeError):
        RtcpBye([1], "reason")  # type: ignore[arg-type]


# --- malformed input: one fixture per case, written by tests/fixtures/make_rtcp_fixtures.py

FIXTURE_SR = RtcpSenderReport(SSRC, NTP, 90000, 10, 1400)

MALFORMED: dict[str, tuple[list[RtcpPacket], list[str]]] = {
    "too_short": ([], ["RTCP header needs 4 bytes, got 3 (at offset 0)"]),
    "bad_version": ([], ["RTCP packet has version 1, expected 2 (at offset 0)"]),
    "length_overflow": (
        [],
        ["RTCP packet length field (9 words) exceeds the 20 bytes left (at offset 0)"],
    ),
    "bad_padding": (
        [],
        ["RTCP padding length 9 is invalid for a payload of 8 bytes (at offset 0)"],
    ),
    "zero_padding_then_rr": (
        [RtcpReceiverReport(MEDIA)],
        ["RTCP padding length 0 is invalid for a payload of 4 bytes (at offset 0)"],
    ),
    "sr_truncated": ([], ["RTCP SR report count 2 needs 72 bytes, got 40 (at offset 0)"]),
    "rr_truncated": ([], ["RTCP RR report count 1 needs 28 bytes, got 16 (at offset 0)"]),
    "sdes_item_overflow": (
        [],
        ["RTCP SDES item (type 1) length 40 exceeds the 6 bytes left (at offset 0)"],
    ),
    "sdes_missing_null": ([], ["RTCP SDES chunk 1 of 1 ends without a null item (at offset 0)"]),
    "sdes_chunk_truncated": (
        [],
        ["RTCP SDES chunk 2 of 2 needs 4 bytes for its SSRC, got 0 (at offset 0)"],
    ),
    "bye_reason_overflow": (
        [],
        ["RTCP BYE reason length 20 exceeds the 3 bytes left (at offset 0)"],
    ),
    "bye_sources_truncated": ([], ["RTCP BYE source count 3 needs 12 bytes, got 8 (at offset 0)"]),
    "nack_empty": ([], ["RTCP NACK has no FCI entries (at offset 0)"]),
    "nack_bad_length": ([], ["RTCP NACK FCI length 6 is not a multiple of 4 (at offset 0)"]),
    "pli_short": ([], ["RTCP PLI needs 8 bytes for sender and media SSRC, got 4 (at offset 0)"]),
    "fir_empty": ([], ["RTCP FIR has no FCI entries (at offset 0)"]),
    "fir_bad_length": ([], ["RTCP FIR FCI length 12 is not a multiple of 8 (at offset 0)"]),
    "remb_short": ([], ["RTCP REMB FCI needs at least 8 bytes, got 4 (at offset 0)"]),
    "remb_bad_identifier": (
        [],
        ["RTCP REMB identifier is b'ABCD', expected b'REMB' (at offset 0)"],
    ),
    "remb_ssrc_mismatch": (
        [],
        ["RTCP REMB lists 3 SSRCs, which needs 20 FCI bytes, got 12 (at offset 0)"],
    ),
    "remb_bitrate_overflow": (
        [],
        ["RTCP REMB bitrate 262143 * 2^63 does not fit in 64 bits (at offset 0)"],
    ),
    "twcc_short": (
        [],
        ["RTCP transport-cc needs 16 bytes before its chunks, got 12 (at offset 0)"],
    ),
    "twcc_zero_count": ([], ["RTCP transport-cc packet status count is 0 (at offset 0)"]),
    "twcc_truncated_chunks": (
        [],
        ["RTCP transport-cc packet status count 20 exceeds the chunks' 14 statuses (at offset 0)"],
    ),
    "twcc_missing_deltas": (
        [],
        ["RTCP transport-cc receive deltas need 3 bytes, got 2 (at offset 0)"],
    ),
    "twcc_reserved_symbol": (
        [],
        ["RTCP transport-cc chunk 1 uses the reserved status symbol 3 (at offset 0)"],
    ),
    "compound_sr_garbage": (
        [FIXTURE_SR],
        ["RTCP packet has version 0, expected 2 (at offset 28)"],
    ),
    "compound_bad_middle": (
        [FIXTURE_SR, RtcpReceiverReport(MEDIA)],
        ["RTCP NACK has no FCI entries (at offset 28)"],
    ),
}


@pytest.mark.parametrize(
    ("name", "packets", "errors"),
    [(name, *expected) for name, expected in MALFORMED.items()],
    ids=MALFORMED.keys(),
)
def test_malformed_fixture(name: str, packets: list[RtcpPacket], errors: list[str]) -> None:
    assert parse_rtcp(fixture_bytes(f"rtcp_{name}.bin")) == RtcpCompound(packets, errors)


def test_empty_compound_is_an_error() -> None:
    assert parse_rtcp(b"") == RtcpCompound([], ["RTCP compound is empty"])
    assert rtcp_walk(b"") == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("too_short", "RTCP header needs 4 bytes, got 3 (at offset 0)"),
        ("bad_version", "RTCP packet has version 1, expected 2 (at offset 0)"),
        (
            "length_overflow",
            "RTCP packet length field (9 words) exceeds the 20 bytes left (at offset 0)",
        ),
        ("bad_padding", "RTCP padding length 9 is invalid for a payload of 8 bytes (at offset 0)"),
        ("compound_sr_garbage", "RTCP packet has version 0, expected 2 (at offset 28)"),
    ],
)
def test_walk_raises_on_malformed_header(name: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        rtcp_walk(fixture_bytes(f"rtcp_{name}.bin"))
    assert str(raised.value) == message


def test_walk_does_not_look_inside_bodies() -> None:
    assert rtcp_walk(fixture_bytes("rtcp_compound_bad_middle.bin")) == [
        (0, 200, 0, 28),
        (1, 205, 28, 12),
        (0, 201, 40, 8),
    ]
    padded = RtcpUnknown(204, 3, b"abcde").serialize()
    assert rtcp_walk(bytearray(padded)) == [(3, 204, 0, 12)]


# --- interop with aiortc


def aiortc_block() -> aiortc_rtp.RtcpReceiverInfo:
    return aiortc_rtp.RtcpReceiverInfo(
        ssrc=MEDIA,
        fraction_lost=5,
        packets_lost=-3,
        highest_sequence=0x10064,
        jitter=7,
        lsr=8,
        dlsr=9,
    )


AIORTC_SAME_BYTES: dict[str, tuple[aiortc_rtp.AnyRtcpPacket, RtcpPacket]] = {
    "sr": (
        aiortc_rtp.RtcpSrPacket(
            ssrc=SSRC,
            sender_info=aiortc_rtp.RtcpSenderInfo(
                ntp_timestamp=NTP, rtp_timestamp=90000, packet_count=10, octet_count=1400
            ),
            reports=[aiortc_block()],
        ),
        SR,
    ),
    "rr": (
        aiortc_rtp.RtcpRrPacket(ssrc=SSRC, reports=[aiortc_block()] * 2),
        RtcpReceiverReport(SSRC, [BLOCK] * 2),
    ),
    "bye": (aiortc_rtp.RtcpByePacket(sources=[SSRC, MEDIA]), RtcpBye([SSRC, MEDIA])),
    "nack": (
        aiortc_rtp.RtcpRtpfbPacket(
            fmt=1, ssrc=SSRC, media_ssrc=MEDIA, lost=[10, 11, 15, 26, 27, 50]
        ),
        RtcpNack(SSRC, MEDIA, [10, 11, 15, 26, 27, 50]),
    ),
    "pli": (aiortc_rtp.RtcpPsfbPacket(fmt=1, ssrc=SSRC, media_ssrc=MEDIA), RtcpPli(SSRC, MEDIA)),
    "fir": (
        aiortc_rtp.RtcpPsfbPacket(
            fmt=4, ssrc=SSRC, media_ssrc=0, fci=u32(MEDIA) + b"\x09\x00\x00\x00"
        ),
        RtcpFir(SSRC, [(MEDIA, 9)]),
    ),
    "remb": (
        aiortc_rtp.RtcpPsfbPacket(
            fmt=15, ssrc=SSRC, media_ssrc=0, fci=aiortc_rtp.pack_remb_fci(3_000_000, [MEDIA])
        ),
        RtcpRemb(SSRC, 3_000_000, [MEDIA]),
    ),
}


@pytest.mark.parametrize(
    ("theirs", "ours"), AIORTC_SAME_BYTES.values(), ids=AIORTC_SAME_BYTES.keys()
)
def test_aiortc_and_mediasrv_agree_on_bytes(
    theirs: aiortc_rtp.AnyRtcpPacket, ours: RtcpPacket
) -> None:
    data = bytes(theirs)
    assert ours.serialize() == data
    assert parse_rtcp(data) == RtcpCompound([ours], [])
    assert aiortc_rtp.RtcpPacket.parse(ours.serialize()) == [theirs]


def test_aiortc_remb_fci_matches() -> None:
    fci = RtcpRemb(SSRC, 3_000_000, [MEDIA, SSRC]).serialize()[12:]
    assert aiortc_rtp.unpack_remb_fci(fci) == (3_000_000, [MEDIA, SSRC])


def test_aiortc_sdes_interop() -> None:
    theirs = aiortc_rtp.RtcpSdesPacket(
        chunks=[aiortc_rtp.RtcpSourceInfo(ssrc=SSRC, items=[(1, b"alice"), (2, b"Alice A.")])]
    )
    ours = RtcpSdes([RtcpSdesChunk(SSRC, [(1, b"alice"), (2, b"Alice A.")])])
    assert parse_rtcp(bytes(theirs)) == RtcpCompound([ours], [])
    assert aiortc_rtp.RtcpPacket.parse(ours.serialize()) == [theirs]


def test_aiortc_parses_our_bye_with_reason() -> None:
    parsed = aiortc_rtp.RtcpPacket.parse(RtcpBye([SSRC], b"shutting down").serialize())
    assert parsed == [aiortc_rtp.RtcpByePacket(sources=[SSRC])]


def test_aiortc_compound_parses() -> None:
    sr, _ = AIORTC_SAME_BYTES["sr"]
    sdes = aiortc_rtp.RtcpSdesPacket(
        chunks=[aiortc_rtp.RtcpSourceInfo(ssrc=SSRC, items=[(1, b"x")])]
    )
    data = bytes(sr) + bytes(sdes)
    assert parse_rtcp(data).packets == [SR, RtcpSdes([RtcpSdesChunk(SSRC, [(1, b"x")])])]


# --- properties

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32s = st.integers(0, 0xFFFF_FFFF)
s24 = st.integers(-(2**23), 2**23 - 1)
report_blocks = st.builds(RtcpReportBlock, u32s, u8, s24, u32s, u32s, u32s, u32s)
report_lists = st.lists(report_blocks, max_size=4) | st.lists(
    report_blocks, min_size=31, max_size=31
)


def representable_bitrate(mantissa: int, exponent: int) -> int:
    return mantissa << exponent


def delta_ticks() -> st.SearchStrategy[int | None]:
    return st.none() | st.integers(0, 255) | st.integers(-0x8000, 0x7FFF)


@st.composite
def transport_feedback(draw: st.DrawFn) -> RtcpTransportFeedback:
    """Runs of equal statuses as well as mixed ones, so every chunk kind gets chosen."""
    base = draw(u16)
    runs = draw(st.lists(st.tuples(delta_ticks(), st.integers(1, 30)), min_size=1, max_size=10))
    ticks = [tick for tick, length in runs for _ in range(length)]
    packets = [((base + i) % 65536, None if t is None else t * 250) for i, t in enumerate(ticks)]
    return RtcpTransportFeedback(draw(u32s), draw(u32s), base, draw(s24), draw(u8), packets)


def unknown_packets() -> st.SearchStrategy[RtcpUnknown]:
    other_types = st.integers(0, 255).filter(lambda t: t not in (200, 201, 202, 203, 205, 206))
    payloads = st.binary(max_size=40)
    return st.one_of(
        st.builds(RtcpUnknown, other_types, st.integers(0, 31), payloads),
        st.builds(
            RtcpUnknown,
            st.just(205),
            st.integers(0, 31).filter(lambda f: f not in (1, 15)),
            payloads,
        ),
        st.builds(
            RtcpUnknown,
            st.just(206),
            st.integers(0, 31).filter(lambda f: f not in (1, 4, 15)),
            payloads,
        ),
    )


valid_packets: st.SearchStrategy[RtcpPacket] = st.one_of(
    st.builds(RtcpSenderReport, u32s, st.integers(0, 2**64 - 1), u32s, u32s, u32s, report_lists),
    st.builds(RtcpReceiverReport, u32s, report_lists),
    st.builds(
        RtcpSdes,
        st.lists(
            st.builds(
                RtcpSdesChunk,
                u32s,
                st.lists(
                    st.tuples(
                        st.integers(1, 255),
                        st.binary(max_size=20) | st.binary(min_size=255, max_size=255),
                    ),
                    max_size=4,
                ),
            ),
            max_size=4,
        ),
    ),
    st.builds(RtcpBye, st.lists(u32s, max_size=31), st.none() | st.binary(max_size=255)),
    st.builds(RtcpNack, u32s, u32s, st.lists(u16, min_size=1, max_size=60)),
    transport_feedback(),
    st.builds(RtcpPli, u32s, u32s),
    st.builds(RtcpFir, u32s, st.lists(st.tuples(u32s, u8), min_size=1, max_size=5)),
    st.builds(
        RtcpRemb,
        u32s,
        st.builds(representable_bitrate, st.integers(0, 0x3FFFF), st.integers(0, 46)),
        st.lists(u32s, max_size=255),
    ),
    unknown_packets(),
)


@st.composite
def rtcp_like(draw: st.DrawFn) -> bytes:
    """A version-2 header with a consistent length over random bytes: reaches every body parser."""
    packet_type = draw(st.sampled_from([200, 201, 202, 203, 204, 205, 206]) | u8)
    fmt = draw(st.sampled_from([0, 1, 2, 4, 15]) | st.integers(0, 31))
    body = draw(st.binary(max_size=96))
    if packet_type == 205 and fmt == 15 and draw(st.booleans()):
        # Plausible transport-cc fixed part so the chunk and delta decoders get exercised.
        body = u32(1, 2) + struct.pack("!HH", draw(u16), draw(st.integers(1, 40))) + bytes(4) + body
    padding = -len(body) % 4
    if padding:
        body += bytes(padding - 1) + bytes([padding])
    return header(fmt, packet_type, len(body) // 4, padding=padding > 0) + body


def assert_reparses(data: bytes) -> None:
    """parse_rtcp never raises, and whatever it parsed serializes to bytes that parse back equal."""
    compound = parse_rtcp(data)
    assert all(isinstance(error, str) and error.startswith("RTCP ") for error in compound.errors)
    for packet in compound.packets:
        assert parse_rtcp(packet.serialize()) == RtcpCompound([packet], [])


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.binary(max_size=600))
def test_any_bytes_never_raise(data: bytes) -> None:
    assert_reparses(data)
    try:
        rtcp_walk(data)
    except ValueError as exc:
        assert str(exc).startswith("RTCP ")


@PROPERTY
@given(st.lists(rtcp_like(), min_size=1, max_size=4))
def test_rtcp_like_bytes_reparse(packets: list[bytes]) -> None:
    assert_reparses(b"".join(packets))


@PROPERTY
@given(st.lists(valid_packets, min_size=1, max_size=4), st.data())
def test_mutated_compounds_reparse(packets: list[RtcpPacket], data: st.DataObject) -> None:
    raw = bytearray(serialize_rtcp(packets))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(u8)
    assert_reparses(bytes(raw[: data.draw(st.integers(0, len(raw)))]))


@PROPERTY
@given(valid_packets)
def test_valid_packets_round_trip(packet: RtcpPacket) -> None:
    data = packet.serialize()
    assert len(data) % 4 == 0
    assert parse_rtcp(data) == RtcpCompound([packet], [])
    assert roundtrip(packet).serialize() == data


@PROPERTY
@given(st.lists(valid_packets, min_size=1, max_size=6))
def test_valid_compounds_round_trip(packets: list[RtcpPacket]) -> None:
    data = serialize_rtcp(packets)
    assert parse_rtcp(data) == RtcpCompound(packets, [])
    assert [kind for _, kind, _, _ in rtcp_walk(data)] == [
        packet.serialize()[1] for packet in packets
    ]


@PROPERTY
@given(u32s, st.lists(report_blocks, max_size=31))
def test_aiortc_reads_our_receiver_reports(ssrc: int, blocks: list[RtcpReportBlock]) -> None:
    (parsed,) = aiortc_rtp.RtcpPacket.parse(RtcpReceiverReport(ssrc, blocks).serialize())
    assert isinstance(parsed, aiortc_rtp.RtcpRrPacket)
    assert parsed.ssrc == ssrc
    assert [
        (r.ssrc, r.fraction_lost, r.packets_lost, r.highest_sequence, r.jitter, r.lsr, r.dlsr)
        for r in parsed.reports
    ] == [
        (b.ssrc, b.fraction_lost, b.packets_lost, b.highest_sequence, b.jitter, b.lsr, b.dlsr)
        for b in blocks
    ]


@PROPERTY
@given(u32s, st.integers(0, 2**64 - 1), st.lists(u32s, max_size=20))
def test_aiortc_and_mediasrv_encode_remb_alike(sender: int, bitrate: int, ssrcs: list[int]) -> None:
    theirs = aiortc_rtp.RtcpPsfbPacket(
        fmt=15, ssrc=sender, media_ssrc=0, fci=aiortc_rtp.pack_remb_fci(bitrate, ssrcs)
    )
    assert RtcpRemb(sender, bitrate, ssrcs).serialize() == bytes(theirs)
