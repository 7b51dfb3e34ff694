"""Smoke run of the recording benchmark (bench/recording_bench.py) inside `make test`: both
modes forward everything, and the recorded one writes the stream to its journal. The overhead
itself is measured by `make bench` (docs/benchmarks.md), never asserted here."""

from __future__ import annotations

import uvloop

from bench.recording_bench import overhead
from bench.server_bench import run


def test_recording_benchmark_smoke() -> None:
    results = uvloop.run(run([2], seconds=1.0, modes=("simple", "recorded")))
    for result in results:
        assert result.forwarded_pps > 0.8 * result.rate_pps * result.subscribers, result
        assert result.loss < 0.02, result
    simple, recorded = results
    assert simple.recorded_bytes_per_s == 0
    # about the stream's own rate: 1,100-byte packets plus 20 bytes of record framing
    assert recorded.recorded_bytes_per_s > 0.7 * recorded.rate_pps * 1100, recorded
    (row,) = overhead(results)
    assert row["forward_only_us"] > 0 and row["forward_and_record_us"] > 0
