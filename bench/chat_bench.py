"""Chat throughput and delivery latency through one room: one sender, N-1 receivers, real
WebRTC data channels (aiortc peers via mediasrv.client) and the chat plugin's durable store.

    python -m bench.chat_bench [--peers 10] [--messages 500] [--window 32]

The sender keeps `window` messages in flight (each resolves when the server has committed it
to SQLite); every receiver records when each message arrives. Reported: messages per second
(stored and delivered to all), and delivery latency percentiles from send() to arrival.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import uvloop

from mediasrv.client import Client
from mediasrv.config import MediaConfig, ServerConfig
from mediasrv.http.frontend import HttpFrontend
from mediasrv.media_server import MediaServer


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def measure(peers: int, messages: int, window: int) -> dict[str, float]:
    from mediasrv_chat.plugin import ChatPlugin

    with tempfile.TemporaryDirectory() as tmp:
        config = ServerConfig(port=0, media=MediaConfig(max_peers_per_room=peers + 5))
        server = MediaServer(config)
        HttpFrontend(server)
        server.plugins.add(
            ChatPlugin,
            {
                "database": str(Path(tmp) / "chat.sqlite3"),
                "attachments_dir": str(Path(tmp) / "files"),
                "rate_per_second": 100000,
                "rate_burst": 100000,
            },
        )
        await server.start()
        assert server.http_address is not None
        url = f"ws://127.0.0.1:{server.http_address[1]}/ws"
        clients = [
            await Client.connect(url, token="t", room="bench", display_name=f"p{i}")
            for i in range(peers)
        ]
        try:
            for client in clients:
                await client.chat.open()
            sender, receivers = clients[0], clients[1:]
            sent_at: dict[str, float] = {}
            arrivals: list[float] = []
            done = asyncio.Event()
            expected = messages * len(receivers)

            def on_message(message: dict[str, object]) -> None:
                text = str(message.get("text", ""))
                if text in sent_at:
                    arrivals.append(time.perf_counter() - sent_at[text])
                    if len(arrivals) == expected:
                        done.set()

            for receiver in receivers:
                receiver.chat.on("message", on_message)
            semaphore = asyncio.Semaphore(window)

            async def send(i: int) -> None:
                async with semaphore:
                    text = f"message {i}"
                    sent_at[text] = time.perf_counter()
                    await sender.chat.send(text)

            start = time.perf_counter()
            await asyncio.gather(*(send(i) for i in range(messages)))
            await asyncio.wait_for(done.wait(), 60)
            elapsed = time.perf_counter() - start
            return {
                "peers": peers,
                "messages": messages,
                "messages_per_second": round(messages / elapsed, 1),
                "deliveries_per_second": round(expected / elapsed, 1),
                "latency_p50_ms": round(percentile(arrivals, 0.50) * 1000, 2),
                "latency_p95_ms": round(percentile(arrivals, 0.95) * 1000, 2),
                "latency_p99_ms": round(percentile(arrivals, 0.99) * 1000, 2),
            }
        finally:
            for client in clients:
                await client.close()
            await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=10)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--window", type=int, default=32)
    args = parser.parse_args()
    print(uvloop.run(measure(args.peers, args.messages, args.window)))


if __name__ == "__main__":
    main()
