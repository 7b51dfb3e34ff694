"""The forwarding micro-loop: recv batch -> unprotect -> rewrite for K consumers -> protect -> send.

Each round the publisher sends one batch of 64 fresh SRTP packets to the forwarder's socket
(untimed setup); the timed part receives and forwards them to K consumers over loopback. The
baseline does the same with aiortc's RtpPacket, pylibsrtp and socket.sendto, as a pure-Python
SFU would.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pylibsrtp
import pytest
from aiortc.rtp import RtpPacket as AiortcRtpPacket

from bench.conftest import KEY, video_packet
from mediasrv._core import (
    ConsumerTarget,
    Forwarder,
    PacketCache,
    SrtpProfile,
    SrtpSession,
    UdpBatchSocket,
    srtp_key_length,
)

BURST = 64
ROUNDS = 150
PROFILE = SrtpProfile.AES_CM_128_HMAC_SHA1_80


class Rig:
    """A publisher, a forwarder socket and one sink socket all consumers send to."""

    def __init__(self) -> None:
        self.publisher = UdpBatchSocket("127.0.0.1", 0)
        self.forwarder_socket = UdpBatchSocket("127.0.0.1", 0, recv_buffer=4 << 20)
        self.sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sink.bind(("127.0.0.1", 0))
        self.sink.setblocking(False)
        protector = SrtpSession(PROFILE, KEY, outbound=True)
        # fresh sequence numbers for every round: the inbound replay window rejects repeats
        self.bursts = [
            [protector.protect(video_packet(r * BURST + i + 1)) for i in range(BURST)]
            for r in range(ROUNDS + 10)
        ]
        self.round = 0

    def send_burst(self) -> None:
        self.drain_sink()
        burst = self.bursts[self.round % len(self.bursts)]
        self.round += 1
        target = self.forwarder_socket.local_address
        assert self.publisher.send_batch([(p, target) for p in burst]) == BURST

    def drain_sink(self) -> None:
        while True:
            try:
                self.sink.recv(4096)
            except BlockingIOError:
                return

    def close(self) -> None:
        self.publisher.close()
        self.forwarder_socket.close()
        self.sink.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.close()


@pytest.mark.parametrize("consumers", [1, 10])
@pytest.mark.parametrize(
    "profile", [SrtpProfile.AES_CM_128_HMAC_SHA1_80, SrtpProfile.AEAD_AES_128_GCM]
)
def test_forward_mediasrv(benchmark: Any, rig: Rig, consumers: int, profile: SrtpProfile) -> None:
    """Consumers' SRTP profile varies; the publisher's stays AES_CM (what aiortc sends)."""
    benchmark.group = f"forward to {consumers} consumers"
    benchmark.extra_info["packets"] = BURST * consumers
    forwarder = Forwarder(
        rig.forwarder_socket, SrtpSession(PROFILE, KEY, outbound=False), PacketCache(1024)
    )
    sink = rig.sink.getsockname()
    for k in range(consumers):
        session = SrtpSession(profile, bytes([k]) * srtp_key_length(profile), outbound=True)
        forwarder.add_consumer(ConsumerTarget(session, sink, ssrc=0x1000 + k, payload_type=100))

    def run() -> None:
        received = 0
        while received < BURST:
            received += forwarder.process()

    benchmark.pedantic(run, setup=rig.send_burst, rounds=ROUNDS)
    assert forwarder.dropped_unprotect == 0
    assert forwarder.forwarded == forwarder.received * consumers


@pytest.mark.parametrize("consumers", [1, 10])
def test_forward_kernel_sendmmsg_only(benchmark: Any, rig: Rig, consumers: int) -> None:
    """The floor: the kernel's cost of sending the same datagrams over loopback, nothing else."""
    benchmark.group = f"forward to {consumers} consumers"
    benchmark.extra_info["packets"] = BURST * consumers
    sink = rig.sink.getsockname()
    burst = [(p, sink) for p in rig.bursts[0]] * consumers

    def run() -> None:
        sent = 0
        while sent < len(burst):
            sent += rig.publisher.send_batch(burst[sent : sent + 64])

    benchmark.pedantic(run, setup=rig.drain_sink, rounds=ROUNDS)


@pytest.mark.parametrize("consumers", [1, 10])
def test_forward_aiortc_python(benchmark: Any, rig: Rig, consumers: int) -> None:
    benchmark.group = f"forward to {consumers} consumers"
    benchmark.extra_info["packets"] = BURST * consumers
    benchmark.extra_info["baseline"] = True
    inbound = pylibsrtp_session(KEY, pylibsrtp.Policy.SSRC_ANY_INBOUND)
    outbound = [
        pylibsrtp_session(bytes([k]) * 30, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        for k in range(consumers)
    ]
    sock = socket.socket(fileno=rig.forwarder_socket.fileno())
    sink = rig.sink.getsockname()
    history: dict[int, bytes] = {}

    def run() -> None:
        received = 0
        while received < BURST:
            try:
                data = sock.recv(2048)
            except BlockingIOError:
                continue
            received += 1
            packet = AiortcRtpPacket.parse(inbound.unprotect(data))
            history[packet.sequence_number % 1024] = data
            for k, session in enumerate(outbound):
                packet.ssrc = 0x1000 + k
                packet.payload_type = 100
                sock.sendto(session.protect(packet.serialize()), sink)

    try:
        benchmark.pedantic(run, setup=rig.send_burst, rounds=ROUNDS)
    finally:
        sock.detach()


def pylibsrtp_session(key: bytes, ssrc_type: int) -> Any:
    policy = pylibsrtp.Policy(key=key, srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    policy.ssrc_type = ssrc_type
    return pylibsrtp.Session(policy=policy)
