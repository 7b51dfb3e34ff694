"""The load generator's results (bench/loadgen.py): one StepResult per ramp step, the Markdown
table, the JSON document and the matplotlib plot."""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class StepResult:
    subscribers_per_room: int
    subscribers: int  # in all rooms
    peers: int  # publishers and subscribers in all rooms
    seconds: float  # the measured window
    published_pps: float  # RTP packets/s the publishers sent (all streams, all layers)
    expected_pps: float  # packets/s the subscribers should have received together
    received_pps: float  # packets/s the subscribers received together
    forwarded_pps: float | None  # the server's forwarded packets/s (None: not known)
    server_cpu_us_per_packet: float | None  # server CPU µs per forwarded packet
    server_cpu_share: float | None  # server CPU seconds per second (1.0: one core)
    client_cpu_share: float  # this process (all peers): CPU seconds per second
    loss: float  # 1 - received / expected, at the receivers
    latency_p50_us: float | None  # publisher send -> subscriber receive, at the samplers
    latency_p99_us: float | None
    latency_samples: int
    join_p50_ms: float | None  # join + first offer/answer + ICE/DTLS connected, this step's
    join_p99_ms: float | None
    joins: int
    join_failures: int
    keyframe_requests: int  # PLI/FIR the publishers received in the window
    send_failures: int  # packets this process could not send (socket buffer full)
    skipped_frames: int  # frames the publishers skipped because this process was late
    server_dropped: int | None  # datagrams the server dropped in the window
    joining_seconds: float = 0.0  # how long this step's joins took together


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def _num(value: float | None, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, fmt)


def render_table(steps: list[StepResult]) -> str:
    lines = [
        "| subs/room | peers | sent pkt/s | forwarded pkt/s | server CPU µs/fwd pkt "
        "| server CPU | client CPU | loss | latency p50 / p99 (µs) | join p50 / p99 (ms) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in steps:
        share = None if s.server_cpu_share is None else s.server_cpu_share * 100
        fails = f" ({s.join_failures} failed)" if s.join_failures else ""
        lines.append(
            f"| {s.subscribers_per_room} | {s.peers} | {s.published_pps:,.0f} "
            f"| {_num(s.forwarded_pps, ',.0f')} | {_num(s.server_cpu_us_per_packet, '.2f')} "
            f"| {_num(share, '.0f')}{'%' if share is not None else ''} "
            f"| {s.client_cpu_share:.0%} | {s.loss:.2%} "
            f"| {_num(s.latency_p50_us, '.0f')} / {_num(s.latency_p99_us, '.0f')} "
            f"| {_num(s.join_p50_ms, '.1f')} / {_num(s.join_p99_ms, '.1f')}{fails} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / (1 << 20), 1)
                break
    except (OSError, ValueError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def steps_json(steps: list[StepResult]) -> list[dict[str, Any]]:
    return [asdict(s) for s in steps]


def check_matplotlib() -> str | None:
    """None when matplotlib can be imported, else what to do about it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "--plot needs matplotlib: pip install 'mediasrv[bench]' (or pip install matplotlib)"
    return None


def write_plot(path: Path, steps: list[StepResult], title: str) -> None:
    """Server CPU per forwarded packet (and the server's CPU share) above, loss below, against
    the number of subscribers in all rooms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    x = [s.subscribers for s in steps]
    cpu = [math.nan if s.server_cpu_us_per_packet is None else s.server_cpu_us_per_packet
           for s in steps]  # fmt: skip
    share = [math.nan if s.server_cpu_share is None else s.server_cpu_share * 100 for s in steps]
    loss = [s.loss * 100 for s in steps]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 6.5))
    top.plot(x, cpu, "o-", color="tab:blue", label="server CPU µs / forwarded packet")
    top.set_ylabel("µs / forwarded packet", color="tab:blue")
    top.set_ylim(bottom=0)
    top.grid(True, alpha=0.3)
    right = top.twinx()
    right.plot(x, share, "s--", color="tab:orange", label="server CPU (% of one core)")
    right.set_ylabel("server CPU (% of one core)", color="tab:orange")
    right.set_ylim(bottom=0)
    handles = top.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    top.legend(handles, [str(h.get_label()) for h in handles], loc="upper left", fontsize=8)
    top.set_title(title, fontsize=10)
    bottom.plot(x, loss, "o-", color="tab:red")
    bottom.set_ylabel("loss at the receivers (%)")
    bottom.set_xlabel("subscribers (all rooms)")
    bottom.set_ylim(bottom=0, top=max(1.0, max(loss, default=0.0) * 1.2))
    bottom.grid(True, alpha=0.3)
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
