"""The worker data plane (cext/plane.pyx) packet by packet, through real UDP sockets, with plain
(unencrypted) transports so the test can read what a subscriber receives."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from mediasrv import _core

AUDIO_LEVEL_ID = 1
VIDEO_PT, RTX_PT = 96, 97
SSRC, RTX_SSRC = 0x1111, 0x2222
OUT_SSRC, OUT_RTX_SSRC = 0xAAAA, 0xBBBB


@dataclass
class Handler:
    stun: list[bytes] = field(default_factory=list)
    dtls: list[bytes] = field(default_factory=list)
    rtcp: list[bytes] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)

    def on_stun(self, data: bytes, addr: tuple[str, int]) -> None:
        self.stun.append(data)

    def on_dtls(self, transport: Any, data: bytes) -> None:
        self.dtls.append(data)

    def on_rtcp(self, transport: Any, data: bytes) -> None:
        self.rtcp.append(data)

    def on_unknown_ssrc(self, transport: Any, ssrc: int, pt: int, packet: bytes) -> None:
        self.unknown.append(ssrc)


class Rig:
    """A plane, a publisher transport bound to PUB and a subscriber transport bound to a real
    socket the test reads."""

    PUB = ("127.0.0.1", 50000)

    def __init__(self, *, rtx: bool = True, ext_map: dict[int, int] | None = None) -> None:
        self.handler = Handler()
        self.udp = _core.UdpBatchSocket("127.0.0.1", 0)
        self.plane = _core.WorkerPlane(self.udp, self.handler)
        self.pub = _core.PlaneTransport(self.plane, srtp=False)
        self.pub.set_remote_address(self.PUB)
        self.sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sink.bind(("127.0.0.1", 0))
        self.sink.settimeout(0.5)
        self.sub = _core.PlaneTransport(self.plane, srtp=False)
        self.sub.set_remote_address(self.sink.getsockname())
        self.stream = _core.PlaneStream(
            self.pub, ssrc=SSRC, payload_type=VIDEO_PT, codec=_core.PlaneCodec.CODEC_VP8,
            clock_rate=90000, rtx_ssrc=RTX_SSRC, rtx_payload_type=RTX_PT, cache_size=256,
        )  # fmt: skip
        self.pub.add_stream(self.stream)
        self.consumer = _core.PlaneConsumer(
            self.sub, self.stream, ssrc=OUT_SSRC, payload_type=100,
            rtx_ssrc=OUT_RTX_SSRC if rtx else 0, rtx_payload_type=101 if rtx else 0,
            extension_map=ext_map,
        )  # fmt: skip
        self.stream.add_consumer(self.consumer)

    def feed(self, packet: bytes) -> None:
        self.plane.feed(packet, self.PUB)

    def received(self) -> list[_core.RtpPacket]:
        out: list[_core.RtpPacket] = []
        while True:
            try:
                data = self.sink.recv(2048)
            except (TimeoutError, BlockingIOError):
                return out
            out.append(_core.RtpPacket.parse(data))
            self.sink.settimeout(0.05)

    def close(self) -> None:
        self.sink.close()
        self.udp.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.close()


def vp8(seq: int, *, keyframe: bool = False, start: bool = True, ts: int | None = None,
        ssrc: int = SSRC, pt: int = VIDEO_PT, extensions: list[tuple[int, bytes]] | None = None,
        body: bytes = b"") -> bytes:  # fmt: skip
    descriptor = bytes([0x10 if start else 0x00])
    header = bytes([0x00 if keyframe else 0x01, 0, 0])
    payload = descriptor + header + (body or struct.pack("!H", seq) * 20)
    return _core.RtpPacket.build(
        payload_type=pt, sequence_number=seq, timestamp=ts if ts is not None else seq * 3000,
        ssrc=ssrc, payload=payload, extensions=extensions or [],
    ).serialize()  # fmt: skip


def test_a_consumer_starts_at_a_keyframe_and_rewrites_ssrc_and_payload_type(rig: Rig) -> None:
    rig.feed(vp8(10))
    rig.feed(vp8(11, start=False))
    assert rig.received() == []
    rig.feed(vp8(12, keyframe=True))
    rig.feed(vp8(13, start=False))
    out = rig.received()
    assert [(p.ssrc, p.payload_type, p.sequence_number, p.timestamp) for p in out] == [
        (OUT_SSRC, 100, 12, 36000),
        (OUT_SSRC, 100, 13, 39000),
    ]
    assert out[0].payload == _core.RtpPacket.parse(vp8(12, keyframe=True)).payload
    assert rig.stream.keyframes == 1 and rig.stream.packets == 4


def test_pause_and_resume_keep_sequence_numbers_continuous(rig: Rig) -> None:
    rig.feed(vp8(100, keyframe=True))
    rig.feed(vp8(101, start=False))
    assert [p.sequence_number for p in rig.received()] == [100, 101]
    rig.consumer.pause()
    for seq in range(102, 110):
        rig.feed(vp8(seq))
    assert rig.received() == []
    assert rig.consumer.dropped_paused == 8
    rig.consumer.resume()
    rig.feed(vp8(110))  # not a keyframe: still waiting
    rig.feed(vp8(111, keyframe=True))
    rig.feed(vp8(112, start=False))
    out = rig.received()
    assert [p.sequence_number for p in out] == [102, 103]  # no gap for the decoder
    assert out[0].timestamp > 101 * 3000
    # a late packet from before the resync point is not forwarded
    rig.feed(vp8(109))
    assert rig.received() == []


def test_nack_is_answered_with_rtx_carrying_the_original(rig: Rig) -> None:
    rig.feed(vp8(500, keyframe=True))
    for seq in range(501, 505):
        rig.feed(vp8(seq, start=False))
    forwarded = {p.sequence_number: p for p in rig.received()}
    assert rig.consumer.retransmit([502, 503, 9999]) == 2
    out = rig.received()
    assert [p.ssrc for p in out] == [OUT_RTX_SSRC, OUT_RTX_SSRC]
    assert [p.payload_type for p in out] == [101, 101]
    assert out[1].sequence_number == (out[0].sequence_number + 1) & 0xFFFF
    for packet, seq in zip(out, (502, 503), strict=True):
        osn = struct.unpack("!H", packet.payload[:2])[0]
        assert osn == seq
        assert packet.payload[2:] == forwarded[seq].payload
        assert packet.timestamp == forwarded[seq].timestamp
    assert rig.consumer.retransmitted == 2 and rig.consumer.retransmit_missing == 1


def test_nack_without_rtx_resends_the_packet_as_forwarded() -> None:
    rig = Rig(rtx=False)
    try:
        rig.feed(vp8(7, keyframe=True))
        rig.feed(vp8(8, start=False))
        first = {p.sequence_number: p for p in rig.received()}
        assert rig.consumer.retransmit([8]) == 1
        (again,) = rig.received()
        assert again.serialize() == first[8].serialize()
    finally:
        rig.close()


def test_gaps_are_listed_for_nack_and_rtx_repairs_them(rig: Rig) -> None:
    rig.feed(vp8(1000, keyframe=True))
    rig.feed(vp8(1003, start=False))
    assert sorted(rig.stream.take_nacks()) == [1001, 1002]
    assert rig.stream.take_nacks() == []  # spaced: not again at once
    original = vp8(1001, start=False)
    parsed = _core.RtpPacket.parse(original)
    rtx = _core.RtpPacket.build(
        payload_type=RTX_PT, sequence_number=1, timestamp=parsed.timestamp, ssrc=RTX_SSRC,
        payload=struct.pack("!H", 1001) + parsed.payload,
    ).serialize()  # fmt: skip
    rig.received()
    rig.feed(rtx)
    (repaired,) = rig.received()
    assert repaired.ssrc == OUT_SSRC and repaired.sequence_number == 1001
    assert repaired.payload == parsed.payload
    assert rig.stream.rtx_packets == 1 and rig.stream.nack_recovered == 1
    # RTX padding (a bandwidth probe) is never forwarded
    probe = _core.RtpPacket.build(payload_type=RTX_PT, sequence_number=2, timestamp=0,
                                  ssrc=RTX_SSRC, payload=b"").serialize()  # fmt: skip
    rig.feed(probe)
    assert rig.received() == []
    assert rig.plane.dropped["rtx_padding"] == 1


def test_extension_ids_are_remapped_and_others_removed() -> None:
    rig = Rig(ext_map={3: 1})
    try:
        exts = [(3, b"\x85"), (5, b"\x01\x02\x03")]
        rig.feed(vp8(1, keyframe=True, extensions=exts))
        (out,) = rig.received()
        assert out.extensions == [(1, b"\x85")]
        assert out.payload == _core.RtpPacket.parse(vp8(1, keyframe=True)).payload
    finally:
        rig.close()


def test_audio_levels_are_averaged_for_active_speaker() -> None:
    rig = Rig()
    try:
        audio = _core.PlaneStream(rig.pub, ssrc=0x3333, payload_type=111,
                                  codec=_core.PlaneCodec.CODEC_OPUS, clock_rate=48000,
                                  audio_level_id=AUDIO_LEVEL_ID)  # fmt: skip
        rig.pub.add_stream(audio)
        for seq, level in enumerate((0x80 | 20, 30, 0x80 | 40)):
            rig.feed(_core.RtpPacket.build(
                payload_type=111, sequence_number=seq, timestamp=seq * 960, ssrc=0x3333,
                payload=b"opus", extensions=[(AUDIO_LEVEL_ID, bytes([level]))],
            ).serialize())  # fmt: skip
        assert audio.take_audio_levels() == (3, 30, 2)
        assert audio.take_audio_levels() == (0, 127, 0)
    finally:
        rig.close()


def test_unknown_ssrc_is_reported_once_per_second_and_dropped(rig: Rig) -> None:
    for seq in range(5):
        rig.feed(vp8(seq, ssrc=0x9999))
    assert rig.handler.unknown == [0x9999]
    assert rig.plane.dropped["unknown_ssrc"] == 5
    assert rig.received() == []


def test_datagrams_are_demultiplexed_by_first_byte(rig: Rig) -> None:
    rig.plane.feed(b"\x00\x01" + bytes(18), ("127.0.0.1", 1))  # STUN: any address
    rig.plane.feed(b"\x16\xfe\xfd" + bytes(10), rig.PUB)  # DTLS from a bound address
    rig.plane.feed(b"\x16\xfe\xfd" + bytes(10), ("127.0.0.1", 2))  # DTLS, address unknown
    rig.plane.feed(vp8(1, keyframe=True), ("127.0.0.1", 3))  # RTP, address unknown
    rig.plane.feed(b"\x50" + bytes(20), rig.PUB)  # no protocol starts with 0x50
    rig.plane.feed(_core.RtcpPli(1, SSRC).serialize(), rig.PUB)
    assert len(rig.handler.stun) == 1 and len(rig.handler.dtls) == 1
    assert len(rig.handler.rtcp) == 1
    dropped = rig.plane.dropped
    assert dropped["not_ice"] == 2 and dropped["unknown_type"] == 1


def test_a_closed_stream_or_consumer_stops_forwarding(rig: Rig) -> None:
    rig.feed(vp8(1, keyframe=True))
    assert len(rig.received()) == 1
    rig.consumer.close()
    rig.consumer.close()
    rig.feed(vp8(2))
    assert rig.received() == []
    assert rig.stream.consumers == []
    rig.stream.close()
    assert rig.pub.streams == []


def vp8_pid(seq: int, pid: int, tl0: int, *, keyframe: bool, ssrc: int) -> bytes:
    """VP8 with a 15-bit PictureID and TL0PICIDX (X=1, I=1, L=1)."""
    descriptor = bytes([0x90, 0xC0, 0x80 | (pid >> 8), pid & 0xFF, tl0])
    header = bytes([0x00 if keyframe else 0x01, 0, 0])
    return _core.RtpPacket.build(
        payload_type=VIDEO_PT, sequence_number=seq, timestamp=seq * 3000, ssrc=ssrc,
        payload=descriptor + header + bytes(20),
    ).serialize()  # fmt: skip


def test_simulcast_switches_layers_at_a_keyframe_with_continuous_numbering(rig: Rig) -> None:
    high = _core.PlaneStream(
        rig.pub,
        ssrc=0x5555,
        payload_type=VIDEO_PT,
        codec=_core.PlaneCodec.CODEC_VP8,
        clock_rate=90000,
        cache_size=64,
    )
    rig.pub.add_stream(high)
    consumer = rig.consumer
    consumer.attach_layer(high)
    consumer.set_vp8_continuity(True)
    # low layer (SSRC) runs: pid 100.., tl0 7..; high layer: seq 5000.., pid 9000.., tl0 200..
    rig.feed(vp8_pid(10, 100, 7, keyframe=True, ssrc=SSRC))
    rig.feed(vp8_pid(11, 101, 8, keyframe=False, ssrc=SSRC))
    rig.feed(vp8_pid(5000, 9000, 200, keyframe=True, ssrc=0x5555))  # not the target yet
    consumer.set_target(high)
    rig.feed(vp8_pid(5001, 9001, 201, keyframe=False, ssrc=0x5555))  # waits for a keyframe
    rig.feed(vp8_pid(12, 102, 9, keyframe=False, ssrc=SSRC))
    rig.feed(vp8_pid(5002, 9002, 202, keyframe=True, ssrc=0x5555))  # switch here
    rig.feed(vp8_pid(13, 103, 10, keyframe=False, ssrc=SSRC))  # the old layer: no longer
    rig.feed(vp8_pid(5003, 9003, 202, keyframe=False, ssrc=0x5555))
    out = rig.received()
    assert [p.sequence_number for p in out] == [10, 11, 12, 13, 14]
    assert all(p.ssrc == OUT_SSRC for p in out)
    descriptors = [_core.Vp8PayloadDescriptor.parse(p.payload) for p in out]
    assert [d.picture_id for d in descriptors] == [100, 101, 102, 103, 104]
    assert [d.tl0picidx for d in descriptors] == [7, 8, 9, 10, 10]
    assert consumer.layer_switches == 1 and consumer.stream is high
    assert consumer.target is None
    assert out[3].timestamp > out[2].timestamp


def vp8_tid(seq: int, pid: int, tid: int, *, keyframe: bool = False, sync: bool = False) -> bytes:
    """VP8 with PictureID, TL0PICIDX and TID (X=1, I=L=T=1)."""
    descriptor = bytes([0x90, 0xE0, 0x80 | (pid >> 8), pid & 0xFF, 5, (tid << 6) | (sync << 5)])
    header = bytes([0x00 if keyframe else 0x01, 0, 0])
    return _core.RtpPacket.build(
        payload_type=VIDEO_PT, sequence_number=seq, timestamp=seq * 3000, ssrc=SSRC,
        payload=descriptor + header + bytes([seq]) * 20,
    ).serialize()  # fmt: skip


def test_temporal_layers_are_dropped_without_gaps_and_nacks_find_the_right_packet(
    rig: Rig,
) -> None:
    consumer = rig.consumer
    consumer.set_vp8_continuity(True)
    consumer.set_temporal_layer(0)
    for seq, pid, tid in [(1, 10, 0), (2, 11, 2), (3, 12, 1), (4, 13, 2), (5, 14, 0)]:
        rig.feed(vp8_tid(seq, pid, tid, keyframe=seq == 1))
    out = rig.received()
    assert [p.sequence_number for p in out] == [1, 2]
    assert [_core.Vp8PayloadDescriptor.parse(p.payload).picture_id for p in out] == [10, 11]
    assert consumer.dropped_temporal == 3
    # a NACK for out 2 resends in 5 (not in 2, which was dropped)
    assert consumer.retransmit([2]) == 1
    (rtx,) = rig.received()
    assert rtx.payload[2:] == out[1].payload and rtx.timestamp == out[1].timestamp
    # up again: not at a TL2 frame without layer sync, but at the next TL0 frame
    consumer.set_temporal_layer(255)
    rig.feed(vp8_tid(6, 15, 2))
    rig.feed(vp8_tid(7, 16, 0))
    rig.feed(vp8_tid(8, 17, 2))
    out = rig.received()
    assert [p.sequence_number for p in out] == [3, 4]
    assert [_core.Vp8PayloadDescriptor.parse(p.payload).picture_id for p in out] == [12, 13]
    assert consumer.max_temporal_layer == 255


def test_interleaved_unknown_ssrcs_reach_python_once_a_second_each(rig: Rig) -> None:
    for seq in range(30):
        for ssrc in (0x9001, 0x9002, 0x9003):
            rig.feed(vp8(seq, ssrc=ssrc))
    assert sorted(rig.handler.unknown) == [0x9001, 0x9002, 0x9003]
    assert rig.plane.dropped["unknown_ssrc"] == 90


def test_a_consumer_keeps_forwarding_past_half_the_sequence_space(rig: Rig) -> None:
    """The sync point follows the stream: 40,000 in-order packets all go out (found in review:
    a fixed sync point made new packets look old after 32,768)."""
    rig.feed(vp8(0, keyframe=True))
    for seq in range(1, 40000):
        rig.feed(vp8(seq & 0xFFFF, start=False))
        if seq % 500 == 0:
            rig.received()
    rig.received()
    assert rig.consumer.dropped_old == 0
    assert rig.consumer.packets == 40000


def test_a_late_packet_while_dropping_temporal_layers_never_reuses_a_number(rig: Rig) -> None:
    consumer = rig.consumer
    consumer.set_vp8_continuity(True)
    consumer.set_temporal_layer(0)
    rig.feed(vp8_tid(1, 10, 0, keyframe=True))
    rig.feed(vp8_tid(3, 12, 2))  # dropped (TL2); 2 is still on its way
    rig.feed(vp8_tid(4, 13, 0))
    rig.feed(vp8_tid(2, 11, 0))  # late (or repaired): its offset is gone, not sent
    rig.feed(vp8_tid(5, 14, 0))
    seqs = [p.sequence_number for p in rig.received()]
    assert seqs == [1, 3, 4] or seqs == sorted(set(seqs)), seqs
    assert len(set(seqs)) == len(seqs)
