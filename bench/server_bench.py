"""Whole-server forwarding benchmark: one publisher, N subscribers, real WebRTC transports.

    python -m bench.server_bench [--subscribers 1,10,50,100] [--seconds 5] [--json out.json]

The server runs in its own process (its CPU time is what is measured); the publisher and the
subscribers are BenchPeers (bench/webrtc_peer.py) in this process. For each N: a fresh room, a
publisher sending 1,100-byte synthetic VP8 packets at min(1000, 50000 / N) packets/s, a
warm-up second, then a window in which the server's CPU time, its forwarded packets, the
subscribers' received packets and, at five of the subscribers, each packet's
publisher-to-subscriber latency (measured in this process, so it includes its own scheduling)
are measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import uvloop

from bench.webrtc_peer import BenchPeer, Link

SSRC = 0x5EED
LATENCY_SAMPLERS = 5


@dataclass
class Result:
    subscribers: int
    rate_pps: int
    seconds: float
    forwarded_pps: float
    server_cpu_us_per_packet: float
    server_cpu_share: float
    loss: float
    latency_p50_us: float
    latency_p95_us: float
    latency_p99_us: float


class ServerProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.loadserver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError(f"the server did not start: {line!r}")
        self.port = int(line.split()[1])

    def stats(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        result: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return result

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def percentile(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


async def send_for(link: Link, rate: int, seconds: float, seq: list[int]) -> int:
    """Send at rate packets/s in 10 ms ticks; a keyframe start every 30 packets."""
    sent = 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate) - sent
        for _ in range(max(0, due)):
            n = seq[0]
            link.send_video(SSRC, n, n * 3000 // 10, keyframe=n % 30 == 0)
            seq[0] = n + 1
            sent += 1
        await asyncio.sleep(0.01)
    return sent


async def measure(server: ServerProcess, subscribers: int, seconds: float, room: str) -> Result:
    url = f"ws://127.0.0.1:{server.port}/ws"
    rate = min(1000, 50000 // subscribers)
    publisher = BenchPeer(url, room)
    await publisher.join(auto_subscribe=False)
    pub_link = await publisher.publish_video(SSRC)
    peers: list[BenchPeer] = []
    links: list[Link] = []

    async def subscribe() -> None:
        peer = BenchPeer(url, room)
        await peer.join(auto_subscribe=True)
        peers.append(peer)
        link = await peer.answer_next_offer()
        # the client process must not become the bottleneck: at most 5 subscribers decrypt
        # and time every packet, the rest count datagrams
        link.measure = len(links) < LATENCY_SAMPLERS
        links.append(link)

    try:
        for start in range(0, subscribers, 10):
            await asyncio.gather(*(subscribe() for _ in range(min(10, subscribers - start))))
        seq = [0]
        await send_for(pub_link, rate, 1.0, seq)  # warm-up: consumers sync on a keyframe
        before = server.stats()
        received_before = sum(link.received for link in links)
        for link in links:
            link.latencies_us.clear()
        t0 = time.monotonic()
        sent = await send_for(pub_link, rate, seconds, seq)
        await asyncio.sleep(0.1)  # the last packets in flight
        elapsed = time.monotonic() - t0
        after = server.stats()
        received = sum(link.received for link in links) - received_before
        forwarded = after["forwarded"] - before["forwarded"]
        cpu = after["cpu"] - before["cpu"]
        latencies = [v for link in links for v in link.latencies_us]
        return Result(
            subscribers=subscribers,
            rate_pps=rate,
            seconds=round(elapsed, 2),
            forwarded_pps=round(forwarded / elapsed),
            server_cpu_us_per_packet=round(cpu / max(1, forwarded) * 1e6, 2),
            server_cpu_share=round(cpu / elapsed, 3),
            loss=round(max(0.0, 1 - received / max(1, sent * subscribers)), 4),
            latency_p50_us=percentile(latencies, 0.50),
            latency_p95_us=percentile(latencies, 0.95),
            latency_p99_us=percentile(latencies, 0.99),
        )
    finally:
        for peer in [*peers, publisher]:
            await peer.close()


async def run(counts: list[int], seconds: float) -> list[Result]:
    server = ServerProcess()
    try:
        return [await measure(server, n, seconds, f"bench-{n}") for n in counts]
    finally:
        server.close()


def render(results: list[Result]) -> str:
    lines = [
        "| subscribers | publisher pkt/s | forwarded pkt/s | server CPU µs / forwarded packet "
        "| server CPU share | loss | latency p50 / p95 / p99 (µs) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.subscribers} | {r.rate_pps} | {r.forwarded_pps:,.0f} | "
            f"{r.server_cpu_us_per_packet:.2f} | {r.server_cpu_share:.0%} | {r.loss:.2%} | "
            f"{r.latency_p50_us:.0f} / {r.latency_p95_us:.0f} / {r.latency_p99_us:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", default="1,10,50,100")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    counts = [int(n) for n in args.subscribers.split(",")]
    results = uvloop.run(run(counts, args.seconds))
    print(render(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump([asdict(r) for r in results], out, indent=2)


if __name__ == "__main__":
    main()
