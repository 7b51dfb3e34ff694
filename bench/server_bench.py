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
from pathlib import Path
from typing import Any

import uvloop

from bench.webrtc_peer import BenchPeer, Link

SSRC = 0x5EED
LATENCY_SAMPLERS = 5


@dataclass
class Result:
    mode: str
    subscribers: int
    rate_pps: int
    seconds: float
    forwarded_pps: float
    server_cpu_us_per_packet: float
    server_cpu_share: float
    server_cpu_us_per_published_packet: float
    recorded_bytes_per_s: float
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
            cwd=Path(__file__).resolve().parent.parent,  # where `bench` imports from
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError(f"the server did not start: {line!r}")
        self.port = int(line.split()[1])

    def command(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        result: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return result

    def stats(self) -> dict[str, Any]:
        return self.command("stats")

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


RIDS = ["q", "h", "f"]
LAYER_SSRCS = [SSRC + 1, SSRC + 2, SSRC]  # the top layer is the one subscribers receive
LOWER_LAYER_SHARE = [1 / 8, 1 / 3]  # packets of layers q and h per packet of layer f
MID_RID_IDS = (1, 2)


async def send_for(
    link: Link, rate: int, seconds: float, seq: list[int], simulcast: bool = False
) -> int:
    """Send at rate packets/s in 10 ms ticks; a keyframe start every 30 packets. With
    simulcast the two lower layers go too (at 1/8 and 1/3 of the rate; MID and RID extensions
    on every packet, as a browser sends them before its SSRCs are acknowledged)."""
    sent = 0
    lower_sent = [0, 0]
    start = time.monotonic()
    mid_id, rid_id = MID_RID_IDS
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate) - sent
        for _ in range(max(0, due)):
            n = seq[0]
            if simulcast:
                link.send_video(LAYER_SSRCS[2], n, n * 300, keyframe=n % 30 == 0,
                                extensions=[(mid_id, b"0"), (rid_id, b"f")])  # fmt: skip
            else:
                link.send_video(SSRC, n, n * 300, keyframe=n % 30 == 0)
            seq[0] = n + 1
            sent += 1
        if simulcast:
            for layer, share in enumerate(LOWER_LAYER_SHARE):
                for _ in range(max(0, int(elapsed * rate * share) - lower_sent[layer])):
                    n = seq[1 + layer]
                    seq[1 + layer] = n + 1
                    lower_sent[layer] += 1
                    rid = RIDS[layer].encode()
                    link.send_video(LAYER_SSRCS[layer], n, n * 300, keyframe=n % 10 == 0,
                                    size=500 + 300 * layer,
                                    extensions=[(mid_id, b"0"), (rid_id, rid)])  # fmt: skip
        await asyncio.sleep(0.01)
    return sent


async def measure(
    server: ServerProcess,
    subscribers: int,
    seconds: float,
    room: str,
    mode: str = "simple",
    total_rate: int = 50000,
) -> Result:
    url = f"ws://127.0.0.1:{server.port}/ws"
    rate = min(1000, total_rate // subscribers)
    simulcast = mode == "simulcast"
    tcp = mode == "tcp"  # simple, the subscribers on ICE-TCP
    recorded = mode == "recorded"  # simple, with the publisher's stream recorded too
    publisher = BenchPeer(url, room)
    await publisher.join(auto_subscribe=False)
    if simulcast:
        pub_link = await publisher.publish_simulcast(RIDS)
    else:
        pub_link = await publisher.publish_video(SSRC)
    peers: list[BenchPeer] = []
    links: list[Link] = []

    async def subscribe() -> None:
        peer = BenchPeer(url, room)
        await peer.join(auto_subscribe=True)
        peers.append(peer)
        link = await peer.answer_next_offer(tcp=tcp)
        # the client process must not become the bottleneck: at most 5 subscribers decrypt
        # and time every packet, the rest count datagrams
        link.measure = len(links) < LATENCY_SAMPLERS
        links.append(link)

    try:
        seq = [0, 0, 0]  # next sequence number of the top layer, then of the lower ones
        if simulcast:  # the producer exists once its layers' first packets arrived
            await send_for(pub_link, rate, 0.3, seq, simulcast)
        for start in range(0, subscribers, 10):
            await asyncio.gather(*(subscribe() for _ in range(min(10, subscribers - start))))
        if recorded:
            server.command(f"record {room}")
        # warm-up: layers appear, consumers sync on a keyframe (and simulcast ones move up)
        await send_for(pub_link, rate, 1.0 if not simulcast else 2.0, seq, simulcast)
        before = server.stats()
        received_before = sum(link.received for link in links)
        for link in links:
            link.latencies_us.clear()
        t0 = time.monotonic()
        sent = await send_for(pub_link, rate, seconds, seq, simulcast)
        await asyncio.sleep(0.1)  # the last packets in flight
        elapsed = time.monotonic() - t0
        after = server.stats()
        received = sum(link.received for link in links) - received_before
        forwarded = after["forwarded"] - before["forwarded"]
        cpu = after["cpu"] - before["cpu"]
        latencies = [v for link in links for v in link.latencies_us]
        return Result(
            mode=mode,
            subscribers=subscribers,
            rate_pps=rate,
            seconds=round(elapsed, 2),
            forwarded_pps=round(forwarded / elapsed),
            server_cpu_us_per_packet=round(cpu / max(1, forwarded) * 1e6, 2),
            server_cpu_share=round(cpu / elapsed, 3),
            server_cpu_us_per_published_packet=round(cpu / max(1, sent) * 1e6, 2),
            recorded_bytes_per_s=round(
                (after.get("recorded_bytes", 0) - before.get("recorded_bytes", 0)) / elapsed
            ),
            loss=round(max(0.0, 1 - received / max(1, sent * subscribers)), 4),
            latency_p50_us=percentile(latencies, 0.50),
            latency_p95_us=percentile(latencies, 0.95),
            latency_p99_us=percentile(latencies, 0.99),
        )
    finally:
        for peer in [*peers, publisher]:
            await peer.close()


async def run(
    counts: list[int],
    seconds: float,
    modes: tuple[str, ...] = ("simple",),
    total_rate: int = 50000,
) -> list[Result]:
    server = ServerProcess()
    try:
        return [
            await measure(server, n, seconds, f"bench-{mode}-{n}", mode, total_rate)
            for n in counts
            for mode in modes
        ]
    finally:
        server.close()


def render(results: list[Result]) -> str:
    lines = [
        "| mode | subscribers | publisher pkt/s | forwarded pkt/s | server CPU µs / forwarded "
        "packet | server CPU share | loss | latency p50 / p95 / p99 (µs) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.mode} | {r.subscribers} | {r.rate_pps} | {r.forwarded_pps:,.0f} | "
            f"{r.server_cpu_us_per_packet:.2f} | {r.server_cpu_share:.0%} | {r.loss:.2%} | "
            f"{r.latency_p50_us:.0f} / {r.latency_p95_us:.0f} / {r.latency_p99_us:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", default="1,10,50,100")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument(
        "--modes",
        default="simple,simulcast",
        help="simple: one stream; simulcast: three RID layers, subscribers on the top one; "
        "recorded: simple, with the stream recorded to a journal too; tcp: simple, the "
        "subscribers on ICE-TCP (RFC 6544) instead of UDP",
    )
    parser.add_argument(
        "--total-rate",
        type=int,
        default=50000,
        help="packets/s forwarded in all: the publisher sends min(1000, this / N)",
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.subscribers.split(",")]
    modes = tuple(args.modes.split(","))
    results = uvloop.run(run(counts, args.seconds, modes, args.total_rate))
    print(render(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump([asdict(r) for r in results], out, indent=2)


if __name__ == "__main__":
    main()
