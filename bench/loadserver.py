"""The server side of the whole-server benchmark: a MediaServer in its own process on uvloop.

Prints ``port <http port>`` once listening; answers each ``stats`` line on stdin with one JSON
line: CPU seconds used by this process and the data plane's counters. ``record <room>`` starts
a whole-room recording (journals in a temporary directory, removed at the end) and answers one
JSON line; ``quit`` stops it.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import sys
import tempfile

import uvloop

from mediasrv.config import MediaConfig, RecordingConfig, ServerConfig
from mediasrv.http.frontend import HttpFrontend
from mediasrv.media_server import MediaServer


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main() -> None:
    media = MediaConfig(max_peers_per_room=500)
    journals = tempfile.mkdtemp(prefix="mediasrv-bench-")
    # MEDIASRV_BENCH_FSYNC=0: journals without fsync (to see what the fsyncs cost)
    recording = RecordingConfig(
        directory=journals,
        fsync_interval=1.0 if os.environ.get("MEDIASRV_BENCH_FSYNC", "1") != "0" else 0.0,
    )
    server = MediaServer(
        ServerConfig(port=0, tokens=frozenset({"bench"}), media=media, recording=recording)
    )
    HttpFrontend(server)
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
                                  "dropped": plane.dropped,
                                  "recorded_bytes": server.recording_totals["bytes"]}),
                      flush=True)  # fmt: skip
            elif line.startswith("record "):
                room = server.rooms[line.split(" ", 1)[1]]
                started = await room.start_recording()
                print(json.dumps({"recording": started.id}), flush=True)
    finally:
        await server.close()
        shutil.rmtree(journals, ignore_errors=True)


if __name__ == "__main__":
    uvloop.run(main())
