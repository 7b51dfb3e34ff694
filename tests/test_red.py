"""RED (RFC 2198) for Opus through the data plane: a subscriber that kept RED gets the packets
as they came (its payload type), one without gets each packet's primary Opus block; malformed
RED is dropped and counted. (Chromium end to end: e2e/test_networks_browser.py.)"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from mediasrv import _core

RED_PT, OPUS_PT = 63, 111
SSRC = 0x5151


def red_payload(primary: bytes, redundant: list[bytes]) -> bytes:
    """RED blocks: 4-byte headers for the redundant ones (oldest first), 1 for the primary."""
    out = b""
    for i, block in enumerate(redundant):
        offset = 960 * (len(redundant) - i)
        out += struct.pack(
            "!BHB", 0x80 | OPUS_PT, (offset << 2) | (len(block) >> 8), len(block) & 0xFF
        )
    out += bytes([OPUS_PT])
    return out + b"".join(redundant) + primary


class AudioRig:
    PUB = ("127.0.0.1", 50100)

    def __init__(self) -> None:
        self.udp = _core.UdpBatchSocket("127.0.0.1", 0)
        self.plane = _core.WorkerPlane(self.udp, self)
        self.pub = _core.PlaneTransport(self.plane, srtp=False)
        self.pub.set_remote_address(self.PUB)
        self.stream = _core.PlaneStream(
            self.pub, ssrc=SSRC, payload_type=OPUS_PT, codec=_core.PlaneCodec.CODEC_OPUS,
            clock_rate=48000,
        )  # fmt: skip
        self.stream.set_red_payload_type(RED_PT)
        self.pub.add_stream(self.stream)
        self.sinks: list[socket.socket] = []
        self.consumers: list[_core.PlaneConsumer] = []
        for red in (RED_PT, 0):
            sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sink.bind(("127.0.0.1", 0))
            sink.settimeout(0.5)
            transport = _core.PlaneTransport(self.plane, srtp=False)
            transport.set_remote_address(sink.getsockname())
            consumer = _core.PlaneConsumer(
                transport, self.stream, ssrc=0xAA00 + red, payload_type=OPUS_PT
            )
            consumer.set_red(red)
            self.stream.add_consumer(consumer)
            self.sinks.append(sink)
            self.consumers.append(consumer)

    # the plane's handler
    def on_stun(self, *args: object) -> None: ...
    def on_dtls(self, *args: object) -> None: ...
    def on_rtcp(self, *args: object) -> None: ...
    def on_unknown_ssrc(self, *args: object) -> None: ...

    def feed(self, seq: int, payload: bytes, pt: int = RED_PT) -> None:
        packet = _core.RtpPacket.build(
            payload_type=pt, sequence_number=seq, timestamp=seq * 960, ssrc=SSRC, payload=payload
        ).serialize()
        self.plane.feed(packet, self.PUB)

    def received(self, index: int) -> list[_core.RtpPacket]:
        out = []
        sink = self.sinks[index]
        while True:
            try:
                out.append(_core.RtpPacket.parse(sink.recv(2048)))
            except (TimeoutError, BlockingIOError):
                return out
            sink.settimeout(0.05)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        self.udp.close()


@pytest.fixture
def rig() -> Iterator[AudioRig]:
    r = AudioRig()
    yield r
    r.close()


def test_red_passes_to_a_subscriber_that_kept_it_and_is_stripped_for_one_that_did_not(
    rig: AudioRig,
) -> None:
    primary, older = b"P" * 60, b"O" * 55
    rig.feed(1, red_payload(primary, [older]))
    rig.feed(2, red_payload(b"Q" * 61, []))  # no redundancy in this one
    rig.feed(3, b"plain opus", pt=OPUS_PT)  # the publisher may send Opus without RED
    kept, stripped = rig.received(0), rig.received(1)
    assert [(p.payload_type, p.payload) for p in kept] == [
        (RED_PT, red_payload(primary, [older])),
        (RED_PT, red_payload(b"Q" * 61, [])),
        (OPUS_PT, b"plain opus"),
    ]
    assert [(p.payload_type, p.payload) for p in stripped] == [
        (OPUS_PT, primary),
        (OPUS_PT, b"Q" * 61),
        (OPUS_PT, b"plain opus"),
    ]
    assert rig.stream.red_packets == 2


@pytest.mark.parametrize(
    "payload",
    [
        b"",  # nothing
        bytes([0x80 | OPUS_PT, 0, 0]),  # a redundant header cut short
        struct.pack("!BHB", 0x80 | OPUS_PT, 0x0003, 0xFF)
        + bytes([OPUS_PT])
        + b"x" * 10,  # too long
        bytes([OPUS_PT]),  # a primary header and no data
    ],
)
def test_malformed_red_is_dropped_and_counted_for_the_stripping_subscriber(
    rig: AudioRig, payload: bytes
) -> None:
    rig.feed(1, payload)
    assert rig.received(1) == []
    assert rig.consumers[1].red_malformed == 1
    rig.feed(2, red_payload(b"ok" * 20, []))
    assert [p.payload for p in rig.received(1)] == [b"ok" * 20]
