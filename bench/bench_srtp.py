"""Header rewrite + SRTP protect, and protect alone, beside aiortc's Python path (pylibsrtp)."""

from __future__ import annotations

from typing import Any

import pylibsrtp
import pytest
from aiortc.rtp import RtpPacket as AiortcRtpPacket

from bench.conftest import BATCH, KEY
from mediasrv._core import SrtpProfile, SrtpSession, bench_rewrite_protect, srtp_key_length


def pylibsrtp_outbound() -> Any:
    policy = pylibsrtp.Policy(key=KEY, srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    policy.ssrc_type = pylibsrtp.Policy.SSRC_ANY_OUTBOUND
    policy.allow_repeat_tx = True
    return pylibsrtp.Session(policy=policy)


@pytest.mark.parametrize(
    "profile", [SrtpProfile.AES_CM_128_HMAC_SHA1_80, SrtpProfile.AEAD_AES_128_GCM]
)
def test_rewrite_protect_mediasrv_c(benchmark: Any, packet: bytes, profile: SrtpProfile) -> None:
    benchmark.group = "rewrite + protect"
    benchmark.extra_info["packets"] = BATCH
    session = SrtpSession(
        profile, KEY[: srtp_key_length(profile)], outbound=True, allow_repeat_tx=True
    )
    rounds = iter(range(1 << 30))

    def run() -> None:
        bench_rewrite_protect(session, packet, BATCH, next(rounds) * BATCH)

    benchmark(run)


def test_rewrite_protect_aiortc(benchmark: Any, packet: bytes) -> None:
    benchmark.group = "rewrite + protect"
    benchmark.extra_info["packets"] = BATCH
    benchmark.extra_info["baseline"] = True
    session = pylibsrtp_outbound()
    rounds = iter(range(1 << 30))

    def run() -> None:
        first = next(rounds) * BATCH
        for i in range(BATCH):
            rtp = AiortcRtpPacket.parse(packet)
            rtp.ssrc = 0x11223344
            rtp.sequence_number = (first + i) & 0xFFFF
            rtp.timestamp = (rtp.timestamp + 3000) & 0xFFFFFFFF
            rtp.payload_type = 96
            session.protect(rtp.serialize())

    benchmark(run)


def test_protect_mediasrv(benchmark: Any, packet: bytes) -> None:
    benchmark.group = "protect (one Python call per packet)"
    benchmark.extra_info["packets"] = BATCH
    session = SrtpSession(
        SrtpProfile.AES_CM_128_HMAC_SHA1_80, KEY, outbound=True, allow_repeat_tx=True
    )

    def run() -> None:
        for _ in range(BATCH):
            session.protect(packet)

    benchmark(run)


def test_protect_pylibsrtp(benchmark: Any, packet: bytes) -> None:
    benchmark.group = "protect (one Python call per packet)"
    benchmark.extra_info["packets"] = BATCH
    benchmark.extra_info["baseline"] = True
    session = pylibsrtp_outbound()

    def run() -> None:
        for _ in range(BATCH):
            session.protect(packet)

    benchmark(run)
