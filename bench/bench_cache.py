"""Packet cache put+get beside the dict-based history aiortc's RTCRtpSender keeps."""

from __future__ import annotations

from typing import Any

from bench.conftest import BATCH
from mediasrv._core import PacketCache, bench_cache_put_get


def test_cache_put_get_mediasrv_c(benchmark: Any, packet: bytes) -> None:
    benchmark.group = "packet cache put + get"
    benchmark.extra_info["packets"] = BATCH
    cache = PacketCache(512)
    benchmark(bench_cache_put_get, cache, packet, BATCH)


def test_cache_put_get_python_dict(benchmark: Any, packet: bytes) -> None:
    benchmark.group = "packet cache put + get"
    benchmark.extra_info["packets"] = BATCH
    benchmark.extra_info["baseline"] = True
    history: dict[int, bytearray] = {}

    def run() -> None:
        for i in range(BATCH):
            history[i % 512] = bytearray(packet)  # the receive buffer is reused: keep a copy
            history.get(i % 512)

    benchmark(run)
