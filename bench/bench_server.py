"""Smoke run of the whole-server benchmark (bench/server_bench.py) inside `make test`: a
bounded run with real WebRTC transports that must forward everything to every subscriber.
`make bench` runs the full N = 1, 10, 50, 100 series and docs/benchmarks.md reports it."""

from __future__ import annotations

import uvloop

from bench.server_bench import run


def test_whole_server_forwarding_smoke() -> None:
    results = uvloop.run(run([1, 5], seconds=1.0, modes=("simple", "simulcast", "tcp")))
    for result in results:
        assert result.forwarded_pps > 0.8 * result.rate_pps * result.subscribers, result
        assert result.loss < 0.02, result
        assert result.server_cpu_us_per_packet > 0, result
