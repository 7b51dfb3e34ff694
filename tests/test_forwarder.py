"""The forwarding loop over real loopback sockets, with pylibsrtp as the peers' SRTP stacks."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pylibsrtp
import pytest

from mediasrv._core import (
    ConsumerTarget,
    Forwarder,
    PacketCache,
    RtpPacket,
    SrtpProfile,
    SrtpSession,
    UdpBatchSocket,
)

PROFILE = SrtpProfile.AES_CM_128_HMAC_SHA1_80
PUBLISHER_KEY = bytes(range(30))
CONSUMER_KEYS = [bytes([0xA0 + k]) * 30 for k in range(3)]


def pylibsrtp_session(key: bytes, outbound: bool) -> Any:
    policy = pylibsrtp.Policy(key=key, srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    policy.ssrc_type = (
        pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    )
    return pylibsrtp.Session(policy=policy)


def media(seq: int) -> RtpPacket:
    return RtpPacket.build(
        payload_type=96,
        sequence_number=seq & 0xFFFF,
        timestamp=(seq * 3000) & 0xFFFFFFFF,
        ssrc=0x0BADCAFE,
        marker=seq % 10 == 0,
        extensions=[(1, b"0"), (5, (seq & 0xFFFF).to_bytes(2, "big"))],
        payload=os.urandom(200 + seq % 900),
    )


def receive(sock: socket.socket, count: int, timeout: float = 5.0) -> list[bytes]:
    sock.settimeout(timeout)
    return [sock.recv(4096) for _ in range(count)]


def pump(forwarder: Forwarder, expected: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    received = 0
    while received < expected and time.monotonic() < deadline:
        got = forwarder.process(now_ms=int(time.monotonic() * 1000))
        received += got
        if not got:
            time.sleep(0.001)
    assert received == expected


class Rig:
    def __init__(self, consumers: int) -> None:
        self.socket = UdpBatchSocket("127.0.0.1", 0, recv_buffer=1 << 20)
        self.cache = PacketCache(256)
        self.forwarder = Forwarder(
            self.socket, SrtpSession(PROFILE, PUBLISHER_KEY, outbound=False), self.cache
        )
        self.publisher = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.publisher_srtp = pylibsrtp_session(PUBLISHER_KEY, outbound=True)
        self.sinks: list[socket.socket] = []
        self.targets: list[ConsumerTarget] = []
        for k in range(consumers):
            sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sink.bind(("127.0.0.1", 0))
            sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.sinks.append(sink)
            target = ConsumerTarget(
                SrtpSession(PROFILE, CONSUMER_KEYS[k], outbound=True),
                sink.getsockname(),
                ssrc=0x1000 + k,
                payload_type=100 + k,
                sequence_offset=1000 * k,
                timestamp_offset=90_000 * k,
            )
            self.targets.append(target)
            self.forwarder.add_consumer(target)

    def publish(self, data: bytes) -> None:
        self.publisher.sendto(data, self.socket.local_address)

    def close(self) -> None:
        self.socket.close()
        self.publisher.close()
        for sink in self.sinks:
            sink.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig(consumers=3)
    yield r
    r.close()


def test_forwards_every_packet_rewritten_to_every_consumer(rig: Rig) -> None:
    sent = [media(seq) for seq in range(65500, 65600)]  # crosses the 16-bit wrap-around
    for packet in sent:
        rig.publish(rig.publisher_srtp.protect(packet.serialize()))
    pump(rig.forwarder, len(sent))
    for k, sink in enumerate(rig.sinks):
        srtp = pylibsrtp_session(CONSUMER_KEYS[k], outbound=False)
        got = [RtpPacket.parse(srtp.unprotect(d)) for d in receive(sink, len(sent))]
        for original, forwarded in zip(sent, got, strict=True):
            assert forwarded.ssrc == 0x1000 + k
            assert forwarded.payload_type == 100 + k
            assert forwarded.sequence_number == (original.sequence_number + 1000 * k) & 0xFFFF
            assert forwarded.timestamp == (original.timestamp + 90_000 * k) & 0xFFFFFFFF
            assert forwarded.marker == original.marker
            assert forwarded.extensions == original.extensions
            assert forwarded.payload == original.payload
        assert rig.targets[k].forwarded == len(sent)
    assert rig.forwarder.received == len(sent)
    assert rig.forwarder.forwarded == 3 * len(sent)


def test_packet_cache_keeps_decrypted_packets_for_retransmission(rig: Rig) -> None:
    sent = [media(seq) for seq in range(10)]
    for packet in sent:
        rig.publish(rig.publisher_srtp.protect(packet.serialize()))
    pump(rig.forwarder, len(sent))
    for packet in sent:
        assert rig.cache.get(packet.sequence_number) == packet.serialize()


def test_bad_datagrams_are_dropped_counted_and_forwarding_goes_on(rig: Rig) -> None:
    good = media(1)
    tampered = bytearray(rig.publisher_srtp.protect(media(2).serialize()))
    tampered[40] ^= 0xFF
    rtcp = bytes([0x81, 200]) + bytes(26)  # an SR: RTCP, not forwarded here
    stun = bytes([0x00, 0x01]) + bytes(18)
    rig.publish(b"\x90")  # one byte: not even a header
    rig.publish(stun)
    rig.publish(rtcp)
    rig.publish(bytes(tampered))
    rig.publish(rig.publisher_srtp.protect(good.serialize()))
    pump(rig.forwarder, 5)
    assert rig.forwarder.dropped_not_rtp == 3
    assert rig.forwarder.dropped_unprotect == 1
    assert rig.forwarder.forwarded == 3
    srtp = pylibsrtp_session(CONSUMER_KEYS[0], outbound=False)
    (only,) = receive(rig.sinks[0], 1)
    assert RtpPacket.parse(srtp.unprotect(only)).payload == good.payload


def test_replayed_packet_is_dropped(rig: Rig) -> None:
    wire = rig.publisher_srtp.protect(media(7).serialize())
    rig.publish(wire)
    rig.publish(wire)
    pump(rig.forwarder, 2)
    assert rig.forwarder.dropped_unprotect == 1
    assert rig.forwarder.forwarded == 3


def test_removed_consumer_receives_nothing_more(rig: Rig) -> None:
    rig.forwarder.remove_consumer(rig.targets[1])
    assert rig.forwarder.consumers == [rig.targets[0], rig.targets[2]]
    rig.publish(rig.publisher_srtp.protect(media(3).serialize()))
    pump(rig.forwarder, 1)
    assert rig.forwarder.forwarded == 2
    rig.sinks[1].settimeout(0.2)
    with pytest.raises(TimeoutError):
        rig.sinks[1].recv(4096)


def test_invalid_consumer_target_is_refused() -> None:
    session = SrtpSession(PROFILE, CONSUMER_KEYS[0], outbound=True)
    with pytest.raises(ValueError, match=r"payload type 128 is outside 0\.\.127"):
        ConsumerTarget(session, ("127.0.0.1", 9), ssrc=1, payload_type=128)
    with pytest.raises(ValueError, match="SSRC"):
        ConsumerTarget(session, ("127.0.0.1", 9), ssrc=1 << 32, payload_type=96)
