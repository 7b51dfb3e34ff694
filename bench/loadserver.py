"""The server side of the whole-server benchmark: a MediaServer in its own process on uvloop.

Prints ``port <http port>`` once listening; answers each ``stats`` line on stdin with one JSON
line: CPU seconds used by this process and the data plane's counters. ``quit`` stops it.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys

import uvloop

from mediasrv.config import MediaConfig, ServerConfig
from mediasrv.media_server import MediaServer


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main() -> None:
    media = MediaConfig(max_peers_per_room=500)
    server = MediaServer(ServerConfig(port=0, tokens=frozenset({"bench"}), media=media))
    await server.start()
    assert server.http_address is not None
    print(f"port {server.http_address[1]}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := (await reader.readline()).decode().strip():
            if line == "quit":
                break
            if line == "stats":
                plane = server.workers[0].plane
                assert plane is not None
                print(json.dumps({"cpu": cpu_seconds(), "forwarded": plane.forwarded,
                                  "received": plane.received, "send_errors": plane.send_errors,
                                  "dropped": plane.dropped}), flush=True)  # fmt: skip
    finally:
        await server.close()


if __name__ == "__main__":
    uvloop.run(main())
