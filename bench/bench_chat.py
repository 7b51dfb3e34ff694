"""Smoke run of the chat benchmark (bench/chat_bench.py) in `make test`: every message is
stored and delivered to every peer; docs/benchmarks.md reports the full run."""

from __future__ import annotations

import uvloop

from bench.chat_bench import measure


def test_chat_benchmark_smoke() -> None:
    result = uvloop.run(measure(peers=4, messages=50, window=8))
    assert result["deliveries_per_second"] > 0
    assert result["latency_p99_ms"] < 5000
