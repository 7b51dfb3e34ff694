"""RTP header parse (and parse+serialize) beside aiortc's pure-Python RtpPacket."""

from __future__ import annotations

from typing import Any

from aiortc.rtp import RtpPacket as AiortcRtpPacket

from bench.conftest import BATCH
from mediasrv._core import RtpPacket, bench_rtp_parse


def test_rtp_parse_mediasrv_c(benchmark: Any, packet: bytes) -> None:
    benchmark.group = "rtp parse"
    benchmark.extra_info["packets"] = BATCH
    benchmark(bench_rtp_parse, packet, BATCH)


def test_rtp_parse_serialize_mediasrv_python_api(benchmark: Any, packet: bytes) -> None:
    benchmark.group = "rtp parse"
    benchmark.extra_info["packets"] = BATCH

    def run() -> None:
        for _ in range(BATCH):
            RtpPacket.parse(packet).serialize()

    benchmark(run)


def test_rtp_parse_serialize_aiortc(benchmark: Any, packet: bytes) -> None:
    benchmark.group = "rtp parse"
    benchmark.extra_info["packets"] = BATCH
    benchmark.extra_info["baseline"] = True

    def run() -> None:
        for _ in range(BATCH):
            AiortcRtpPacket.parse(packet).serialize()

    benchmark(run)
