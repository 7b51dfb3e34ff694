"""What recording one producer costs: the server's CPU with the publisher's stream forwarded
only, and forwarded and recorded, measured in turns in the same run.

    python -m bench.recording_bench [--subscribers 1,10] [--seconds 5] [--rounds 3]

Each round measures "simple" and "recorded", in alternating order (bench/server_bench.py:
one publisher of 1,100-byte VP8 packets, N WebRTC subscribers, the server in its own process)
for each N; the report gives the median server CPU per published packet of each mode and the
overhead of recording relative to forwarding only (target: under 10%).
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict

import uvloop

from bench.server_bench import Result, run


def overhead(results: list[Result]) -> list[dict[str, float]]:
    rows = []
    for n in sorted({r.subscribers for r in results}):
        simple = [r.server_cpu_us_per_published_packet for r in results
                  if r.subscribers == n and r.mode == "simple"]  # fmt: skip
        recorded = [r.server_cpu_us_per_published_packet for r in results
                    if r.subscribers == n and r.mode == "recorded"]  # fmt: skip
        base, with_recording = statistics.median(simple), statistics.median(recorded)
        rows.append(
            {
                "subscribers": n,
                "forward_only_us": base,
                "forward_and_record_us": with_recording,
                "overhead": (with_recording - base) / base,
                "rounds": len(simple),
            }
        )
    return rows


def render(rows: list[dict[str, float]]) -> str:
    lines = [
        "| subscribers | server CPU µs / published packet, forwarding only | "
        "forwarding + recording | recording overhead |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['subscribers']:.0f} | {row['forward_only_us']:.1f} | "
            f"{row['forward_and_record_us']:.1f} | {row['overhead']:+.1%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", default="1,10")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    counts = [int(n) for n in args.subscribers.split(",")]
    results: list[Result] = []
    for round_ in range(args.rounds):
        # turns alternate, so that whatever the server accumulates favours neither mode
        modes = ("simple", "recorded") if round_ % 2 == 0 else ("recorded", "simple")
        results += uvloop.run(run(counts, args.seconds, modes))
    rows = overhead(results)
    print(render(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"rows": rows, "runs": [asdict(r) for r in results]}, out, indent=2)


if __name__ == "__main__":
    main()
