"""Shared inputs for the microbenchmarks: a realistic video packet and SRTP keys."""

from __future__ import annotations

import os

import pytest

from mediasrv._core import RtpPacket

#: packets per timed call: per-packet costs are the call's time divided by this
BATCH = 1000
KEY = bytes(range(30))  # master key (16) + salt (14), AES_CM_128_HMAC_SHA1_80


def video_packet(sequence_number: int = 1000, size: int = 1200) -> bytes:
    """A VP8-sized packet with the extensions Chrome sends (MID, abs-send-time, transport-cc)."""
    return RtpPacket.build(
        payload_type=96,
        sequence_number=sequence_number,
        timestamp=90_000,
        ssrc=0x0BADCAFE,
        marker=False,
        extensions=[(1, b"0"), (3, b"\x12\x34\x56"), (5, b"\x00\x07")],
        payload=os.urandom(size - 28),
    ).serialize()


@pytest.fixture(scope="session")
def packet() -> bytes:
    return video_packet()
