"""The latency one pipe hop adds: plain RTP (Opus) sent into server A goes to a receiver
directly from A and, through a PipeTransport, from server B; each packet's arrival at both is
timed (``python -m bench.pipe_bench --packets 3000``). Both servers run in this process on
loopback, each with its own worker and UDP port, so the hop measured is A's pipe consumer, the
loopback UDP hop and B's forwarding."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import struct
import time
from typing import Any

from mediasrv.config import ServerConfig
from mediasrv.media_server import MediaServer

SSRC = 0x5EED


class Receiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) >= 16 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223:
            (number,) = struct.unpack_from("!I", data, 12 + 4 * (data[0] & 0x0F))
            self.arrivals.setdefault(number, time.perf_counter())


async def endpoint(protocol: Any) -> tuple[asyncio.DatagramTransport, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: protocol, local_addr=("127.0.0.1", 0)
    )
    return transport, transport.get_extra_info("sockname")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run(packets: int, interval: float) -> dict[str, Any]:
    a, b = MediaServer(ServerConfig(port=0)), MediaServer(ServerConfig(port=0))
    await a.start()
    await b.start()
    direct, piped = Receiver(), Receiver()
    sender, sender_addr = await endpoint(asyncio.DatagramProtocol())
    t1, addr1 = await endpoint(direct)
    t2, addr2 = await endpoint(piped)
    try:
        room_a, room_b = a.get_or_create_room("bench"), b.get_or_create_room("bench")
        ingest = room_a.router.create_plain_transport()
        ingest.connect(sender_addr)
        producer = ingest.produce(kind="audio", mime_type="audio/opus", payload_type=111,
                                  ssrc=SSRC)  # fmt: skip
        out_a = room_a.router.create_plain_transport()
        out_a.connect(addr1)
        out_a.consume(producer).start()
        pipe_a, pipe_b = (
            room_a.router.create_pipe_transport(),
            room_b.router.create_pipe_transport(),
        )
        pipe_a.connect(pipe_b.local_address)
        pipe_b.connect(pipe_a.local_address)
        far = pipe_b.receive(pipe_a.send(producer))
        out_b = room_b.router.create_plain_transport()
        out_b.connect(addr2)
        out_b.consume(far).start()
        target = ("127.0.0.1", a.workers[0].port)
        sent: dict[int, float] = {}
        for n in range(packets):
            header = struct.pack("!BBHII", 0x80, 111, n & 0xFFFF, n * 960, SSRC)
            sent[n] = time.perf_counter()
            sender.sendto(header + struct.pack("!I", n) + bytes(60), target)
            await asyncio.sleep(interval)
        await asyncio.sleep(0.5)
    finally:
        for t in (sender, t1, t2):
            t.close()
        await a.close()
        await b.close()
    both = [n for n in sent if n in direct.arrivals and n in piped.arrivals]
    hop = [(piped.arrivals[n] - direct.arrivals[n]) * 1e6 for n in both]
    through_a = [(direct.arrivals[n] - sent[n]) * 1e6 for n in both]
    return {
        "packets": packets,
        "received_both": len(both),
        "server_a_us": {"p50": percentile(through_a, 0.5), "p99": percentile(through_a, 0.99)},
        "pipe_hop_us": {
            "p50": percentile(hop, 0.5),
            "p99": percentile(hop, 0.99),
            "mean": statistics.fmean(hop),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pipe_bench")
    parser.add_argument("--packets", type=int, default=3000)
    parser.add_argument("--interval", type=float, default=0.002, help="seconds between packets")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.packets, args.interval)), indent=2))


if __name__ == "__main__":
    main()
