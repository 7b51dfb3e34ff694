"""Print a pytest-benchmark JSON file as per-packet costs and ratios against each group's baseline.

Usage: python -m bench.report .benchmarks/latest.json
"""

from __future__ import annotations

import json
import platform
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def per_packet_us(bench: dict[str, Any], stat: str = "median") -> float:
    packets = int(bench.get("extra_info", {}).get("packets", 1))
    return float(bench["stats"][stat]) / packets * 1e6


def render(data: dict[str, Any]) -> str:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bench in data["benchmarks"]:
        groups[bench["group"] or bench["name"]].append(bench)
    cpu = data.get("machine_info", {}).get("cpu", {}).get("brand_raw", platform.processor())
    lines = [
        f"machine: {cpu}, {data.get('machine_info', {}).get('python_implementation', '')} "
        f"{data.get('machine_info', {}).get('python_version', '')}",
        "",
        "| group | benchmark | µs per packet, median | min | speed-up vs baseline (median) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for group in sorted(groups):
        members = groups[group]
        baseline = next((b for b in members if b.get("extra_info", {}).get("baseline")), None)
        base_cost = per_packet_us(baseline) if baseline else None
        for bench in sorted(members, key=per_packet_us):
            cost = per_packet_us(bench)
            if bench is baseline:
                ratio = "baseline"
            elif base_cost:
                ratio = f"{base_cost / cost:.1f}x"
            else:
                ratio = ""
            best = per_packet_us(bench, "min")
            lines.append(f"| {group} | {bench['name']} | {cost:.3f} | {best:.3f} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.report BENCHMARK_JSON", file=sys.stderr)
        return 2
    print(render(json.loads(Path(argv[1]).read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
